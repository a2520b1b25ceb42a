#include "arrays.h"

namespace linattn::python {

std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

namespace {

py::array as_array(const py::handle& obj, const char* op, const char* name, const char* wanted) {
  py::array a;
  try {
    a = py::array::ensure(obj);
  } catch (const py::error_already_set&) {
  }
  if (!a) {
    throw py::type_error(std::string(op) + ": argument '" + name + "': expected " + wanted + ", got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return a;
}

}  // namespace

FloatArray float_array(const py::handle& obj, const char* op, const char* name, int rank) {
  // The common case first, without building dtype objects: a C-contiguous float32 array.
  if (py::isinstance<FloatArray>(obj) && (py::reinterpret_borrow<py::array>(obj).flags() & py::array::c_style)) {
    auto f = py::reinterpret_borrow<FloatArray>(obj);
    if (f.ndim() != rank) {
      throw ArgumentError(op, name, "expected " + std::to_string(rank) + " dimensions, got shape " + shape_text(f));
    }
    return f;
  }
  py::array a = as_array(obj, op, name, "an array of real numbers");
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(op) + ": argument '" + name + "': expected real numbers, got an array of " +
                         std::string(py::str(a.dtype())));
  }
  if (a.ndim() != rank) {
    throw ArgumentError(op, name, "expected " + std::to_string(rank) + " dimensions, got shape " + shape_text(a));
  }
  // ensure() returns the same array when it is already C-contiguous float32, a copy otherwise.
  FloatArray f = FloatArray::ensure(a);
  if (!f) throw py::error_already_set();
  return f;
}

void check_inout(const py::handle& obj, const char* op, const char* name, int rank) {
  const auto a = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array();
  if (!a || !py::isinstance<FloatArray>(a) || !(a.flags() & py::array::c_style)) {
    throw py::type_error(std::string(op) + ": argument '" + name +
                         "': is updated in place, so it must be a C-contiguous float32 numpy array");
  }
  if (!a.writeable()) throw ArgumentError(op, name, "is updated in place but the array is read-only");
  if (a.ndim() != rank) {
    throw ArgumentError(op, name, "expected " + std::to_string(rank) + " dimensions, got shape " + shape_text(a));
  }
}

IndexInput index_input(const py::handle& obj, const char* op, const char* name) {
  IndexInput in;
  if (obj.is_none()) return in;
  py::array a = as_array(obj, op, name, "a 1-D array of integers");
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(op) + ": argument '" + name + "': expected integers, got an array of " +
                         std::string(py::str(a.dtype())));
  }
  if (a.ndim() != 1) throw ArgumentError(op, name, "expected 1 dimension, got shape " + shape_text(a));
  in.array = IndexArray::ensure(a);
  if (!in.array) throw py::error_already_set();
  return in;
}

FeatureMap feature_map_arg(const std::string& name, const char* op) {
  const auto phi = parse_feature_map(name);
  if (!phi) throw ArgumentError(op, "feature_map", "unknown feature map '" + name + "' (identity, elu+1, relu)");
  return *phi;
}

}  // namespace linattn::python
