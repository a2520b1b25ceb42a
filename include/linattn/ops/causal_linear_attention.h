// Causal linear attention with decay (docs/math.md):
//   M_t = gamma_t (*) M_(t-1) + g_t phi(k_t) v_t^T,   o_t = M_t^T phi(q_t)
//   [normalised: z_t = gamma_t (*) z_(t-1) + g_t phi(k_t),  o_t = M_t^T phi(q_t) / (z_t . phi(q_t) + eps)]
// computed chunk by chunk (inside a chunk of L positions masked L x L products, across chunks
// the state carried forward; cumulative decays kept in log space so that nothing overflows) or
// token by token (CausalAlgorithm below).
//
// Shapes ([batch B, heads H, positions T, features d]; last dimension contiguous):
//   q, k [B, H, T, dk]   v [B, H, T, dv]   out [B, H, T, dv]   gates [B, H, T] (optional)
//   state [B, H, dk, dv] (the same layout as linattn::Memory::state())   normalizer [B, H, dk]
//   lengths [B] (optional): positions t >= n_b are padding: never read, their outputs are 0, and
//   the final state is the state after the last valid token.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn {

enum class DecayKind : uint8_t {
  none,         // gamma = 1: plain causal linear attention
  per_head,     // a fixed gamma per head, e.g. RetNet's 1 - 2^(-5-h) (retnet_decays)
  per_step,     // data-dependent, one log gamma per step and head (Mamba-2-like)
  per_channel,  // data-dependent, one log gamma per step, head and key channel (GLA): rows of M
};

struct Decay {
  DecayKind kind = DecayKind::none;
  CView1 per_head;     // [H], gamma in (0, 1]
  CView3 per_step;     // [B, H, T], log gamma <= 0
  CView4 per_channel;  // [B, H, T, dk], log gamma <= 0
};

// RetNet's fixed decays: gamma_h = 1 - 2^(-5-h).
std::vector<float> retnet_decays(int64_t heads);

// How the forward and the backward run. Token by token reads and writes the state once per
// token (the backward: a forward sweep for dq, a reverse sweep for dk and dv); in chunks, the
// work is matrix products with decays in log space.
enum class CausalAlgorithm : uint8_t {
  automatic,  // per sequence: token by token up to a length chosen for this machine, chunks beyond
  chunked,
  recurrent,  // token by token at any length
};
// `automatic` runs a sequence token by token when its length is at most a limit measured on the
// machine it runs on (causal_automatic_choice below), and in chunks otherwise. Without a
// measurement (LINATTN_CAUSAL_CALIBRATION=off, or set_causal_calibration) the limits are the
// built-in ones: kCausalRecurrentMaxLength (forward), kCausalRecurrentSmallStateMaxLength
// (forward, with a state of at most kCausalRecurrentMaxState numbers, which stays in L1) and
// kCausalRecurrentBackwardMaxLength (backward). docs/causal.md gives the measurements.
inline constexpr int64_t kCausalRecurrentMaxLength = 4;
inline constexpr int64_t kCausalRecurrentSmallStateMaxLength = 8;
inline constexpr int64_t kCausalRecurrentBackwardMaxLength = 8;
inline constexpr int64_t kCausalRecurrentMaxState = 64 * 65;

// The default chunk size L: chunks cost 2 L d + 4 d^2 FLOPs per position forward, so a smaller L
// does less work in smaller products; 32 measured fastest (docs/causal.md).
inline constexpr int64_t kCausalChunkSize = 32;

struct CausalLinearAttentionOptions {
  FeatureMap feature_map = FeatureMap::identity;
  bool normalize = false;
  float eps = 1e-6f;
  int64_t chunk_size = kCausalChunkSize;  // L: 16-128 run as matrix products
  CausalAlgorithm algorithm = CausalAlgorithm::automatic;
};

// The chunk-start states a training forward can save for its backward, so that the backward
// need not recompute them (its first pass). Shape [B, H, C + 1, dk * dva], C =
// ceil(T / options.chunk_size), dva = dv + 1 with normalisation (the normaliser is the last
// column); per (b, h), row c is the state [dk, dva] before position c L (row 0 the initial
// state), row ceil(n_b / L) the final state, and any later row 0: (C + 1) dk dva floats per head.
std::array<int64_t, 4> causal_chunk_states_shape(CView4 q, CView4 v, const CausalLinearAttentionOptions& options = {});

// The optional inputs of both passes (absent views are not used).
struct CausalInputs {
  Lengths lengths;            // [B]: positions t >= n_b are padding (default: every sequence is T long)
  CView3 gates;               // [B, H, T]: g_t (default 1)
  CView4 initial_state;       // [B, H, dk, dv]: M before the first position (default 0)
  CView3 initial_normalizer;  // [B, H, dk]: z before the first position (normalised only; default 0)
};

// The optional outputs of the forward.
struct CausalForwardOutputs {
  View4 final_state;       // [B, H, dk, dv]: M after each sequence's last valid token; may be initial_state
  View3 final_normalizer;  // [B, H, dk] (normalised only); may be initial_normalizer
  View4 chunk_states;      // causal_chunk_states_shape: the chunk-start states, for the backward;
                           // must share no memory with any other argument
};

