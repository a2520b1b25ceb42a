// The K-slot fixed-size memory (Britz, Guan & Luong 2017, docs/math.md): while encoding, every
// position predicts how much it writes into each of K slots, and a query predicts which slots it
// reads, so that a lookup never consults the sequence:
//   a_t = softmax_K(s_t) (*) l_t        (l_t the optional position encoding, below)
//   C = sum_t a_t v_t^T   [K, dv]       out_i = softmax_K(u_i)^T C
// The scores s and u are the model's (a linear layer of the states and of the query). The memory
// is K x dv whatever T is; a lookup costs O(K dv). Without the position encoding, the memories of
// two pieces of a sequence add up to the whole's.
//
// Position encoding (the authors'): l_tk = (1 - k/K)(1 - t/n) + (k/K)(t/n) for k = 1..K and
// t = 1..n, n the sequence's length: early positions lean to the first slots, late ones to the
// last.
//
// Shapes ([batch B, heads H, positions T, features]; last dimension contiguous):
//   scores [B, H, T, K]   v [B, H, T, dv]   memory [B, H, K, dv]
//   query_scores [B, H, Tq, K]   out [B, H, Tq, dv]
//   lengths [B] (optional): positions t >= n_b are padding, never read (an empty sequence's
//   memory is 0).
#pragma once

#include <cstdint>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn {

struct KSlotOptions {
  bool position_encoding = false;
};

// memory = sum_t a_t v_t^T. O(T K dv). memory must not share memory with scores or v.
void kslot_memory_encode(CView4 scores, CView4 v, View4 memory, const KSlotOptions& options = {}, Lengths lengths = {});

// The gradients of kslot_memory_encode given dmemory [B, H, K, dv]: dscores and dv of the shapes
// of scores and v (padding 0); they must not share memory with the inputs.
void kslot_memory_encode_backward(CView4 scores, CView4 v, CView4 dmemory, View4 dscores, View4 dv,
                                  const KSlotOptions& options = {}, Lengths lengths = {});

// out_i = softmax_K(u_i)^T memory. O(Tq K dv). out must not share memory with the inputs.
void kslot_memory_lookup(CView4 query_scores, CView4 memory, View4 out);

// The gradients of kslot_memory_lookup given dout [B, H, Tq, dv]: dquery_scores and dmemory of
// the shapes of query_scores and memory; they must not share memory with the inputs.
void kslot_memory_lookup_backward(CView4 query_scores, CView4 memory, CView4 dout, View4 dquery_scores,
                                  View4 dmemory);

}  // namespace linattn
