#include "kernels/memory_lookup_cpu.h"

#include <algorithm>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

namespace linattn::kernels {
namespace {

// Below this many queries, read the stored rows directly (a gemv); from here on, converting the
// state to a dense fp32 matrix once and running a GEMM is cheaper.
constexpr int64_t kGemvRows = 4;
constexpr int64_t kRowBlock = 256;
// Low-rank lookups of this many queries or more run in blocks of kLowRankRows (docs/benchmarks.md).
constexpr int64_t kLowRankRows = 64, kLowRankBlockedFrom = 256;

const float* f32(const void* p) { return static_cast<const float*>(p); }
const uint16_t* bf16(const void* p) { return static_cast<const uint16_t*>(p); }

// Elements [offset, offset + n) of a stored array as fp32.
void to_f32(const void* x, DType dtype, int64_t offset, float* y, int64_t n) {
  if (dtype == DType::f32) std::copy_n(f32(x) + offset, n, y);
  else simd::bf16_to_f32(bf16(x) + offset, y, n);
}

// The first n stored numbers as fp32: the state's own f32 array, or a widened copy in buf.
const float* stored_f32(const StoredState& s, int64_t n, std::vector<float>& buf) {
  if (s.dtype == DType::f32) return f32(s.data);
  buf.resize(static_cast<size_t>(n));
  to_f32(s.data, s.dtype, 0, buf.data(), n);
  return buf.data();
}

int64_t packed_row_offset(int64_t i, int64_t d) { return i * d - i * (i - 1) / 2; }

// One query against a full or packed state, reading the stored rows: out = M^T x.
void gemv_stored(const StoredState& s, const float* x, float* out) {
  if (s.layout == Layout::full) {
    if (s.dtype == DType::f32) simd::gemv_t(f32(s.data), s.dv, x, s.dk, out, s.dv);
    else simd::gemv_t_bf16(bf16(s.data), s.dv, x, s.dk, out, s.dv);
    return;
  }
  if (s.dtype == DType::f32) simd::sym_packed_gemv(f32(s.data), s.dk, x, out);
  else simd::sym_packed_gemv_bf16(bf16(s.data), s.dk, x, out);
}

// The whole state as a dense fp32 [dk, dv] matrix (full or packed layouts).
void densify(const StoredState& s, std::vector<float>& dense) {
  dense.resize(static_cast<size_t>(s.dk * s.dv));
  densify_stored(s, dense.data(), s.dv);
}

}  // namespace

void densify_stored(const StoredState& s, float* dst, int64_t ld) {
  if (s.layout == Layout::full) {
    if (ld == s.dv) {
      to_f32(s.data, s.dtype, 0, dst, s.dk * s.dv);
    } else {
      for (int64_t i = 0; i < s.dk; ++i) to_f32(s.data, s.dtype, i * s.dv, dst + i * ld, s.dv);
    }
    return;
  }
  const int64_t d = s.dk;
  for (int64_t i = 0; i < d; ++i) to_f32(s.data, s.dtype, packed_row_offset(i, d), dst + i * ld + i, d - i);
  // The lower triangle from the upper, in tiles: element by element, the column writes would
  // touch a new cache line every time.
  constexpr int64_t kTile = 16;
  for (int64_t i0 = 0; i0 < d; i0 += kTile)
    for (int64_t j0 = i0; j0 < d; j0 += kTile)
      for (int64_t i = i0; i < std::min(d, i0 + kTile); ++i)
        for (int64_t j = std::max(j0, i + 1); j < std::min(d, j0 + kTile); ++j) dst[j * ld + i] = dst[i * ld + j];
}

int64_t stored_state_bytes(const StoredState& s) {
  const int64_t numbers = s.layout == Layout::full ? s.dk * s.dv
                          : s.layout == Layout::packed_symmetric ? s.dk * (s.dk + 1) / 2
                                                                 : s.dk * s.rank;
  return numbers * dtype_size(s.dtype);
}

void stored_lookup_cpu(const StoredState& s, CView2 q, View2 out, FeatureMap phi, float alpha,
                       float eps) {
  const int64_t m = q.shape[0], dk = s.dk, dv = s.dv;
  if (m == 0) return;
  // phi(q) for every query, contiguous: the caller's rows themselves when phi is the identity
  // and they are dense (no copy on the single-lookup path).
  std::vector<float> buf;
  const float* x = q.data;
  if (phi != FeatureMap::identity || (m > 1 && q.stride[0] != dk)) {
    buf.resize(static_cast<size_t>(m * dk));
    for (int64_t i = 0; i < m; ++i) simd::feature_map(phi, &q(i, 0), buf.data() + i * dk, dk);
    x = buf.data();
  }

  if (s.layout == Layout::low_rank && m == 1) {
    // One query: t = U^T x, t *= alpha lambda, out = U t, reading U [dk, r] twice from cache.
    // The GEMM path below spends more on its set-up and buffers than on the 2 d r multiply-adds;
    // from 2 or 3 queries on it is the faster (docs/benchmarks.md).
    const int64_t r = s.rank;
    thread_local std::vector<float> t;
    t.resize(static_cast<size_t>(r));
    float* o = &out(0, 0);
    if (s.dtype == DType::f32) simd::gemv_t(f32(s.data), r, x, dk, t.data(), r);
    else simd::gemv_t_bf16(bf16(s.data), r, x, dk, t.data(), r);
    simd::mul(s.lambda, t.data(), r);
    if (alpha != 1.f) simd::scale(t.data(), r, alpha);
    if (s.dtype == DType::f32) simd::gemv_n(f32(s.data), r, t.data(), dk, r, o);
    else simd::gemv_n_bf16(bf16(s.data), r, t.data(), dk, r, o);
  } else if (s.layout == Layout::low_rank && m < kLowRankBlockedFrom) {
    // out = ((phi(q) U) * alpha lambda) U^T : two thin GEMMs, O(m d r).
    const int64_t r = s.rank;
    std::vector<float> U, t(static_cast<size_t>(m * r));
    const float* u = stored_f32(s, dk * r, U);
    gemm(false, false, m, r, dk, 1.f, x, dk, u, r, 0.f, t.data(), r);
    for (int64_t i = 0; i < m; ++i) simd::mul(s.lambda, t.data() + i * r, r);
    gemm(false, true, m, dv, r, alpha, t.data(), r, u, r, 0.f, out.data, out.stride[0]);
  } else if (s.layout == Layout::low_rank) {
    // Many queries: the same two products in blocks of kLowRankRows queries, each small enough
    // for the JIT kernels, with the block's t in L1. Made once per call: U diag(alpha lambda),
    // so no query's t is scaled, and U^T, so the second product has no transposed operand.
    const int64_t r = s.rank;
    std::vector<float> U, Uw(static_cast<size_t>(dk * r)), Ut(Uw.size()), w(static_cast<size_t>(r));
    const float* u = stored_f32(s, dk * r, U);
    for (int64_t j = 0; j < r; ++j) w[static_cast<size_t>(j)] = alpha * s.lambda[j];
    for (int64_t c = 0; c < dk; ++c) {
      const float* row = u + c * r;
      float* row_w = Uw.data() + c * r;
      for (int64_t j = 0; j < r; ++j) {
        row_w[j] = row[j] * w[static_cast<size_t>(j)];
        Ut[static_cast<size_t>(j * dk + c)] = row[j];
      }
    }
    const int64_t blocks = (m + kLowRankRows - 1) / kLowRankRows;
    parallel_for(blocks, [&](int64_t blk, int) {
      const int64_t i0 = blk * kLowRankRows, rows = std::min(m, i0 + kLowRankRows) - i0;
      thread_local std::vector<float> t;
      t.resize(static_cast<size_t>(rows * r));
      gemm(false, false, rows, r, dk, 1.f, x + i0 * dk, dk, Uw.data(), r, 0.f, t.data(), r);
      gemm(false, false, rows, dv, r, 1.f, t.data(), r, Ut.data(), dk, 0.f, &out(i0, 0), out.stride[0]);
    });
  } else if (m < kGemvRows) {
    for (int64_t i = 0; i < m; ++i) {
      gemv_stored(s, x + i * dk, &out(i, 0));
      if (alpha != 1.f) simd::scale(&out(i, 0), dv, alpha);
    }
  } else {
    std::vector<float> dense;
    const float* M = f32(s.data);
    if (s.layout != Layout::full || s.dtype != DType::f32) {
      densify(s, dense);
      M = dense.data();
    }
    const int64_t blocks = (m + kRowBlock - 1) / kRowBlock;
    parallel_for(blocks, [&](int64_t blk, int) {
      const int64_t i0 = blk * kRowBlock, rows = std::min(m, i0 + kRowBlock) - i0;
      gemm(false, false, rows, dv, dk, alpha, x + i0 * dk, dk, M, dv, 0.f, &out(i0, 0),
           out.stride[0]);
    });
  }
  if (s.normalizer)
    for (int64_t i = 0; i < m; ++i)
      simd::scale(&out(i, 0), dv, 1.f / (simd::dot(x + i * dk, s.normalizer, dk) + eps));
}

}  // namespace linattn::kernels
