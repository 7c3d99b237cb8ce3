// Eigen's GEMM, built once per instruction set (used when scholar is configured with
// SCHOLAR_BLAS=Eigen). Each build is a separate object whose only global symbol is its entry point.
#pragma once

#include <cstdint>

#include "scholar/kernels/kernels.hpp"

extern "C" {
// C = alpha op(A) op(B) + beta C, row-major, single-threaded (see kernels::gemm).
using scholar_eigen_gemm_fn = void(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                   float alpha, const float* A, int64_t lda, const float* B,
                                   int64_t ldb, float beta, float* C, int64_t ldc);
scholar_eigen_gemm_fn scholar_eigen_gemm_scalar;
#if defined(SCHOLAR_HAVE_X86_KERNELS)
scholar_eigen_gemm_fn scholar_eigen_gemm_avx2;
scholar_eigen_gemm_fn scholar_eigen_gemm_avx512;
#endif
}

namespace scholar::kernels {

/// Eigen's GEMM built for `isa`.
inline void eigen_gemm(Isa isa, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                       float* C, int64_t ldc) {
  scholar_eigen_gemm_fn* fn = scholar_eigen_gemm_scalar;
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  if (isa == Isa::avx512 || isa == Isa::avx512_vnni) fn = scholar_eigen_gemm_avx512;
  if (isa == Isa::avx2) fn = scholar_eigen_gemm_avx2;
#else
  (void)isa;
#endif
  fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace scholar::kernels
