// Causal linear attention with decay (docs/math.md):
//   M_t = gamma_t (*) M_(t-1) + g_t phi(k_t) v_t^T,   o_t = M_t^T phi(q_t)
//   [normalised: z_t = gamma_t (*) z_(t-1) + g_t phi(k_t),  o_t = M_t^T phi(q_t) / (z_t . phi(q_t) + eps)]
// computed chunk by chunk (inside a chunk of L positions masked L x L products, across chunks
// the state carried forward; cumulative decays kept in log space so that nothing overflows) or,
// for the forward, token by token (CausalAlgorithm below).
//
// Shapes ([batch B, heads H, positions T, features d]; last dimension contiguous):
//   q, k [B, H, T, dk]   v [B, H, T, dv]   out [B, H, T, dv]   gates [B, H, T] (optional)
//   state [B, H, dk, dv] (the same layout as linattn::Memory::state())   normalizer [B, H, dk]
//   lengths [B] (optional): positions t >= n_b are padding: never read, their outputs are 0, and
//   the final state is the state after the last valid token.
#pragma once

#include <array>
#include <cstdint>
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
  automatic,  // token by token up to 4 positions (8 with a small state), chunks otherwise
  chunked,
  recurrent,  // token by token at any length
};
// `automatic`, forward: token by token up to kCausalRecurrentMaxLength positions, or up to
// kCausalRecurrentSmallStateMaxLength with a state of at most kCausalRecurrentMaxState numbers
// (it stays in L1); chunks otherwise. Measured on this machine (B = 4, H = 8, one thread,
// BM_CausalForward, minimum of 3 runs, chunks of 32 with GLA weights as decay ratios): token by
// token is 1.4-2.1x faster at T = 1 and 1.05-1.4x at T = 4; at T = 8 it is still 1.08-1.3x
// faster at d = 64 while chunks are 1.1-1.3x faster at d = 128; from T = 16 on chunks are faster
// (d = 64: 1.1-1.3x at T = 16, 1.06-1.36x with GLA at T = 64-1,024). Both stay within 1e-4 of
// the double recurrence at T = 65,536 with decays near 1 (worst of 12 seeds, log gamma = -1e-6:
// 1.0e-5 token by token, 1.8e-5 in chunks).
// `automatic`, backward: token by token up to kCausalRecurrentBackwardMaxLength positions.
// Measured (BM_CausalBackward): token by token is 2.4-4.8x faster at T = 1 and 1.03-1.3x at
// T = 8; at T = 16 they are within 1.1x of each other without decay and chunks are 1.14-1.27x
// faster with GLA.
inline constexpr int64_t kCausalRecurrentMaxLength = 4;
inline constexpr int64_t kCausalRecurrentSmallStateMaxLength = 8;
inline constexpr int64_t kCausalRecurrentBackwardMaxLength = 8;
inline constexpr int64_t kCausalRecurrentMaxState = 64 * 65;

// The default chunk size L. Chunks cost 2 L d + 4 d^2 FLOPs per position forward, so a smaller
// L does less work in smaller products. Measured at B = 4, H = 8, T = 4,096, one thread, L = 32
// against 64 (BM_CausalChunkSize, minimum of 3-4 runs): 4-23% faster at d = 64 (forward+backward
// 199 vs 229 ms without decay, 302 vs 314 ms with GLA), 0-10% at d = 128; never slower beyond
// this machine's noise. L = 16 is slower again (its products are too small).
inline constexpr int64_t kCausalChunkSize = 32;

struct CausalLinearAttentionOptions {
  FeatureMap feature_map = FeatureMap::identity;
  bool normalize = false;
  float eps = 1e-6f;
  int64_t chunk_size = kCausalChunkSize;  // L: 16-128 run as matrix products
  CausalAlgorithm algorithm = CausalAlgorithm::automatic;
};

// The chunk-start states a training forward can save for its backward, so that the backward
// need not recompute them (the backward's first pass: 12-29% of its time, measured at B = 4,
// H = 8, d = 64 and 128, T = 256 and 4,096; the most with GLA). Shape [B, H, C + 1, dk * dva],
// C = ceil(T / options.chunk_size), dva = dv + 1 with normalisation (the normaliser is the last
// column); per (b, h), row c is the state [dk, dva] before position c L (row 0 the initial
// state), row ceil(n_b / L) the final state, and any later row 0. That is (C + 1) dk dva floats
// per head: 2 MiB at d = 64, T = 4,096, L = 32, against 1 MiB for each of q, k and v.
std::array<int64_t, 4> causal_chunk_states_shape(CView4 q, CView4 v, const CausalLinearAttentionOptions& options = {});

// The chunked forward. initial_* (optional, default 0) start the recurrence; final_* (optional)
// receive the state after each sequence's last valid token, so a long sequence can be processed
// in pieces: piece 2 with initial = piece 1's final equals processing both at once.
// chunk_states (optional, causal_chunk_states_shape) receives the chunk-start states for
// causal_linear_attention_backward.
void causal_linear_attention(CView4 q, CView4 k, CView4 v, View4 out, const Decay& decay = {},
                             const CausalLinearAttentionOptions& options = {}, Lengths lengths = {},
                             CView3 gates = {}, CView4 initial_state = {}, View4 final_state = {},
                             CView3 initial_normalizer = {}, View3 final_normalizer = {},
                             View4 chunk_states = {});

struct CausalLinearAttentionGrads {
  View4 dq, dk, dv;             // required, shapes of q, k, v
  View3 dgates;                 // with gates
  View3 dper_step;              // with DecayKind::per_step
  View4 dper_channel;           // with DecayKind::per_channel
  View4 dinitial_state;         // optional
  View3 dinitial_normalizer;    // optional (normalised)
};

// The backward: in chunks, one reverse pass over chunks from the chunk-start states (the
// forward's chunk_states when given, else recomputed); token by token, a forward and a reverse
// sweep (options.algorithm).
// dout [B,H,T,dv]; dfinal_state / dfinal_normalizer (optional) are the gradients reaching the
// final state. A fixed per-head decay gets no gradient. chunk_states must come from the forward
// of these same inputs and options (only its shape can be checked).
void causal_linear_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout,
                                      const CausalLinearAttentionGrads& grads, const Decay& decay = {},
                                      const CausalLinearAttentionOptions& options = {}, Lengths lengths = {},
                                      CView3 gates = {}, CView4 initial_state = {},
                                      CView3 initial_normalizer = {}, CView4 dfinal_state = {},
                                      CView3 dfinal_normalizer = {}, CView4 chunk_states = {});

// One token per sequence, for token-by-token inference: q, k [B, H, dk], v [B, H, dv],
// state [B, H, dk, dv] updated in place, out [B, H, dv]. The decay, when not none or per_head,
// is given for this step: per_step [B, H, 1], per_channel [B, H, 1, dk]. gates [B, H, 1].
void causal_linear_attention_step(CView3 q, CView3 k, CView3 v, View4 state, View3 out, const Decay& decay = {},
                                  const CausalLinearAttentionOptions& options = {}, CView3 gates = {},
                                  View3 normalizer = {});

}  // namespace linattn
