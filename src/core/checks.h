// Argument checks shared by the operators: every failure throws ArgumentError naming the
// operator and the argument, with the shapes involved.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "linattn/core/error.h"
#include "linattn/core/view.h"

namespace linattn::detail {

template <typename T, int R>
std::string shape_string(const View<T, R>& v) {
  std::string s = "[";
  for (int i = 0; i < R; ++i) s += (i ? "," : "") + std::to_string(v.shape[i]);
  return s + "]";
}

// A named argument's memory, first to last element, for Checks::apart.
struct Extent {
  std::string_view name;
  std::array<uintptr_t, 2> range;
};
template <typename T, int R>
Extent extent(std::string_view name, const View<T, R>& v) {
  return {name, element_range(v)};
}

class Checks {
 public:
  // Holds the name only: nothing is allocated unless a check fails (operators run per lookup).
  explicit Checks(const char* op) : op_(op) {}

  [[noreturn]] void fail(std::string_view argument, const std::string& problem) const {
    throw ArgumentError(op_, std::string(argument), problem);
  }

  // A usable view: non-negative sizes and strides, data unless empty, last dimension
  // contiguous. Outputs must also not overlap themselves (rows and blocks are written by
  // different threads): each stride at least the extent of the dimensions inside it.
  template <typename T, int R>
  void view(std::string_view name, const View<T, R>& v, bool output) const {
    for (int i = 0; i < R; ++i) {
      if (v.shape[i] < 0)
        fail(name, "shape " + shape_string(v) + " has a negative size in dimension " +
                       std::to_string(i));
      if (v.stride[i] < 0)
        fail(name, "negative stride in dimension " + std::to_string(i) + " (not supported)");
    }
    if (v.numel() > 0 && v.data == nullptr) fail(name, "data is null");
    if (v.shape[R - 1] > 1 && v.stride[R - 1] != 1)
      fail(name, "the last dimension must be contiguous (stride 1), got stride " +
                     std::to_string(v.stride[R - 1]));
    if (output && v.numel() > 1) {
      // Dimensions in order of increasing stride: each stride must clear everything the
      // smaller-stride dimensions span, or two indices would share an element.
      std::array<int, R> order{};
      for (int i = 0; i < R; ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](int a, int b) { return v.stride[a] < v.stride[b]; });
      int64_t extent = 1;  // elements spanned by the dimensions seen so far
      for (int i : order) {
        if (v.shape[i] <= 1) continue;
        if (v.stride[i] < extent)
          fail(name, "output elements overlap: stride " + std::to_string(v.stride[i]) +
                         " of dimension " + std::to_string(i) + " is below the " +
                         std::to_string(extent) + " elements the smaller strides span");
        extent = (v.shape[i] - 1) * v.stride[i] + extent;
      }
    }
  }

  // A size that must be at least 1 (batch, heads, feature widths).
  void positive(std::string_view name, int64_t value, std::string_view what) const {
    if (value < 1) fail(name, std::string(what) + " must be at least 1, got " + std::to_string(value));
  }

  // dims[dim] of `name` must equal `expected` (taken from `source`).
  template <typename T, int R>
  void dim(std::string_view name, const View<T, R>& v, int dim, int64_t expected,
           std::string_view what) const {
    if (v.shape[dim] != expected)
      fail(name, "shape " + shape_string(v) + ": dimension " + std::to_string(dim) + " is " +
                     std::to_string(v.shape[dim]) + " but " + std::string(what) + " is " +
                     std::to_string(expected));
  }

  // A gradient (or other output) that must have the shape of `like`, and a usable layout.
  template <typename T, typename U, int R>
  void same_shape(std::string_view name, const View<T, R>& v, std::string_view like_name,
                  const View<U, R>& like, bool output) const {
    view(name, v, output);
    for (int i = 0; i < R; ++i)
      if (v.shape[i] != like.shape[i])
        fail(name, "shape " + shape_string(v) + " differs from " + std::string(like_name) + "'s " +
                       shape_string(like));
  }

  // An output that must share no memory with another argument (read or written while it is).
  template <typename T, int R, typename U, int S>
  void disjoint(std::string_view name, const View<T, R>& v, std::string_view other_name, const View<U, S>& other) const {
    if (spans_meet(v, other)) fail(name, "shares memory with " + std::string(other_name) + " (not supported)");
  }

  // Outputs that share no memory with any input nor with one another (each is read or written
  // while the others are): apart({extent("out", out)}, {extent("q", q), extent("k", k)}). The
  // first output found overlapping is named, with what it overlaps.
  void apart(std::initializer_list<Extent> outputs, std::initializer_list<Extent> inputs) const {
    for (auto o = outputs.begin(); o != outputs.end(); ++o) {
      for (const Extent& in : inputs)
        if (ranges_meet(o->range, in.range)) fail(o->name, "shares memory with " + std::string(in.name) + " (not supported)");
      for (auto other = o + 1; other != outputs.end(); ++other)
        if (ranges_meet(o->range, other->range))
          fail(o->name, "shares memory with " + std::string(other->name) + " (not supported)");
    }
  }

  // Per-sequence lengths: absent (empty) or one value in [0, max] per batch entry.
  void lengths(std::string_view name, std::span<const int64_t> lengths, int64_t batch,
               int64_t max, std::string_view max_what) const {
    if (lengths.empty()) return;
    if (static_cast<int64_t>(lengths.size()) != batch)
      fail(name, "has " + std::to_string(lengths.size()) + " entries for a batch of " +
                     std::to_string(batch));
    for (size_t b = 0; b < lengths.size(); ++b) {
      if (lengths[b] < 0)
        fail(name, "entry " + std::to_string(b) + " is negative (" + std::to_string(lengths[b]) + ")");
      if (lengths[b] > max)
        fail(name, "entry " + std::to_string(b) + " is " + std::to_string(lengths[b]) +
                       ", larger than " + std::string(max_what) + " " + std::to_string(max));
    }
  }

 private:
  const char* op_;
};

// The gradients of a q, k, v attention backward: dout [B, H, Tq, dv] and dq, dk, dv of the inputs'
// shapes, none sharing memory with an input or with another gradient.
inline void check_qkv_gradients(const Checks& c, CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk,
                                View4 dv) {
  c.same_shape("dout", dout, "[B, H, Tq, dv]", CView4(nullptr, {k.shape[0], k.shape[1], q.shape[2], v.shape[3]}, {}), false);
  c.same_shape("dq", dq, "q", q, true);
  c.same_shape("dk", dk, "k", k, true);
  c.same_shape("dv", dv, "v", v, true);
  c.apart({extent("dq", dq), extent("dk", dk), extent("dv", dv)},
          {extent("q", q), extent("k", k), extent("v", v), extent("dout", dout)});
}

}  // namespace linattn::detail
