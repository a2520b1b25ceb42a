"""linattn: linear attention with constant-time lookups and fixed-size representations.

A document encoded once into a fixed-size memory M = sum_t phi(k_t) v_t^T answers every later
query in O(dk dv), whatever its length. This package binds the C++ library:

* Memory, MemoryView, Bank, open_memory, compress, search: memories, their files and banks;
* softmax_attention, additive_attention, linear_attention_encode/lookup, scalar_gate,
  vector_gate, causal_linear_attention (with decay), galerkin_attention, content_lambda_attention,
  kslot_memory_encode/lookup: the operators and their backwards;
* linattn.torch (import it explicitly): autograd functions and torch.nn modules over them.

Arrays are NumPy; C-contiguous float32 arrays are used in place, anything else is converted once.
Kernels release the GIL. Errors: ArgumentError (a ValueError), FormatError (an OSError), both
linattn.Error, with the core's message naming the operation and the argument.
"""
from ._linattn import (  # noqa: F401
    ArgumentError,
    Bank,
    Error,
    FormatError,
    Memory,
    MemoryView,
    additive_attention,
    additive_attention_backward,
    causal_automatic_choice,
    causal_linear_attention,
    causal_linear_attention_backward,
    causal_linear_attention_step,
    causal_working_set_bytes,
    compress,
    content_lambda_attention,
    content_lambda_attention_backward,
    content_lambda_encode,
    kslot_memory_encode,
    kslot_memory_encode_backward,
    kslot_memory_lookup,
    kslot_memory_lookup_backward,
    galerkin_attention,
    galerkin_attention_backward,
    linear_attention_encode,
    linear_attention_encode_backward,
    linear_attention_lookup,
    linear_attention_lookup_backward,
    num_threads,
    open_memory,
    retnet_decays,
    scalar_gate,
    scalar_gate_backward,
    search,
    set_num_threads,
    softmax_attention,
    softmax_attention_backward,
    vector_gate,
    vector_gate_backward,
)
from ._results import CausalGrads, CausalResult  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "Bank", "CausalGrads", "CausalResult", "Error", "FormatError", "Memory", "MemoryView",
    "additive_attention", "additive_attention_backward", "causal_automatic_choice", "causal_linear_attention",
    "causal_linear_attention_backward", "causal_linear_attention_step", "causal_working_set_bytes", "compress",
    "content_lambda_attention",
    "content_lambda_attention_backward", "content_lambda_encode", "galerkin_attention", "galerkin_attention_backward",
    "kslot_memory_encode", "kslot_memory_encode_backward", "kslot_memory_lookup", "kslot_memory_lookup_backward",
    "linear_attention_encode",
    "linear_attention_encode_backward", "linear_attention_lookup", "linear_attention_lookup_backward",
    "num_threads", "open_memory", "retnet_decays", "scalar_gate", "scalar_gate_backward", "search", "set_num_threads",
    "softmax_attention", "softmax_attention_backward", "vector_gate", "vector_gate_backward",
]
