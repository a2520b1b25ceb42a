// CausalAlgorithm::automatic: the choice measured on this machine, kept, inspectable, and
// followed by both passes (results bit for bit those of the algorithm it names).
#include <gtest/gtest.h>

#include <limits>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {

using test::Tensor;

// Every test leaves the default mode behind, whatever happens in it.
struct CalibrationGuard {
  ~CalibrationGuard() { set_causal_calibration(CausalCalibration::measure); }
};

TEST(CausalAutomaticChoice, BuiltinModeGivesTheDocumentedLimits) {
  CalibrationGuard guard;
  set_causal_calibration(CausalCalibration::builtin);
  EXPECT_EQ(causal_calibration(), CausalCalibration::builtin);
  const CausalLinearAttentionOptions o;
  const CausalAutomaticChoice small = causal_automatic_choice(64, 64, DecayKind::none, false, o, false);
  EXPECT_FALSE(small.measured);
  EXPECT_EQ(small.measured_heads, 0);
  EXPECT_EQ(small.max_recurrent_length, kCausalRecurrentSmallStateMaxLength);
  EXPECT_EQ(causal_automatic_choice(128, 128, DecayKind::none, false, o, false).max_recurrent_length,
            kCausalRecurrentMaxLength);
  EXPECT_EQ(causal_automatic_choice(128, 128, DecayKind::per_channel, true, o, true).max_recurrent_length,
            kCausalRecurrentBackwardMaxLength);
}

TEST(CausalAutomaticChoice, IsMeasuredOnceAndKept) {
  CalibrationGuard guard;
  set_causal_calibration(CausalCalibration::measure);
  const CausalLinearAttentionOptions o{.normalize = true};
  for (const bool backward : {false, true}) {
    const CausalAutomaticChoice a = causal_automatic_choice(24, 20, DecayKind::per_channel, true, o, backward);
    EXPECT_TRUE(a.measured);
    EXPECT_GT(a.recurrent_ns_per_token, 0);
    EXPECT_GT(a.chunked_ns_per_token, 0);
    EXPECT_GE(a.max_recurrent_length, 1);
    EXPECT_GT(a.measured_heads, 1);  // the long probe runs several sequences side by side
    EXPECT_GT(a.last_probe_heads, 1);
    EXPECT_GT(a.last_recurrent_ns_per_token, 0);
    EXPECT_GT(a.last_chunked_ns_per_token, 0);
    // The choice agrees with the first probe and with the last one of its ladder of working sets.
    auto probe_bytes = [&](int64_t heads) {
      return causal_working_set_bytes(1, heads, a.measured_at_length, 24, 20, DecayKind::per_channel, true, backward);
    };
    EXPECT_EQ(a.token_by_token(a.measured_at_length, probe_bytes(a.measured_heads)),
              a.recurrent_ns_per_token <= a.chunked_ns_per_token);
    EXPECT_EQ(a.token_by_token(a.measured_at_length, probe_bytes(a.last_probe_heads)),
              a.last_recurrent_ns_per_token <= a.last_chunked_ns_per_token);
    // Every call runs token by token exactly when the recurrence wins every probe.
    EXPECT_EQ(a.recurrent_from_bytes == 0, a.max_recurrent_length == std::numeric_limits<int64_t>::max());
    if (a.max_recurrent_length != std::numeric_limits<int64_t>::max()) {
      EXPECT_LT(a.max_recurrent_length, a.measured_at_length);
    }
    const CausalAutomaticChoice b = causal_automatic_choice(24, 20, DecayKind::per_channel, true, o, backward);
    EXPECT_EQ(b.max_recurrent_length, a.max_recurrent_length);
    EXPECT_EQ(b.recurrent_ns_per_token, a.recurrent_ns_per_token);  // the same measurement, not a new one
  }
  EXPECT_THROW(causal_automatic_choice(0, 4, DecayKind::none, false, o, false), ArgumentError);
}

