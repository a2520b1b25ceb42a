"""Shared fixtures of the Python tests (run by `make test` through ctest, or directly with
PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python)."""
import os
import shutil

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def cli():
    """The linattn command-line tool of the same build (LINATTN_CLI), or PATH's."""
    path = os.environ.get("LINATTN_CLI") or shutil.which("linattn")
    if not path:
        pytest.skip("the linattn CLI is not built (LINATTN_CLI unset)")
    return path


def rows(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)
