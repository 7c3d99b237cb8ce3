// GEMM: row-major C = alpha op(A) op(B) + beta C on the BLAS chosen at build time, split over the
// process-wide thread pool. The BLAS library itself always runs one thread per call: the pool is
// the only source of parallelism, so the two never compete for cores.
#include <algorithm>
#include <mutex>
#include <string>

#include "scholar/error.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"

#if defined(SCHOLAR_BLAS_OPENBLAS)
#include <cblas.h>
#elif defined(SCHOLAR_BLAS_EIGEN)
#include <Eigen/Core>

#include "kernels/gemm_eigen.hpp"
#endif

namespace scholar::kernels {

namespace {

// One single-threaded GEMM call on the chosen backend.
void gemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#if defined(SCHOLAR_BLAS_OPENBLAS)
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
#else
  eigen_gemm(active().isa, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// Below this many multiply-adds a split costs more in wake-ups than it saves.
constexpr int64_t kMinParallelMacs = int64_t{1} << 21;

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0)
    fail<ShapeError>("gemm: negative size (M=", M, ", N=", N, ", K=", K, ")");
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (lda < std::max<int64_t>(1, a_cols) || ldb < std::max<int64_t>(1, b_cols) ||
      ldc < std::max<int64_t>(1, N))
    fail<ShapeError>("gemm: leading dimension too small (lda=", lda, " for ", a_cols,
                     " columns, ldb=", ldb, " for ", b_cols, ", ldc=", ldc, " for ", N, ")");
  constexpr int64_t kBlasMax = 2147483647;
  if (M > kBlasMax || N > kBlasMax || K > kBlasMax || lda > kBlasMax || ldb > kBlasMax ||
      ldc > kBlasMax)
    fail<ShapeError>("gemm: sizes beyond 32-bit BLAS limits (M=", M, ", N=", N, ", K=", K, ")");
  if (M == 0 || N == 0) return;

  ThreadPool& pool = thread_pool();
  const int threads = pool.size();
  if (threads == 1 || M * N * K < kMinParallelMacs) {
    gemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N into one block per thread; blocks stay multiples of 16 rows or
  // 64 columns so that the BLAS micro-kernels see whole panels.
  if (M >= N) {
    const int64_t step = (M / threads + 15) / 16 * 16;
    const int64_t chunks = (M + step - 1) / step;
    pool.run(chunks, [&](int64_t c) {
      const int64_t m0 = c * step, mc = std::min(step, M - m0);
      const float* a = trans_a ? A + m0 : A + m0 * lda;
      gemm_serial(trans_a, trans_b, mc, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    });
  } else {
    const int64_t step = (N / threads + 63) / 64 * 64;
    const int64_t chunks = (N + step - 1) / step;
    pool.run(chunks, [&](int64_t c) {
      const int64_t n0 = c * step, nc = std::min(step, N - n0);
      const float* b = trans_b ? B + n0 * ldb : B + n0;
      gemm_serial(trans_a, trans_b, M, nc, K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    });
  }
}

std::string gemm_backend() {
#if defined(SCHOLAR_BLAS_OPENBLAS)
  std::string s = "OpenBLAS";
  if (const char* cfg = openblas_get_config()) {
    // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ..." -> keep the version word.
    std::string c(cfg);
    if (c.rfind("OpenBLAS ", 0) == 0) s = c.substr(0, c.find(' ', 9));
  }
  if (const char* core = openblas_get_corename()) s += std::string(" (") + core + " kernels)";
  return s + ", 1 thread per pool task";
#else
  return std::string("Eigen ") + std::to_string(EIGEN_WORLD_VERSION) + "." +
         std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) + " (" +
         std::string(isa_name(active().isa)) + " build)";
#endif
}

}  // namespace scholar::kernels
