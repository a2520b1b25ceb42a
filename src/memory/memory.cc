#include "linattn/memory/memory.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/checks.h"
#include "kernels/memory_lookup_cpu.h"
#include "kernels/simd.h"
#include "linattn/ops/linear_attention.h"

namespace linattn {
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
  if (!std::isfinite(o.scale)) c.fail("options.scale", "must be finite");
  if (!(o.eps >= 0.f) || !std::isfinite(o.eps)) c.fail("options.eps", "must be finite and >= 0");
}

// Memories whose states can be added or swapped: same widths and same meaning of M and z
// (the storage dtype may differ: live states are fp32).
bool compatible(const MemoryConfig& a, const MemoryConfig& b) {
  return a.key_dim == b.key_dim && a.value_dim == b.value_dim && a.feature_map == b.feature_map &&
         a.normalize == b.normalize && a.gated == b.gated && a.symmetric == b.symmetric;
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
}

Memory::Memory(const MemoryConfig& config) : config_(config) {
  validate(config, "linattn::Memory");
  state_.assign(static_cast<size_t>(config.key_dim * config.value_dim), 0.f);
  if (config.normalize) normalizer_.assign(static_cast<size_t>(config.key_dim), 0.f);
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

MemoryView Memory::view() const {
  MemoryInfo info;
  info.config = config_;
  info.config.dtype = DType::f32;  // the live state: fp32, full layout even when symmetric
  info.layout = Layout::full;
  info.tokens = tokens_;
  info.payload_bytes = static_cast<int64_t>((state_.size() + normalizer_.size()) * sizeof(float));
  return MemoryView(info, state_.data(), config_.normalize ? normalizer_.data() : nullptr, nullptr, nullptr);
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
  kernels::simd::scale(normalizer_.data(), static_cast<int64_t>(normalizer_.size()), gamma);
  magnitude_ *= gamma;
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
  if (info_.config.normalize) z.assign(normalizer_, normalizer_ + dk);
  return Memory::from_state(info_.config, std::move(m), std::move(z), info_.tokens);
}

}  // namespace linattn