// The probe's inputs for every decay kind have one decay (per head), one log decay per step or
// per channel for each of its sequences: a shape that did not match would throw here.
TEST(CausalAutomaticChoice, IsMeasuredForEveryDecayKind) {
  CalibrationGuard guard;
  set_causal_calibration(CausalCalibration::measure);
  const CausalLinearAttentionOptions o;
  for (const DecayKind kind : {DecayKind::none, DecayKind::per_head, DecayKind::per_step, DecayKind::per_channel})
    for (const bool backward : {false, true}) {
      const CausalAutomaticChoice a = causal_automatic_choice(9, 7, kind, false, o, backward);
      EXPECT_TRUE(a.measured);
      EXPECT_GT(a.recurrent_ns_per_token, 0);
      EXPECT_GT(a.chunked_ns_per_token, 0);
    }
}

// The forward and the backward under `automatic` equal, bit for bit, the algorithm the choice
// names, on both sides of its limit (sequences of one batch may fall on different sides).
TEST(CausalAutomaticChoice, BothPassesFollowTheChoice) {
  CalibrationGuard guard;
  for (const CausalCalibration mode : {CausalCalibration::builtin, CausalCalibration::measure}) {
    set_causal_calibration(mode);
    const int64_t B = 2, H = 2, dk = 12, dv = 10, T = 40;
    const CausalLinearAttentionOptions automatic{.chunk_size = 16};
    CausalLinearAttentionOptions chunked = automatic, recurrent = automatic;
    chunked.algorithm = CausalAlgorithm::chunked;
    recurrent.algorithm = CausalAlgorithm::recurrent;
    const auto q = test::random_tensor<4>({B, H, T, dk}), k = test::random_tensor<4>({B, H, T, dk});
    const auto v = test::random_tensor<4>({B, H, T, dv}), dout = test::random_tensor<4>({B, H, T, dv});
    for (const bool backward : {false, true}) {
      const CausalAutomaticChoice choice = causal_automatic_choice(dk, dv, DecayKind::none, false, automatic, backward);
      // This call's working set decides first: when it is past the turn, every sequence runs token by token.
      const int64_t limit = choice.token_by_token(std::numeric_limits<int64_t>::max(),
                                                  causal_working_set_bytes(B, H, T, dk, dv, DecayKind::none, false, backward))
                                ? std::numeric_limits<int64_t>::max()
                                : choice.max_recurrent_length;
      const int64_t short_len = std::min<int64_t>(std::max<int64_t>(limit, 2), T), long_len = T;
      const std::vector<int64_t> lengths{short_len, long_len};
      auto run = [&](const CausalLinearAttentionOptions& o) {
        Tensor<4> out({B, H, T, dv}), dq({B, H, T, dk}), dkk({B, H, T, dk}), dvv({B, H, T, dv});
        if (!backward) {
          causal_linear_attention(q.cview(), k.cview(), v.cview(), out.view(), {}, o, {.lengths = lengths});
          return out.data;
        }
        causal_linear_attention_backward(q.cview(), k.cview(), v.cview(), dout.cview(),
                                         {dq.view(), dkk.view(), dvv.view()}, {}, o, {.lengths = lengths});
        std::vector<float> all = dq.data;
        all.insert(all.end(), dkk.data.begin(), dkk.data.end());
        all.insert(all.end(), dvv.data.begin(), dvv.data.end());
        return all;
      };
      const std::vector<float> got = run(automatic), by_chunks = run(chunked), by_tokens = run(recurrent);
      // Per sequence: the part of every tensor that belongs to batch element b.
      const size_t per_b_out = static_cast<size_t>(H * T * dv);
      for (int64_t b = 0; b < B; ++b) {
        const bool token_by_token = lengths[static_cast<size_t>(b)] <= limit;
        const std::vector<float>& want = token_by_token ? by_tokens : by_chunks;
        if (!backward) {
          for (size_t i = static_cast<size_t>(b) * per_b_out; i < static_cast<size_t>(b + 1) * per_b_out; ++i)
            ASSERT_EQ(got[i], want[i]) << "forward, sequence " << b << ", limit " << limit;
        } else {
          // dq, dk, dv one after another, each [B, H, T, w].
          size_t base = 0;
          for (const int64_t w : {dk, dk, dv}) {
            const size_t per_b = static_cast<size_t>(H * T * w);
            for (size_t i = base + static_cast<size_t>(b) * per_b; i < base + static_cast<size_t>(b + 1) * per_b; ++i)
              ASSERT_EQ(got[i], want[i]) << "backward, sequence " << b << ", limit " << limit;
            base += static_cast<size_t>(B) * per_b;
          }
        }
      }
      if (limit < T) {
        EXPECT_NE(by_chunks, by_tokens) << "the two algorithms round differently: the test can tell them apart";
      }
    }
  }
}

