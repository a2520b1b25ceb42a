"""Result records of the causal operator (named tuples: unpack them or read fields)."""
from typing import NamedTuple, Optional

import numpy as np


class CausalResult(NamedTuple):
    """What causal_linear_attention returns with return_state or return_chunk_states."""

    out: np.ndarray  #: [B, H, T, dv]
    final_state: Optional[np.ndarray]  #: [B, H, dk, dv], M after each sequence's last valid token
    final_normalizer: Optional[np.ndarray]  #: [B, H, dk] (normalize only)
    chunk_states: Optional[np.ndarray]  #: the chunk-start states, for the backward


class CausalGrads(NamedTuple):
    """The gradients causal_linear_attention_backward returns (None where not asked)."""

    dq: np.ndarray
    dk: np.ndarray
    dv: np.ndarray
    dgates: Optional[np.ndarray]
    ddecay: Optional[np.ndarray]  #: per-step or per-channel log decays (a per-head decay gets none)
    dinitial_state: Optional[np.ndarray]
    dinitial_normalizer: Optional[np.ndarray]
