"""The examples in examples/python run as documented (short settings)."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], check=True, capture_output=True,
                          text=True, timeout=300).stdout


def test_encode_and_query(tmp_path):
    out = run("encode_and_query.py", "--bank", str(tmp_path / "docs.lamb"))
    assert "4 documents" in out
    # Each question finds the document that holds its word.
    for question, document in (("apple", "kitchen"), ("football", "hallway"), ("roses", "garden"), ("report", "office")):
        assert f"'{question}': {document} " in out, out


def test_causal_training_lowers_the_loss():
    pytest.importorskip("torch")
    out = run("causal_training.py", "--steps", "60")
    losses = [float(line.split("loss")[1].split()[0]) for line in out.splitlines() if "loss" in line]
    assert losses[-1] < losses[0]


def test_serve_http_client(cli):
    """examples/serve/http_client.py: its own server, a put, lookups and a search over HTTP."""
    if not os.path.exists(os.path.join(os.path.dirname(cli), "linattn-serve")):
        pytest.skip("linattn-serve is not built")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "serve", "http_client.py")
    out = subprocess.run([sys.executable, script, "--linattn", cli], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert "health: ready" in out
    assert "memories: kitchen, garden, office, hallway" in out
    # Each topic's question finds the document written about that topic.
    for topic, name in enumerate(("kitchen", "garden", "office", "hallway")):
        assert f"topic {topic}: {name} " in out, out
