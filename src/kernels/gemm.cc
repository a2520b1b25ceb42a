#include "kernels/gemm.h"

#include <libxsmm.h>
#include <oneapi/dnnl/dnnl.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

namespace linattn::kernels {
namespace {

// Products up to this many multiply-adds run as libxsmm kernels. Measured on one core
// (OpenMP 1 thread, data in L1, bench/micro_benchmarks.cc BM_Gemm): at the chunked causal
// kernels' 32 x 32 x 64 .. 64 x 65 x 64 libxsmm takes 70-95% of oneDNN's time (32 x 64 x 32:
// 1.77 vs 2.44 us), most of the difference being oneDNN's per-call cost; at 32 x 128 x 128 the
// two are level, so larger products stay with oneDNN.
constexpr int64_t kSmallGemmMaxMultiplyAdds = 64 * 64 * 80;

// libxsmm is column-major: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so
// B is its first operand and A its second. Its JIT (1.17) has no kernel with a transposed first
// operand, so a transposed B is transposed into a per-thread buffer first (with the product,
// still faster than oneDNN at these sizes). Returns false where it has no kernel.
bool small_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m * n * k > kSmallGemmMaxMultiplyAdds) return false;
  const libxsmm_blasint first_ld = static_cast<libxsmm_blasint>(trans_b ? n : ldb);
  const libxsmm_blasint second_ld = static_cast<libxsmm_blasint>(lda), out_ld = static_cast<libxsmm_blasint>(ldc);
  const int flags = trans_a ? LIBXSMM_GEMM_FLAG_TRANS_B : 0;
  const float alpha = 1.f;
  // libxsmm caches its kernels, but its lookup (a descriptor built and hashed per call) took
  // about 2% of a chunked causal forward+backward, which calls ~10 products of a few shapes per
  // chunk: the last few kernels are kept per thread and found by comparing their shapes. The
  // search starts after the last one found: a chunk's products come in the same order every
  // chunk, so the next call's kernel is usually the next slot.
  struct Recent {
    std::array<int64_t, 8> shape{};
    libxsmm_smmfunction kernel = nullptr;
  };
  thread_local std::array<Recent, 16> recent;
  thread_local size_t next = 0, last_found = 0;
  const std::array<int64_t, 8> shape = {m, n, k, first_ld, second_ld, out_ld, beta == 0.f ? 0 : 1, flags};
  libxsmm_smmfunction kernel = nullptr;
  for (size_t i = 1; i <= recent.size() && kernel == nullptr; ++i) {
    const size_t slot = (last_found + i) % recent.size();
    if (recent[slot].kernel && recent[slot].shape == shape) kernel = recent[slot].kernel, last_found = slot;
  }
  if (kernel == nullptr) {
    kernel = libxsmm_smmdispatch(static_cast<libxsmm_blasint>(n), static_cast<libxsmm_blasint>(m),
                                 static_cast<libxsmm_blasint>(k), &first_ld, &second_ld, &out_ld, &alpha, &beta, &flags,
                                 nullptr);
    if (kernel != nullptr) {
      last_found = next++ % recent.size();
      recent[last_found] = {shape, kernel};
    }
  }
  if (kernel == nullptr) return false;
  if (trans_b) {  // B stored [n, k]: B^T [k, n] with leading dimension n
    thread_local std::vector<float> bt;
    bt.resize(static_cast<size_t>(k * n));
    libxsmm_otrans(bt.data(), b, sizeof(float), static_cast<libxsmm_blasint>(k), static_cast<libxsmm_blasint>(n),
                   static_cast<libxsmm_blasint>(ldb), first_ld);
    b = bt.data();
  }
  kernel(b, a, c);
  return true;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: C = beta * C (oneDNN would read A and B)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
    return;
  }
  if (alpha == 1.f && (beta == 0.f || beta == 1.f) &&
      small_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc))
    return;
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                          a, lda, b, ldb, beta, c, ldc);
  // Operators validate shapes first, so a failure here is a bug in linattn, not user input.
  if (status != dnnl_success)
    throw std::logic_error("linattn::kernels::gemm: dnnl_sgemm failed with status " +
                           std::to_string(static_cast<int>(status)));
}

}  // namespace linattn::kernels
