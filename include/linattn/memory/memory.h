// linattn::Memory: a sequence encoded once into a fixed-size state, queried any number of
// times at a cost that does not depend on its length (docs/math.md).
//
//   M = sum_t g_t phi(k_t) v_t^T   [dk x dv]     z = sum_t g_t phi(k_t)   [dk]   n = tokens
//   lookup(q) = scale * M^T phi(q) [/ n with mean] [/ (z . phi(q) + eps) when normalising]
//
// A live Memory accumulates in fp32. Its configured dtype and symmetry say how it is *stored*:
// in files, banks and MemoryViews (memory_file.h, bank.h). A MemoryView is the read-only form,
// whose lookups run straight from the stored bytes (a file mapping, for instance).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "linattn/core/aligned.h"
#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn {

struct MemoryConfig {
  int64_t key_dim = 0;    // dk (K, the slot count, for a K-slot memory)
  int64_t value_dim = 0;  // dv
  FeatureMap feature_map = FeatureMap::identity;
  // Keep the normaliser z and divide lookups by z . phi(q) + eps (Katharopoulos et al.).
  bool normalize = false;
  // write() takes a weight g_t per token (the paper's scalar gate with keys = values = h is
  // g_t = sigmoid(w.h_t + b)^2; a vector gate is applied to h before writing, ops/gates.h).
  bool gated = false;
  // Keys are the values (the paper: M = H^T H): write() takes keys only, and the stored form
  // keeps the upper triangle, d(d+1)/2 numbers. Needs dk = dv and the identity feature map.
  bool symmetric = false;
  DType dtype = DType::f32;  // storage dtype
  // The relatives (docs/memory.md#relatives) take the identity feature map, no normaliser and no
  // gates:
  //   galerkin: write() layer-normalises every key and value row (no affine part) before adding
  //     it; lookups are linear ones (with the mean: Galerkin attention). May be symmetric.
  //   content_lambda: write() keeps A = sum_t exp(k_t - m) v_t^T, the exp-sums s and the
  //     per-channel maxima m (normalizer() = [s; m], 2 dk numbers); a lookup answers
  //     lambda^T q with lambda = A / s (rows), exactly softmax_T(K)^T V over every token written.
  //   kslot: keys are slot scores [T, K], softmax-ed over the K slots on write (no position
  //     encoding: it would depend on the whole length); queries are slot scores too, softmax-ed
  //     on lookup. Never symmetric.
  MemoryKind kind = MemoryKind::linear;
};

struct LookupOptions {
  // Divide by the token count n, as the authors' code does (r = 1000 C q / n with scale 1000).
  // Exclusive with a normalising memory. An empty memory answers 0.
  bool mean = false;
  float scale = 1.f;
  float eps = 1e-6f;  // normalising memories: r / (z . phi(q) + eps)
};

// Everything a stored memory declares about itself.
struct MemoryInfo {
  MemoryConfig config;
  Layout layout = Layout::full;
  int64_t rank = 0;                 // low-rank layout only
  double compression_error = 0.0;   // low rank: ||M - M_r||_F / ||M||_F
  int64_t tokens = 0;
  int64_t payload_bytes = 0;        // the stored numbers (state, normaliser, eigenvalues)
};

class MemoryView;

class Memory {
 public:
  // Throws ArgumentError for unusable configurations (sizes < 1, symmetric with dk != dv or a
  // feature map, unknown enums).
  explicit Memory(const MemoryConfig& config);

  const MemoryConfig& config() const { return config_; }
  int64_t tokens() const { return tokens_; }

  // Adds T tokens: keys [T, dk], values [T, dv] (omitted when symmetric), gates [T] (exactly
  // when gated). Writing in chunks equals writing at once, to rounding. Inputs whose products
  // would overflow float32 (or that are not finite) throw ArgumentError and leave the memory as
  // it was: a memory never holds Inf or NaN.
  void write(CView2 keys, CView2 values = {}, CView1 gates = {});

  // queries [m, dk] -> out [m, dv].
  void lookup(CView2 queries, View2 out, const LookupOptions& options = {}) const;
  // One query: returns dv numbers.
  std::vector<float> lookup(std::span<const float> query, const LookupOptions& options = {}) const;

  // Adds a memory encoded apart (same configuration): shards merged equal the whole. A sum that
  // would overflow float32 throws ArgumentError and leaves the memory as it was.
  void merge(const Memory& other);
  // Exponential forgetting: M, z *= gamma (0 <= gamma <= 1). The token count is unchanged.
  void decay(float gamma);
  // A copy of the current state, and back to it. Costs dk*dv numbers, never a re-encode.
  Memory snapshot() const { return *this; }
  void restore(const Memory& snapshot);
  // Back to empty.
  void reset();

  // The fp32 state M [dk, dv] and normaliser z [dk] (empty unless normalising; for a
  // content-lambda memory, its exp-sums and channel maxima [2 dk]).
  CView2 state() const { return CView2::contiguous(state_.data(), {config_.key_dim, config_.value_dim}); }
  std::span<const float> normalizer() const { return normalizer_; }
  // A read-only view of this live memory (fp32, full layout), valid while it lives unchanged.
  MemoryView view() const;
  // Builds a memory from stored numbers (used by the file and bank readers).
  static Memory from_state(const MemoryConfig& config, std::vector<float> state,
                           std::vector<float> normalizer, int64_t tokens);

 private:
  MemoryConfig config_;
  AlignedVector<float> state_;       // [dk, dv], fp32, full even when stored packed
  AlignedVector<float> normalizer_;  // [dk] when normalising
  int64_t tokens_ = 0;
  // An upper bound on every |entry| of the state and normaliser. While it stays far below
  // float32's range, writes and merges cannot overflow and take the fast path; near it they
  // are checked against a copy (which costs dk*dv numbers).
  double magnitude_ = 0;
  // Applies `change` to the state; if the bound says it might overflow, on a copy that is kept
  // only when every number is finite.
  template <class Change>
  void change_checked(double added_magnitude, const char* op, const char* argument, Change&& change);
  void write_content_lambda(CView2 keys, CView2 values);
};

// A read-only stored memory: lookups straight from its bytes, in any layout and dtype.
// Keeps its backing storage (a file mapping, a buffer) alive for as long as it exists.
class MemoryView {
 public:
  MemoryView(const MemoryInfo& info, const void* state, const float* normalizer,
             const float* lambda, std::shared_ptr<const void> keepalive);

  const MemoryInfo& info() const { return info_; }
  void lookup(CView2 queries, View2 out, const LookupOptions& options = {}) const;
  std::vector<float> lookup(std::span<const float> query, const LookupOptions& options = {}) const;
  // A mutable fp32 copy (full or packed layouts; a low-rank memory is read-only).
  Memory to_memory() const;

  const void* state_data() const { return state_; }
  const float* normalizer_data() const { return normalizer_; }
  const float* lambda_data() const { return lambda_; }

 private:
  MemoryInfo info_;
  const void* state_;
  const float* normalizer_;
  const float* lambda_;
  std::shared_ptr<const void> keepalive_;
};

// Checks a configuration; throws ArgumentError naming the field.
void validate(const MemoryConfig& config, const char* op);

}  // namespace linattn
