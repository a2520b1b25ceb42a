// CausalAlgorithm::automatic's choice, measured on the machine it runs on: which of the chunks
// and the token-by-token recurrence is faster depends on the core (its caches, its vector and
// matrix units) as much as on the shape, and limits measured on one CPU were wrong on another.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "linattn/core/error.h"
#include "linattn/ops/causal_linear_attention.h"

namespace linattn {
namespace {

// The kind of sequence a choice holds for (everything the two algorithms' costs depend on but
// the length, the batch and the heads).
using Key = std::tuple<int64_t, int64_t, DecayKind, bool, bool, FeatureMap, int64_t, bool>;

// Long sequences are decided by timing both algorithms on kProbeHeads sequences of kProbeLength
// side by side, threaded over the heads as a call is: many chunks each, so that per-chunk costs
// are paid as in a long sequence, and a working set (inputs, outputs, the chunks' states) past
// the per-core caches, as in a training batch. One sequence of 256 tokens stays in L2 and
// favoured the chunks, which the recurrence then beat by 1.5x at B = 4, H = 8, T = 4,096.
// Then the same probe with more or fewer heads: the chunks read their inputs more than once and
// lose ground as the working set leaves the last cache, which the length alone does not tell
// (docs/causal.md).
constexpr int64_t kProbeHeads = 16, kProbeLength = 512, kProbeLadder = 3;

CausalCalibration mode_from_environment() {
  const char* e = std::getenv("LINATTN_CAUSAL_CALIBRATION");
  if (!e || std::string(e).empty() || std::string(e) == "measure") return CausalCalibration::measure;
  if (std::string(e) == "off") return CausalCalibration::builtin;
  throw ArgumentError("linattn", "LINATTN_CAUSAL_CALIBRATION", "must be 'measure' or 'off', got '" + std::string(e) + "'");
}

struct State {
  std::mutex mutex;
  bool mode_read = false;
  CausalCalibration mode = CausalCalibration::measure;
  std::map<Key, CausalAutomaticChoice> choices;
};

State& state() {
  static State s;
  return s;
}

CausalAutomaticChoice builtin_choice(int64_t dk, int64_t dv, bool normalize, bool backward) {
  const bool small_state = dk * (dv + (normalize ? 1 : 0)) <= kCausalRecurrentMaxState;
  CausalAutomaticChoice c;
  c.max_recurrent_length = backward ? kCausalRecurrentBackwardMaxLength
                                    : (small_state ? kCausalRecurrentSmallStateMaxLength : kCausalRecurrentMaxLength);
  return c;
}

// Synthetic inputs of `heads` sequences of length T for the key's configuration, and a timer of
// either algorithm on them (nanoseconds per token, best of 3 after one warm-up run).
class Probe {
 public:
  Probe(const Key& key, int64_t heads, int64_t T) : key_(key), H_(heads), T_(T) {
    const int64_t dk = std::get<0>(key), dv = std::get<1>(key);
    const DecayKind decay = std::get<2>(key);
    const bool gated = std::get<3>(key);
    auto fill = [](std::vector<float>& x, size_t n, uint32_t seed, float lo, float hi) {
      x.resize(n);
      uint32_t s = seed;
      for (float& e : x) {  // a fixed xorshift: the same inputs every run, no library state touched
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        e = lo + (hi - lo) * static_cast<float>(s >> 8) / static_cast<float>(1u << 24);
      }
    };
    const int64_t tokens = heads * T;
    fill(q_, static_cast<size_t>(tokens * dk), 1, -0.5f, 0.5f);
    fill(k_, static_cast<size_t>(tokens * dk), 2, -0.5f, 0.5f);
    fill(v_, static_cast<size_t>(tokens * dv), 3, -0.5f, 0.5f);
    fill(dout_, static_cast<size_t>(tokens * dv), 4, -0.5f, 0.5f);
    out_.resize(v_.size());
    dq_.resize(q_.size());
    dk_.resize(k_.size());
    dv_.resize(v_.size());
    if (gated) fill(gates_, static_cast<size_t>(tokens), 5, 0.25f, 1.f);
    switch (decay) {
      case DecayKind::none: break;
      case DecayKind::per_head: per_head_.assign(static_cast<size_t>(heads), 0.99f); break;
      case DecayKind::per_step: fill(logs_, static_cast<size_t>(tokens), 6, -0.05f, 0.f); break;
      case DecayKind::per_channel: fill(logs_, static_cast<size_t>(tokens * dk), 6, -0.05f, 0.f); break;
    }
    dgates_.resize(gates_.size());
    dlogs_.resize(logs_.size());
  }

