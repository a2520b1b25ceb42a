// linattn._linattn: the compiled core of the `linattn` Python package (python/linattn/).
#include <Python.h>

#include <atomic>
#include <string>

#include "bindings.h"
#include "linattn/core/error.h"
#include "linattn/core/threads.h"
#include "linattn/core/types.h"

namespace linattn::python {
namespace {

std::atomic<int> configured_threads{0};  // 0: OpenMP's default (OMP_NUM_THREADS or the cores)

// A new exception class `linattn.<name>` deriving from `bases`.
PyObject* new_exception(const char* name, const char* doc, PyObject* bases) {
  PyObject* type = PyErr_NewExceptionWithDoc((std::string("linattn.") + name).c_str(), doc, bases, nullptr);
  Py_DECREF(bases);
  if (type == nullptr) throw py::error_already_set();
  return type;
}

}  // namespace

void use_configured_threads() {
  const int n = configured_threads.load(std::memory_order_relaxed);
  if (n > 0 && num_threads() != n) set_num_threads(n);
}

}  // namespace linattn::python

PYBIND11_MODULE(_linattn, m) {
  using namespace linattn::python;
  m.doc() = "The compiled core of linattn; import `linattn`, not this module.";

  // linattn.Error, and the two kinds of it the core throws. ArgumentError is a ValueError and
  // FormatError an OSError, so that code catching the built-in kinds catches them too.
  static PyObject* error = new_exception("Error", "Base class of every error linattn raises.",
                                         PyTuple_Pack(1, PyExc_Exception));
  static PyObject* argument_error = new_exception(
      "ArgumentError",
      "An argument linattn cannot use: a shape, size, option or value. The message names the operation "
      "and the argument.",
      PyTuple_Pack(2, error, PyExc_ValueError));
  static PyObject* format_error = new_exception(
      "FormatError", "A file or stream that could not be read or written, or whose contents are not valid.",
      PyTuple_Pack(2, error, PyExc_OSError));
  m.add_object("Error", py::handle(error));
  m.add_object("ArgumentError", py::handle(argument_error));
  m.add_object("FormatError", py::handle(format_error));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const linattn::ArgumentError& e) {
      PyErr_SetString(argument_error, e.what());
    } catch (const linattn::FormatError& e) {
      PyErr_SetString(format_error, e.what());
    } catch (const linattn::Error& e) {
      PyErr_SetString(error, e.what());
    }
  });

  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw linattn::ArgumentError("linattn.set_num_threads", "n", "must be >= 1, got " + std::to_string(n));
        configured_threads.store(n);
        linattn::set_num_threads(n);
      },
      py::arg("n"),
      "Sets the number of threads linattn's kernels use, for calls from every Python thread.");
  m.def(
      "num_threads",
      [] {
        const int n = configured_threads.load();
        return n > 0 ? n : linattn::num_threads();
      },
      "The number of threads linattn's kernels use (default: OMP_NUM_THREADS, else the number of cores).");

  bind_memory(m);
  bind_operators(m);
}