// A call at least as large as the choice's working-set limit runs token by token, a smaller one
// by its length: automatic's output equals, bit for bit, the algorithm token_by_token names for
// a small call and for one past the limit (or, when the limit is "never" or "always", one as
// large as the ladder's largest probe). Several kinds, since which of them has a limit between
// "never" and "always" depends on the machine (on a Zen 5: d = 64 without decay, at 2-6 MB).
TEST(CausalAutomaticChoice, TheWorkingSetDecidesForLargeCalls) {
  CalibrationGuard guard;
  set_causal_calibration(CausalCalibration::measure);
  const int64_t T = 64;
  const CausalLinearAttentionOptions automatic;
  CausalLinearAttentionOptions chunked = automatic, recurrent = automatic;
  chunked.algorithm = CausalAlgorithm::chunked;
  recurrent.algorithm = CausalAlgorithm::recurrent;
  for (const auto& [d, kind] : {std::pair{int64_t{64}, DecayKind::none}, std::pair{int64_t{64}, DecayKind::per_channel},
                                std::pair{int64_t{16}, DecayKind::none}}) {
    const CausalAutomaticChoice choice = causal_automatic_choice(d, d, kind, false, automatic, false);
    const int64_t per_sequence = causal_working_set_bytes(1, 1, T, d, d, kind, false, false);
    const int64_t ladder_top =
        causal_working_set_bytes(1, 4 * choice.measured_heads, choice.measured_at_length, d, d, kind, false, false);
    const bool limited = choice.recurrent_from_bytes > 0 && choice.recurrent_from_bytes != std::numeric_limits<int64_t>::max();
    const int64_t large_heads = (limited ? choice.recurrent_from_bytes : ladder_top) / per_sequence + 1;
    for (const int64_t H : {int64_t{1}, large_heads}) {
      const auto q = test::random_tensor<4>({1, H, T, d}), k = test::random_tensor<4>({1, H, T, d}),
                 v = test::random_tensor<4>({1, H, T, d});
      auto logs = test::random_tensor<4>({1, H, T, d}, -0.05f, 0.f);
      const Decay decay = kind == DecayKind::per_channel ? Decay{.kind = kind, .per_channel = logs.cview()} : Decay{};
      auto run = [&](const CausalLinearAttentionOptions& o) {
        Tensor<4> out({1, H, T, d});
        causal_linear_attention(q.cview(), k.cview(), v.cview(), out.view(), decay, o);
        return out.data;
      };
      const bool tokens = choice.token_by_token(T, causal_working_set_bytes(1, H, T, d, d, kind, false, false));
      if (H > 1 && limited) {
        EXPECT_TRUE(tokens) << "a call past the limit runs token by token";
      }
      EXPECT_EQ(run(automatic), run(tokens ? recurrent : chunked)) << "d = " << d << ", H = " << H;
    }
  }
}

}  // namespace
}  // namespace linattn
