// Dense matrix product, the one place linattn calls a BLAS: small products (the chunked causal
// kernels' 32 x 32 x 64 .. 64 x 64 x 80) through libxsmm's JIT kernels, whose per-call cost is
// a fraction of oneDNN's; everything else through oneDNN's sgemm.
//
// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major with leading dimensions in elements;
// op(A) is A[M,K] (lda >= K) or, transposed, A stored as [K,M] (lda >= M); likewise B.
// Both pick their ISA at run time (AVX2, AVX-512, AMX), so this stays portable.
// Called inside a parallel region it runs on the calling thread only.
#pragma once

#include <cstdint>

namespace linattn::kernels {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc);

}  // namespace linattn::kernels
