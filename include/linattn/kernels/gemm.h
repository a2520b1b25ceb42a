// Dense matrix product, the one place linattn calls a BLAS (oneDNN's sgemm).
//
// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major with leading dimensions in elements;
// op(A) is A[M,K] (lda >= K) or, transposed, A stored as [K,M] (lda >= M); likewise B.
// oneDNN picks its ISA at run time (AVX2, AVX-512, AMX), so this stays portable.
// Called inside a parallel region it runs on the calling thread only.
#pragma once

#include <cstdint>

namespace linattn::kernels {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc);

}  // namespace linattn::kernels