  double ns_per_token(CausalAlgorithm algorithm, int runs = 3) {
    // Plain copies, not structured bindings: lambdas below capture them (clang 14 cannot capture bindings).
    const int64_t dk = std::get<0>(key_), dv = std::get<1>(key_);
    const DecayKind decay_kind = std::get<2>(key_);
    const bool gated = std::get<3>(key_), normalize = std::get<4>(key_), backward = std::get<7>(key_);
    const FeatureMap phi = std::get<5>(key_);
    const int64_t chunk = std::get<6>(key_);
    const CausalLinearAttentionOptions o{.feature_map = phi, .normalize = normalize, .chunk_size = chunk, .algorithm = algorithm};
    const std::array<int64_t, 4> sk{1, H_, T_, dk}, sv{1, H_, T_, dv};
    const CView4 q = CView4::contiguous(q_.data(), sk), k = CView4::contiguous(k_.data(), sk),
                 v = CView4::contiguous(v_.data(), sv), dout = CView4::contiguous(dout_.data(), sv);
    Decay decay{.kind = decay_kind};
    if (decay_kind == DecayKind::per_head) decay.per_head = CView1::contiguous(per_head_.data(), {H_});
    if (decay_kind == DecayKind::per_step) decay.per_step = CView3::contiguous(logs_.data(), {1, H_, T_});
    if (decay_kind == DecayKind::per_channel) decay.per_channel = CView4::contiguous(logs_.data(), sk);
    const CausalInputs in{.gates = gated ? CView3::contiguous(gates_.data(), {1, H_, T_}) : CView3{}};
    CausalLinearAttentionGrads g{View4::contiguous(dq_.data(), sk), View4::contiguous(dk_.data(), sk),
                                 View4::contiguous(dv_.data(), sv)};
    if (gated) g.dgates = View3::contiguous(dgates_.data(), {1, H_, T_});
    if (decay_kind == DecayKind::per_step) g.dper_step = View3::contiguous(dlogs_.data(), {1, H_, T_});
    if (decay_kind == DecayKind::per_channel) g.dper_channel = View4::contiguous(dlogs_.data(), sk);
    auto run = [&] {
      if (backward) causal_linear_attention_backward(q, k, v, dout, g, decay, o, in);
      else causal_linear_attention(q, k, v, View4::contiguous(out_.data(), sv), decay, o, in);
    };
    run();
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
    }
    return best / static_cast<double>(H_ * T_);
  }

