// Non-owning strided views: the currency of every kernel and operator.
//
// A View<T, Rank> is a pointer plus a shape and strides counted in elements (not bytes), the
// same model as a NumPy array or a torch::Tensor without ownership. Views never allocate and
// never free; the caller keeps the memory alive for the duration of the call.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <type_traits>

namespace linattn {

template <typename T, int Rank>
struct View {
  static_assert(Rank >= 1 && Rank <= 4, "views of rank 1 to 4");
  using value_type = T;
  static constexpr int rank = Rank;

  T* data = nullptr;
  std::array<int64_t, Rank> shape{};
  std::array<int64_t, Rank> stride{};

  constexpr View() = default;
  constexpr View(T* data_, std::array<int64_t, Rank> shape_, std::array<int64_t, Rank> stride_)
      : data(data_), shape(shape_), stride(stride_) {}

  // A dense row-major view: the last dimension is contiguous.
  static constexpr View contiguous(T* data_, std::array<int64_t, Rank> shape_) {
    std::array<int64_t, Rank> s{};
    int64_t step = 1;
    for (int i = Rank - 1; i >= 0; --i) {
      s[i] = step;
      step *= shape_[i];
    }
    return View(data_, shape_, s);
  }

  // Views of mutable data convert to views of const data.
  template <typename U = T, typename = std::enable_if_t<!std::is_const_v<U>>>
  constexpr operator View<const U, Rank>() const {  // NOLINT(google-explicit-constructor)
    return View<const U, Rank>(data, shape, stride);
  }

  constexpr int64_t size(int dim) const { return shape[dim]; }
  constexpr int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  // An absent optional argument is a view with no data.
  constexpr bool present() const { return data != nullptr; }

  template <typename... I>
  constexpr T& operator()(I... index) const {
    static_assert(sizeof...(I) == Rank, "one index per dimension");
    const int64_t idx[] = {static_cast<int64_t>(index)...};
    int64_t off = 0;
    for (int i = 0; i < Rank; ++i) off += idx[i] * stride[i];
    return data[off];
  }
};

using View1 = View<float, 1>;
using View2 = View<float, 2>;
using View3 = View<float, 3>;
using View4 = View<float, 4>;
using CView1 = View<const float, 1>;
using CView2 = View<const float, 2>;
using CView3 = View<const float, 3>;
using CView4 = View<const float, 4>;

// The addresses of a view's first and last elements ({1, 0}, an empty range, for an absent or
// empty view).
template <typename T, int R>
std::array<uintptr_t, 2> element_range(const View<T, R>& v) {
  if (!v.present() || v.numel() == 0) return {1, 0};
  int64_t last = 0;
  for (int i = 0; i < R; ++i) last += (v.shape[i] - 1) * v.stride[i];
  const auto first = reinterpret_cast<uintptr_t>(v.data);
  return {first, first + static_cast<uintptr_t>(last) * sizeof(*v.data)};
}

// Whether two element ranges (element_range) meet; an empty one meets nothing.
inline bool ranges_meet(const std::array<uintptr_t, 2>& x, const std::array<uintptr_t, 2>& y) {
  return x[0] <= x[1] && y[0] <= y[1] && x[0] <= y[1] && y[0] <= x[1];
}

// Whether the memory two views span, first to last element, meets: conservative for interleaved
// views (two that share no element may still meet). Absent or empty views meet nothing.
template <typename T, int R, typename U, int S>
bool spans_meet(const View<T, R>& a, const View<U, S>& b) {
  return ranges_meet(element_range(a), element_range(b));
}

// Valid lengths per batch entry; an empty span means every position is valid.
using Lengths = std::span<const int64_t>;

}  // namespace linattn
