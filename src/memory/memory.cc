#include "linattn/memory/memory.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/checks.h"
#include "kernels/kslot_memory_cpu.h"
#include "kernels/memory_lookup_cpu.h"
#include "kernels/simd.h"
#include "linattn/ops/galerkin_attention.h"
#include "linattn/ops/linear_attention.h"

namespace linattn {

using detail::extent;
namespace {

// A row view [T, d] seen as the [1, 1, T, d] view the operators take.
CView4 as_batch(CView2 rows) {
  return CView4(rows.data, {1, 1, rows.shape[0], rows.shape[1]}, {0, 0, rows.stride[0], rows.stride[1]});
}

void check_lookup(const detail::Checks& c, const MemoryInfo& info, CView2 q, View2 out,
                  const LookupOptions& o) {
  c.view("queries", q, false);
  c.view("out", out, true);
  c.dim("queries", q, 1, info.config.key_dim, "the memory's key width dk");
  c.dim("out", out, 0, q.shape[0], "the query count");
  c.dim("out", out, 1, info.config.value_dim, "the memory's value width dv");
  if (o.mean && info.config.normalize)
    c.fail("options.mean", "a normalising memory is already a weighted mean");
  // A K-slot memory's slots are sums over tokens (mean divides them by n); a lambda's are means.
  if (o.mean && info.config.kind == MemoryKind::content_lambda)
    c.fail("options.mean", "a content-lambda memory is already a weighted mean");
  if (!std::isfinite(o.scale)) c.fail("options.scale", "must be finite");
  if (!(o.eps >= 0.f) || !std::isfinite(o.eps)) c.fail("options.eps", "must be finite and >= 0");
}

// Memories whose states can be added or swapped: same widths and same meaning of M and z
// (the storage dtype may differ: live states are fp32).
bool compatible(const MemoryConfig& a, const MemoryConfig& b) {
  return a.key_dim == b.key_dim && a.value_dim == b.value_dim && a.feature_map == b.feature_map &&
         a.normalize == b.normalize && a.gated == b.gated && a.symmetric == b.symmetric && a.kind == b.kind;
}

// Numbers beside the state: z [dk] when normalising, [s; m] [2 dk] for a content lambda.
int64_t normalizer_size(const MemoryConfig& c) {
  if (c.kind == MemoryKind::content_lambda) return 2 * c.key_dim;
  return c.normalize ? c.key_dim : 0;
}

}  // namespace

void validate(const MemoryConfig& config, const char* op) {
  const detail::Checks c(op);
  c.positive("config.key_dim", config.key_dim, "the key width dk");
  c.positive("config.value_dim", config.value_dim, "the value width dv");
  // Bounded so that dk * dv * 4 bytes cannot overflow (and a declared size stays plausible).
  constexpr int64_t kMaxDim = int64_t{1} << 20;
  if (config.key_dim > kMaxDim || config.value_dim > kMaxDim)
    c.fail("config", "widths above 2^20 are not supported");
  if (!parse_feature_map(to_string(config.feature_map)))
    c.fail("config.feature_map", "unknown feature map " + std::to_string(int(config.feature_map)));
  if (!parse_dtype(to_string(config.dtype)))
    c.fail("config.dtype", "unknown dtype " + std::to_string(int(config.dtype)));
  if (config.symmetric && config.key_dim != config.value_dim)
    c.fail("config.symmetric", "needs key_dim == value_dim, got " + std::to_string(config.key_dim) +
                                   " and " + std::to_string(config.value_dim));
  if (config.symmetric && config.feature_map != FeatureMap::identity)
    c.fail("config.symmetric", "needs the identity feature map (phi(h) h^T is not symmetric)");
  if (!parse_memory_kind(to_string(config.kind))) c.fail("config.kind", "unknown kind " + std::to_string(int(config.kind)));
  if (config.kind != MemoryKind::linear) {
    const std::string kind(to_string(config.kind));
    if (config.feature_map != FeatureMap::identity || config.normalize || config.gated)
      c.fail("config.kind", "a " + kind + " memory takes no feature map, normaliser or gates");
    if (config.symmetric && config.kind != MemoryKind::galerkin)
      c.fail("config.symmetric", "a " + kind + " memory is not symmetric");
  }
}

Memory::Memory(const MemoryConfig& config) : config_(config) {
  validate(config, "linattn::Memory");
  state_.assign(static_cast<size_t>(config.key_dim * config.value_dim), 0.f);
  normalizer_.assign(static_cast<size_t>(normalizer_size(config)), 0.f);
}

namespace {

// Well inside float32's range (3.4e38): sums of numbers bounded by it cannot overflow.
constexpr double kSafeMagnitude = 1e37;

// The largest |x|, NaN when any is NaN (so that every bound built on it fails its check).
double larger(double a, double b) { return std::isnan(a) || a >= b ? a : b; }

double max_abs(const float* x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = larger(m, std::fabs(static_cast<double>(x[i])));
  return m;
}

template <int R>
double max_abs_view(const View<const float, R>& v) {
  if (!v.present() || v.numel() == 0) return 0;
  double m = 0;
  if constexpr (R == 1) {
    for (int64_t i = 0; i < v.shape[0]; ++i) m = larger(m, max_abs(&v(i), 1));
  } else {
    for (int64_t i = 0; i < v.shape[0]; ++i) m = larger(m, max_abs(&v(i, 0), static_cast<size_t>(v.shape[1])));
  }
  return m;
}

// The relatives exponentiate their keys (and the K-slot memory its queries): a NaN or Inf there
// would turn into NaN weights, so it is refused up front with the argument's name.
void finite_rows(const detail::Checks& c, const char* name, CView2 x) {
  for (int64_t t = 0; t < x.shape[0]; ++t)
    for (int64_t i = 0; i < x.shape[1]; ++i)
      if (!std::isfinite(x(t, i))) c.fail(name, "holds a value that is not finite (row " + std::to_string(t) + ")");
}

}  // namespace

template <class Change>
void Memory::change_checked(double added, const char* op, const char* argument, Change&& change) {
  const double bound = magnitude_ + added;
  if (bound < kSafeMagnitude) {  // also false for NaN and Inf
    change();
    magnitude_ = bound;
    return;
  }
  const AlignedVector<float> state = state_, normalizer = normalizer_;
  change();
  const double now = larger(max_abs(state_.data(), state_.size()), max_abs(normalizer_.data(), normalizer_.size()));
  if (!(now <= std::numeric_limits<float>::max())) {
    state_ = state;
    normalizer_ = normalizer;
    throw ArgumentError(op, argument,
                        "would take the memory past float32's range (Inf or NaN); the memory is unchanged");
  }
  magnitude_ = now;
}

Memory Memory::from_state(const MemoryConfig& config, std::vector<float> state,
                          std::vector<float> normalizer, int64_t tokens) {
  Memory m(config);
  if (state.size() != m.state_.size() || normalizer.size() != m.normalizer_.size() || tokens < 0)
    throw ArgumentError("linattn::Memory::from_state", "state", "sizes do not match the configuration");
  m.state_.assign(state.begin(), state.end());
  m.normalizer_.assign(normalizer.begin(), normalizer.end());
  m.tokens_ = tokens;
  m.magnitude_ = larger(max_abs(m.state_.data(), m.state_.size()), max_abs(m.normalizer_.data(), m.normalizer_.size()));
  return m;
}

void Memory::write(CView2 keys, CView2 values, CView1 gates) {
  const detail::Checks c("linattn::Memory::write");
  c.view("keys", keys, false);
  c.dim("keys", keys, 1, config_.key_dim, "the memory's key width dk");
  const int64_t T = keys.shape[0];
  if (config_.symmetric) {
    if (values.present()) c.fail("values", "must be omitted: a symmetric memory's values are its keys");
    values = keys;
  } else {
    if (!values.present() && T > 0) c.fail("values", "are required (the memory is not symmetric)");
    c.view("values", values, false);
    c.dim("values", values, 0, T, "the number of keys");
    c.dim("values", values, 1, config_.value_dim, "the memory's value width dv");
  }
  if (config_.gated != gates.present())
    c.fail("gates", config_.gated ? "are required: the memory is gated" : "are given but the memory is not gated");
  if (gates.present()) {
    c.view("gates", gates, false);
    c.dim("gates", gates, 0, T, "the number of keys");
  }
  if (T == 0) return;
  if (config_.kind == MemoryKind::content_lambda) return write_content_lambda(keys, values);
  // Galerkin's normalised rows and the K-slot memory's slot weights, dense.
  std::vector<float> key_rows, value_rows;
  if (config_.kind == MemoryKind::galerkin) {
    key_rows.resize(static_cast<size_t>(T * config_.key_dim));
    galerkin_normalize_rows(as_batch(keys), View4::contiguous(key_rows.data(), {1, 1, T, config_.key_dim}));
    keys = CView2::contiguous(key_rows.data(), {T, config_.key_dim});
    if (config_.symmetric) {
      values = keys;
    } else {
      value_rows.resize(static_cast<size_t>(T * config_.value_dim));
      galerkin_normalize_rows(as_batch(values), View4::contiguous(value_rows.data(), {1, 1, T, config_.value_dim}));
      values = CView2::contiguous(value_rows.data(), {T, config_.value_dim});
    }
  } else if (config_.kind == MemoryKind::kslot) {
    key_rows.resize(static_cast<size_t>(T * config_.key_dim));
    finite_rows(c, "keys", keys);
    kernels::kslot_weights(keys.data, keys.stride[0], T, config_.key_dim, false, key_rows.data(), config_.key_dim);
    keys = CView2::contiguous(key_rows.data(), {T, config_.key_dim});
  }
  View4 state = View4::contiguous(state_.data(), {1, 1, config_.key_dim, config_.value_dim});
  View3 z = config_.normalize ? View3::contiguous(normalizer_.data(), {1, 1, config_.key_dim}) : View3{};
  const CView3 g = gates.present() ? CView3(gates.data, {1, 1, T}, {0, 0, gates.stride[0]}) : CView3{};
  // |phi(k)| <= |k| + 1 for every feature map; each entry grows by at most T |phi(k)| |v| |g|
  // (z by T |phi(k)| |g|).
  const double added = static_cast<double>(T) * (max_abs_view(keys) + 1) * std::max(max_abs_view(values), 1.0) *
                       (gates.present() ? max_abs_view(gates) : 1.0);
  change_checked(added, "linattn::Memory::write", "keys", [&] {
    linear_attention_encode(as_batch(keys), as_batch(values), state, z,
                            {.feature_map = config_.feature_map, .accumulate = true}, {}, g);
  });
  tokens_ += T;
}

// keys [T, dk] and values [T, dv], checked. Per channel i, with m_i the largest key seen:
// A[i, :] = sum_t exp(k_ti - m_i) v_t and s_i = sum_t exp(k_ti - m_i); a new chunk with a larger
// maximum first rescales both by exp(m_old - m_new) <= 1. Every weight is <= 1: nothing
// overflows but the values' own sums.
void Memory::write_content_lambda(CView2 keys, CView2 values) {
  const detail::Checks c("linattn::Memory::write");
  finite_rows(c, "keys", keys);
  const int64_t T = keys.shape[0], dk = config_.key_dim, dv = config_.value_dim;
  std::vector<float> m_new(static_cast<size_t>(dk)), w(static_cast<size_t>(T * dk));
  for (int64_t i = 0; i < dk; ++i) {
    float mx = tokens_ > 0 ? normalizer_[static_cast<size_t>(dk + i)] : keys(0, i);
    for (int64_t t = 0; t < T; ++t) mx = std::max(mx, keys(t, i));
    m_new[static_cast<size_t>(i)] = mx;
    for (int64_t t = 0; t < T; ++t) w[static_cast<size_t>(t * dk + i)] = std::exp(keys(t, i) - mx);
  }
  const double added = static_cast<double>(T) * std::max(max_abs_view(values), 1.0) + max_abs(m_new.data(), m_new.size());
  change_checked(added, "linattn::Memory::write", "values", [&] {
    for (int64_t i = 0; i < dk; ++i) {
      float& sum = normalizer_[static_cast<size_t>(i)];
      float& mx = normalizer_[static_cast<size_t>(dk + i)];
      if (tokens_ > 0) {
        const float r = std::exp(mx - m_new[static_cast<size_t>(i)]);
        kernels::simd::scale(state_.data() + i * dv, dv, r);
        sum *= r;
      }
      mx = m_new[static_cast<size_t>(i)];
      double add = 0;
      for (int64_t t = 0; t < T; ++t) add += w[static_cast<size_t>(t * dk + i)];
      sum += static_cast<float>(add);
    }
    linear_attention_encode(CView4::contiguous(w.data(), {1, 1, T, dk}), as_batch(values),
                            View4::contiguous(state_.data(), {1, 1, dk, dv}), {}, {.accumulate = true});
  });
  tokens_ += T;
}

MemoryView Memory::view() const {
  MemoryInfo info;
  info.config = config_;
  info.config.dtype = DType::f32;  // the live state: fp32, full layout even when symmetric
  info.layout = Layout::full;
  info.tokens = tokens_;
  info.payload_bytes = static_cast<int64_t>((state_.size() + normalizer_.size()) * sizeof(float));
  return MemoryView(info, state_.data(), normalizer_.empty() ? nullptr : normalizer_.data(), nullptr, nullptr);
}

void Memory::lookup(CView2 queries, View2 out, const LookupOptions& options) const {
  view().lookup(queries, out, options);
}

std::vector<float> Memory::lookup(std::span<const float> query, const LookupOptions& options) const {
  return view().lookup(query, options);
}

void Memory::merge(const Memory& other) {
  const detail::Checks c("linattn::Memory::merge");
  if (!compatible(config_, other.config_))
    c.fail("other", "has a different configuration (widths, feature map, normalisation, gating or symmetry)");
  if (config_.kind == MemoryKind::content_lambda && other.tokens_ > 0 && tokens_ > 0) {
    // Each side's sums rescaled to the larger maximum of each channel, then added.
    const int64_t dk = config_.key_dim, dv = config_.value_dim;
    const Memory theirs = other;  // a copy: `other` may be this memory
    change_checked(other.magnitude_, "linattn::Memory::merge", "other", [&] {
      for (int64_t i = 0; i < dk; ++i) {
        const float ma = normalizer_[static_cast<size_t>(dk + i)], mb = theirs.normalizer_[static_cast<size_t>(dk + i)];
        const float mx = std::max(ma, mb), ra = std::exp(ma - mx), rb = std::exp(mb - mx);
        float* row = state_.data() + i * dv;
        kernels::simd::scale(row, dv, ra);
        kernels::simd::axpy(rb, theirs.state_.data() + i * dv, row, dv);
        normalizer_[static_cast<size_t>(i)] = normalizer_[static_cast<size_t>(i)] * ra + theirs.normalizer_[static_cast<size_t>(i)] * rb;
        normalizer_[static_cast<size_t>(dk + i)] = mx;
      }
    });
    tokens_ += theirs.tokens_;
    return;
  }
  if (config_.kind == MemoryKind::content_lambda) {  // one side is empty: the other's sums and maxima are the whole
    if (tokens_ == 0) restore(other);
    return;
  }
  change_checked(other.magnitude_, "linattn::Memory::merge", "other", [&] {
    if (&other == this) {  // merging with itself doubles it
      kernels::simd::scale(state_.data(), static_cast<int64_t>(state_.size()), 2.f);
      kernels::simd::scale(normalizer_.data(), static_cast<int64_t>(normalizer_.size()), 2.f);
    } else {
      kernels::simd::axpy(1.f, other.state_.data(), state_.data(), static_cast<int64_t>(state_.size()));
      kernels::simd::axpy(1.f, other.normalizer_.data(), normalizer_.data(),
                          static_cast<int64_t>(normalizer_.size()));
    }
  });
  tokens_ += other.tokens_;
}

void Memory::decay(float gamma) {
  if (!(gamma >= 0.f && gamma <= 1.f))
    throw ArgumentError("linattn::Memory::decay", "gamma", "must be in [0, 1], got " + std::to_string(gamma));
  kernels::simd::scale(state_.data(), static_cast<int64_t>(state_.size()), gamma);
  // A content lambda's channel maxima are positions on the exp scale, not amounts: unscaled.
  const int64_t scaled = config_.kind == MemoryKind::content_lambda ? config_.key_dim : static_cast<int64_t>(normalizer_.size());
  kernels::simd::scale(normalizer_.data(), scaled, gamma);
  if (config_.kind != MemoryKind::content_lambda) magnitude_ *= gamma;
}

void Memory::restore(const Memory& snapshot) {
  if (!compatible(config_, snapshot.config_))
    throw ArgumentError("linattn::Memory::restore", "snapshot", "was taken of a memory with another configuration");
  state_ = snapshot.state_;
  normalizer_ = snapshot.normalizer_;
  tokens_ = snapshot.tokens_;
  magnitude_ = snapshot.magnitude_;
}

void Memory::reset() {
  std::fill(state_.begin(), state_.end(), 0.f);
  std::fill(normalizer_.begin(), normalizer_.end(), 0.f);
  tokens_ = 0;
  magnitude_ = 0;
}

MemoryView::MemoryView(const MemoryInfo& info, const void* state, const float* normalizer,
                       const float* lambda, std::shared_ptr<const void> keepalive)
    : info_(info), state_(state), normalizer_(normalizer), lambda_(lambda), keepalive_(std::move(keepalive)) {}

void MemoryView::lookup(CView2 queries, View2 out, const LookupOptions& options) const {
  const detail::Checks c("linattn::MemoryView::lookup");
  check_lookup(c, info_, queries, out, options);
  float alpha = options.scale;
  if (options.mean) alpha = info_.tokens > 0 ? options.scale / static_cast<float>(info_.tokens) : 0.f;
  kernels::StoredState s;
  s.data = state_;
  s.dtype = info_.config.dtype;
  s.layout = info_.layout;
  s.dk = info_.config.key_dim;
  s.dv = info_.config.value_dim;
  s.rank = info_.rank;
  s.lambda = lambda_;
  s.normalizer = info_.config.normalize ? normalizer_ : nullptr;
  // The stored numbers seen as floats only to locate them (a bf16 state spans half as many).
  const int64_t dk = info_.config.key_dim, state_floats = (kernels::stored_state_bytes(s) + 3) / 4;
  c.apart({extent("out", out)},
          {extent("queries", queries), extent("the memory's state", CView1(static_cast<const float*>(state_), {state_floats}, {1})),
           extent("the memory's normaliser", CView1(normalizer_, {normalizer_ ? normalizer_size(info_.config) : 0}, {1})),
           extent("the memory's spectrum", CView1(lambda_, {lambda_ ? info_.rank : 0}, {1}))});
  // The relatives' queries: slot weights (K-slot), or q_i / s_i (content lambda, so that the
  // stored sums A read as lambda = A / s).
  std::vector<float> transformed;
  const int64_t m = queries.shape[0];
  if (info_.config.kind == MemoryKind::kslot || info_.config.kind == MemoryKind::content_lambda) {
    finite_rows(c, "queries", queries);
    transformed.resize(static_cast<size_t>(m * dk));
    if (info_.config.kind == MemoryKind::kslot) {
      kernels::kslot_weights(queries.data, queries.stride[0], m, dk, false, transformed.data(), dk);
    } else {
      for (int64_t r = 0; r < m; ++r)
        for (int64_t i = 0; i < dk; ++i) {
          const float sum = normalizer_[i];
          transformed[static_cast<size_t>(r * dk + i)] = sum > 0 ? queries(r, i) / sum : 0.f;
        }
    }
    queries = CView2::contiguous(transformed.data(), {m, dk});
  }
  kernels::stored_lookup_cpu(s, queries, out, info_.config.feature_map, alpha, options.eps);
}

std::vector<float> MemoryView::lookup(std::span<const float> query, const LookupOptions& options) const {
  if (static_cast<int64_t>(query.size()) != info_.config.key_dim)
    throw ArgumentError("linattn::MemoryView::lookup", "query",
                        "has " + std::to_string(query.size()) + " numbers, the key width dk is " +
                            std::to_string(info_.config.key_dim));
  std::vector<float> out(static_cast<size_t>(info_.config.value_dim));
  lookup(CView2::contiguous(query.data(), {1, info_.config.key_dim}),
         View2::contiguous(out.data(), {1, info_.config.value_dim}), options);
  return out;
}

Memory MemoryView::to_memory() const {
  const int64_t dk = info_.config.key_dim, dv = info_.config.value_dim;
  if (info_.layout == Layout::low_rank)
    throw ArgumentError("linattn::MemoryView::to_memory", "memory", "a low-rank (compressed) memory is read-only");
  // Densify through the lookup kernel: the lookup of unit vector e_i is row i of M, read back
  // exactly in fp32 (bf16 widened, packed mirrored): products with 0 and 1 are exact.
  std::vector<float> eye(static_cast<size_t>(dk * dk), 0.f), m(static_cast<size_t>(dk * dv));
  for (int64_t i = 0; i < dk; ++i) eye[static_cast<size_t>(i * dk + i)] = 1.f;
  kernels::StoredState s{state_, info_.config.dtype, info_.layout, dk, dv, 0, nullptr, nullptr};
  kernels::stored_lookup_cpu(s, CView2::contiguous(eye.data(), {dk, dk}),
                             View2::contiguous(m.data(), {dk, dv}), FeatureMap::identity, 1.f, 0.f);
  std::vector<float> z;
  if (normalizer_ && (info_.config.normalize || info_.config.kind == MemoryKind::content_lambda))
    z.assign(normalizer_, normalizer_ + normalizer_size(info_.config));
  return Memory::from_state(info_.config, std::move(m), std::move(z), info_.tokens);
}

}  // namespace linattn