 private:
  Key key_;
  int64_t H_, T_;
  std::vector<float> q_, k_, v_, dout_, out_, dq_, dk_, dv_, gates_, dgates_, per_head_, logs_, dlogs_;
};

// The recurrence costs the same per token at any length and working set; the chunks cost less
// per token as the length grows to a few chunks, and more as the working set grows past the
// caches. So the first probe's verdict is followed up or down its ladder of working sets (the
// same probe with 2x and 4x the heads when the chunks win, 1/2x and 1/4x when the recurrence
// does) to where it turns: calls from the geometric mean of the two working sets either side of
// the turn run token by token. A recurrence that wins down to the smallest probe runs every call
// token by token; otherwise sequences up to the longest power of two, from 2 up, where it still
// wins on one sequence run token by token too (short sequences stay in cache whatever the batch).
CausalAutomaticChoice measure(const Key& key) {
  const int64_t dk = std::get<0>(key), dv = std::get<1>(key);
  const DecayKind decay = std::get<2>(key);
  const bool gated = std::get<3>(key), backward = std::get<7>(key);
  auto bytes = [&](int64_t heads) {
    return static_cast<double>(causal_working_set_bytes(1, heads, kProbeLength, dk, dv, decay, gated, backward));
  };
  CausalAutomaticChoice c;
  c.measured = true;
  c.measured_at_length = kProbeLength;
  c.measured_heads = kProbeHeads;
  {
    Probe p(key, kProbeHeads, kProbeLength);
    c.recurrent_ns_per_token = p.ns_per_token(CausalAlgorithm::recurrent);
    c.chunked_ns_per_token = p.ns_per_token(CausalAlgorithm::chunked);
  }
  c.last_probe_heads = kProbeHeads;
  c.last_recurrent_ns_per_token = c.recurrent_ns_per_token;
  c.last_chunked_ns_per_token = c.chunked_ns_per_token;
  const bool recurrence_won = c.recurrent_ns_per_token <= c.chunked_ns_per_token;
  bool turned = false;
  for (int64_t step = 1, heads = kProbeHeads; step < kProbeLadder && !turned; ++step) {
    heads = recurrence_won ? heads / 2 : heads * 2;
    Probe p(key, heads, kProbeLength);
    c.last_probe_heads = heads;
    // Best of 2: the larger probes are the long ones (up to 64 sequences of 512 tokens).
    c.last_recurrent_ns_per_token = p.ns_per_token(CausalAlgorithm::recurrent, 2);
    c.last_chunked_ns_per_token = p.ns_per_token(CausalAlgorithm::chunked, 2);
    turned = (c.last_recurrent_ns_per_token <= c.last_chunked_ns_per_token) != recurrence_won;
    // The turn is between this probe and the one before (twice its working set going down, half
    // going up): their geometric mean.
    if (turned) c.recurrent_from_bytes = static_cast<int64_t>(recurrence_won ? bytes(heads) * std::sqrt(2.0)
                                                                             : bytes(heads) / std::sqrt(2.0));
  }
  if (recurrence_won && !turned) {
    c.max_recurrent_length = std::numeric_limits<int64_t>::max();
    c.recurrent_from_bytes = 0;
    return c;
  }
  c.max_recurrent_length = 1;
  for (int64_t T = 2; T < kProbeLength; T *= 2) {
    Probe p(key, 1, T);
    if (p.ns_per_token(CausalAlgorithm::recurrent) > p.ns_per_token(CausalAlgorithm::chunked)) break;
    c.max_recurrent_length = T;
  }
  return c;
}

}  // namespace

int64_t causal_working_set_bytes(int64_t B, int64_t H, int64_t T, int64_t dk, int64_t dv, DecayKind decay, bool gated,
                                 bool backward) {
  // Per token: q, k (dk each), v and out (dv each), a gate, the log decays; backward, dout in
  // place of out and dq, dk, dv (and the decays' and gates' gradients) beside them.
  const int64_t logs = decay == DecayKind::per_channel ? dk : decay == DecayKind::per_step ? 1 : 0;
  const int64_t per_token = (backward ? 4 * dk + 3 * dv : 2 * dk + 2 * dv) + (gated ? 1 : 0) * (backward ? 2 : 1) +
                            logs * (backward ? 2 : 1);
  return B * H * T * per_token * static_cast<int64_t>(sizeof(float));
}

void set_causal_calibration(CausalCalibration mode) {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  s.mode_read = true;
  s.mode = mode;
  s.choices.clear();
}

CausalCalibration causal_calibration() {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.mode_read) {
    s.mode = mode_from_environment();
    s.mode_read = true;
  }
  return s.mode;
}

CausalAutomaticChoice causal_automatic_choice(int64_t dk, int64_t dv, DecayKind decay, bool gated,
                                              const CausalLinearAttentionOptions& options, bool backward) {
  if (dk < 1 || dv < 1) throw ArgumentError("linattn::causal_automatic_choice", "dk, dv", "must be positive");
  if (causal_calibration() == CausalCalibration::builtin) return builtin_choice(dk, dv, options.normalize, backward);
  const Key key{dk, dv, decay, gated, options.normalize, options.feature_map, options.chunk_size, backward};
  State& s = state();
  // Measured under the lock: a second thread asking for the same kind waits for the first's
  // answer instead of timing while it runs.
  const std::lock_guard<std::mutex> lock(s.mutex);
  const auto it = s.choices.find(key);
  if (it != s.choices.end()) return it->second;
  const CausalAutomaticChoice c = measure(key);
  s.choices.emplace(key, c);
  return c;
}

}  // namespace linattn
