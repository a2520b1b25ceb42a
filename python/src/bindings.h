// The pieces of the _linattn extension, one per binding source.
#pragma once

#include <pybind11/pybind11.h>

namespace linattn::python {

namespace py = pybind11;

// Applies linattn.set_num_threads to the calling thread: OpenMP's thread count belongs to each
// thread, and Python code may call from many. Call with the GIL released, before a kernel.
void use_configured_threads();

void bind_memory(py::module_& m);     // Memory, MemoryView, Bank, files, compress
void bind_operators(py::module_& m);  // softmax, additive, linear, gates, causal

}  // namespace linattn::python
