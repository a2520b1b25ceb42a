// NumPy arrays <-> linattn views, and the argument parsing the bindings share. Inputs: a
// C-contiguous float32 array is viewed in place; any other real-valued array (float64, int, a
// strided slice, a list) is converted once to a C-contiguous float32 copy that lives as long as
// the Input. Booleans, complex numbers, strings and objects are refused with TypeError, a wrong
// rank or shape with linattn.ArgumentError; every message names the operation and the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "linattn/core/error.h"
#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn::python {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// "shape (2, 3)" for messages.
std::string shape_text(const py::array& a);

// The array `obj` as a C-contiguous float32 array of `rank` dimensions (a copy only when needed).
FloatArray float_array(const py::handle& obj, const char* op, const char* name, int rank);

template <int R>
struct Input {
  FloatArray array;  // keeps the numbers alive (the caller's array, or the one conversion)
  View<const float, R> view;
  bool present() const { return view.data != nullptr; }
  int64_t size(int dim) const { return view.shape[dim]; }
};

template <int R>
View<const float, R> const_view(const FloatArray& a) {
  std::array<int64_t, R> shape{};
  for (int i = 0; i < R; ++i) shape[i] = a.shape(i);
  return View<const float, R>::contiguous(a.data(), shape);
}

template <int R>
View<float, R> mutable_view(FloatArray& a) {
  std::array<int64_t, R> shape{};
  for (int i = 0; i < R; ++i) shape[i] = a.shape(i);
  return View<float, R>::contiguous(a.mutable_data(), shape);
}

// A required input of rank R.
template <int R>
Input<R> input(const py::handle& obj, const char* op, const char* name) {
  if (obj.is_none()) throw ArgumentError(op, name, "is required, got None");
  Input<R> in;
  in.array = float_array(obj, op, name, R);
  in.view = const_view<R>(in.array);
  return in;
}

// An optional input: None is absent (a view without data).
template <int R>
Input<R> optional_input(const py::handle& obj, const char* op, const char* name) {
  if (obj.is_none()) return {};
  return input<R>(obj, op, name);
}

// A new float32 array of the given shape, and a view to write it through.
template <int R>
struct Output {
  FloatArray array;
  View<float, R> view;
  explicit Output(const std::array<int64_t, R>& shape) : array(std::vector<py::ssize_t>(shape.begin(), shape.end())) {
    view = mutable_view<R>(array);
  }
};

// An array the operation updates in place (a causal step's state): it must already be a
// writable C-contiguous float32 array of rank R, since a converted copy would not be updated.
void check_inout(const py::handle& obj, const char* op, const char* name, int rank);
template <int R>
View<float, R> inout_view(const py::handle& obj, const char* op, const char* name, FloatArray& keep) {
  check_inout(obj, op, name, R);
  keep = py::reinterpret_borrow<FloatArray>(obj);
  return mutable_view<R>(keep);
}

// Lengths and counts: None, or a 1-D array of integers (converted to int64 once).
struct IndexInput {
  IndexArray array;
  Lengths span() const {
    if (!array) return {};
    return {array.data(), static_cast<size_t>(array.size())};
  }
};
IndexInput index_input(const py::handle& obj, const char* op, const char* name);

// A feature map's name ("identity", "elu+1", "relu"); ArgumentError naming `feature_map` otherwise.
FeatureMap feature_map_arg(const std::string& name, const char* op);

}  // namespace linattn::python