// The forward: out [B, H, T, dv] = o_t for every position. A long sequence can be processed in
// pieces: piece 2 with initial = piece 1's final equals processing both at once. out may share
// memory with q, k or v (the results equal those of separate buffers).
// Cost: O(B H T (L d + d^2)) in chunks, O(B H T dk dv) token by token; no allocation beyond a
// chunk's working set per thread. ArgumentError for any shape, option or decay out of its
// contract (log decays must be finite and <= 0), naming the argument.
void causal_linear_attention(CView4 q, CView4 k, CView4 v, View4 out, const Decay& decay = {},
                             const CausalLinearAttentionOptions& options = {}, const CausalInputs& inputs = {},
                             const CausalForwardOutputs& outputs = {});

// The gradients the backward writes (dq, dk, dv required; the others exactly when their input is
// given, or optional where marked).
struct CausalLinearAttentionGrads {
  View4 dq, dk, dv;             // shapes of q, k, v
  View3 dgates;                 // with gates
  View3 dper_step;              // with DecayKind::per_step
  View4 dper_channel;           // with DecayKind::per_channel
  View4 dinitial_state;         // optional
  View3 dinitial_normalizer;    // optional (normalised)
};

// The optional inputs of the backward beyond the forward's.
struct CausalBackwardInputs {
  CView4 dfinal_state;       // [B, H, dk, dv]: the gradient reaching the final state (default 0)
  CView3 dfinal_normalizer;  // [B, H, dk]
  CView4 chunk_states;       // the forward's, for these same inputs and options (only the shape is
                             // checked); when absent the backward recomputes them
};

// The backward: in chunks, one reverse pass over chunks from the chunk-start states; token by
// token, a forward and a reverse sweep (options.algorithm). dout [B, H, T, dv]. A fixed per-head
// decay gets no gradient. Cost: about twice the forward's. The gradients must not share memory
// with chunk_states.
void causal_linear_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout,
                                      const CausalLinearAttentionGrads& grads, const Decay& decay = {},
                                      const CausalLinearAttentionOptions& options = {},
                                      const CausalInputs& inputs = {}, const CausalBackwardInputs& extra = {});

// One token per sequence, for token-by-token inference: q, k [B, H, dk], v [B, H, dv],
// state [B, H, dk, dv] updated in place, out [B, H, dv]. The decay, when not none or per_head,
// is given for this step: per_step [B, H, 1], per_channel [B, H, 1, dk]. gates [B, H, 1].
void causal_linear_attention_step(CView3 q, CView3 k, CView3 v, View4 state, View3 out, const Decay& decay = {},
                                  const CausalLinearAttentionOptions& options = {}, CView3 gates = {},
                                  View3 normalizer = {});

// What `automatic` chooses for one kind of sequence: its widths, decay kind, options, gates and
// pass. Measured once per process and kind, at its first use (both algorithms on synthetic
// inputs threaded over their heads, at working sets of 1x and up to 4x or down to 1/4x the first
// probe's, and on one sequence of lengths 2-256: about 5 ms to 1 s, most at d = 128 backward),
// then kept. The measured choice can differ between machines and runs near a tie; either
// algorithm's results agree to float rounding (docs/causal.md gives the tolerances), and
// `chunked` or `recurrent` fix the choice.
struct CausalAutomaticChoice {
  int64_t max_recurrent_length = 0;  // sequences up to this length run token by token (INT64_MAX: all)
  // Calls whose working set (causal_working_set_bytes) is at least this run token by token at
  // any length: the chunks read their inputs more than once, and past the caches that costs them
  // more than the recurrence's one pass (INT64_MAX: never; 0 with max_recurrent_length INT64_MAX).
  int64_t recurrent_from_bytes = std::numeric_limits<int64_t>::max();
  bool measured = false;             // from this machine's timings (else the built-in limits)
  // Per token on the first probe (measured_heads sequences of measured_at_length, threaded over
  // the heads), each algorithm's best of 3 (0 when not measured).
  double recurrent_ns_per_token = 0, chunked_ns_per_token = 0;
  int64_t measured_at_length = 0, measured_heads = 0;
  // The last probe of the ladder of working sets (more heads, or fewer, at measured_at_length)
  // and its timings, best of 2.
  int64_t last_probe_heads = 0;
  double last_recurrent_ns_per_token = 0, last_chunked_ns_per_token = 0;

  // Whether a sequence of `length` tokens, in a call whose working set is `call_bytes`, runs
  // token by token.
  bool token_by_token(int64_t length, int64_t call_bytes) const {
    return length <= max_recurrent_length || call_bytes >= recurrent_from_bytes;
  }
};
// The bytes a causal call streams: its inputs and outputs (and, backward, the output gradient and
// the input gradients) for B x H sequences of T tokens.
int64_t causal_working_set_bytes(int64_t B, int64_t H, int64_t T, int64_t dk, int64_t dv, DecayKind decay, bool gated,
                                 bool backward);
CausalAutomaticChoice causal_automatic_choice(int64_t dk, int64_t dv, DecayKind decay, bool gated,
                                              const CausalLinearAttentionOptions& options, bool backward);

// Whether `automatic` measures (the default; LINATTN_CAUSAL_CALIBRATION=off in the environment
// turns it off at start) or uses the built-in limits. Changing it forgets the measurements.
enum class CausalCalibration : uint8_t { measure, builtin };
void set_causal_calibration(CausalCalibration mode);
CausalCalibration causal_calibration();

}  // namespace linattn
