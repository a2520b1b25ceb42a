// Opt-in finiteness checks. The operators do not scan their inputs for NaN or Inf (it would
// cost a pass over memory on every call); non-finite values in valid positions propagate to
// the outputs they touch and nowhere else. Call require_finite where inputs come from outside,
// as the linattn command-line tool does.
#pragma once

#include <cmath>
#include <string>

#include "linattn/core/error.h"
#include "linattn/core/view.h"

namespace linattn {

// Throws ArgumentError(op, argument, "...") naming the first non-finite element's index.
template <int R>
void require_finite(const std::string& op, const std::string& argument, View<const float, R> v) {
  std::array<int64_t, R> idx{};
  const int64_t total = v.numel();
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t rem = flat, off = 0;
    for (int i = R - 1; i >= 0; --i) {
      idx[i] = rem % v.shape[i];
      rem /= v.shape[i];
      off += idx[i] * v.stride[i];
    }
    const float x = v.data[off];
    if (!std::isfinite(x)) {
      std::string where;
      for (int i = 0; i < R; ++i) where += (i ? "," : "") + std::to_string(idx[i]);
      throw ArgumentError(op, argument,
                          std::string(std::isnan(x) ? "NaN" : "Inf") + " at [" + where + "]");
    }
  }
}

}  // namespace linattn
