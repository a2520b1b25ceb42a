// The K-slot memory's per-position slot weights and their backward, for one (batch, head)
// (ops/kslot_memory.h checks the arguments; the products with V are linear attention's GEMMs).
#pragma once

#include <cstdint>

namespace linattn::kernels {

// w[t, :] = softmax(s[t, :]) (*) l_t for t < n (l_t = 1 without the position encoding): s [n, K]
// at row stride lds, w [n, K] at row stride ldw.
void kslot_weights(const float* s, int64_t lds, int64_t n, int64_t K, bool position_encoding, float* w, int64_t ldw);

// ds[t, :] from dw[t, :]: with p = softmax(s[t, :]) and g = dw (*) l_t, ds = p (*) (g - p . g).
// p [n, K] at stride ldp holds the plain softmax (without l); ds may be dw (same stride ld).
void kslot_weights_backward(const float* p, int64_t ldp, const float* dw, int64_t n, int64_t K, bool position_encoding,
                            float* ds, int64_t ld);

}  // namespace linattn::kernels
