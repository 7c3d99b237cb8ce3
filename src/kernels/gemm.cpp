// GEMM: row-major C = alpha op(A) op(B) + beta C, split over the process-wide thread pool. f32
// runs on scholar's own kernels where the active kernel table is AVX-512 (gemm_f32_avx512.cpp) or
// AVX2 (gemm_f32_avx2.cpp), else on the BLAS chosen at build time; bf16 on scholar's own kernels
// (gemm_bf16_amx.cpp on AMX tiles, gemm_bf16_avx512.cpp on vdpbf16ps). The BLAS library itself
// always runs one thread per call: the pool is the only source of parallelism, so the two never
// compete for cores.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>

#include "core/memory.hpp"
#include "kernels/runtime_switch.hpp"
#include "scholar/error.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/parallel.hpp"

#if defined(SCHOLAR_BLAS_OPENBLAS)
#include <cblas.h>
#elif defined(SCHOLAR_BLAS_EIGEN)
#include <Eigen/Core>

#include "kernels/gemm_eigen.hpp"
#endif

#if defined(SCHOLAR_HAVE_X86_KERNELS)
extern "C" void scholar_gemm_bf16_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                         float alpha, const float* A, int64_t lda, const float* B,
                                         int64_t ldb, float beta, float* C, int64_t ldc);
extern "C" void scholar_gemm_f32_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                        float alpha, const float* A, int64_t lda, const float* B,
                                        int64_t ldb, float beta, float* C, int64_t ldc);
extern "C" void scholar_gemm_f32_avx2(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                      float alpha, const float* A, int64_t lda, const float* B,
                                      int64_t ldb, float beta, float* C, int64_t ldc);
extern "C" int64_t scholar_amx_packed_b_words(int64_t N, int64_t K);
extern "C" void scholar_amx_pack_b(bool tb, int64_t N, int64_t K, const float* B, int64_t ldb,
                                   uint32_t* out);
extern "C" void scholar_gemm_bf16_amx_packed(bool ta, int64_t M, int64_t N, int64_t K, float alpha,
                                             const float* A, int64_t lda, const uint32_t* Bp,
                                             float beta, float* C, int64_t ldc);
extern "C" void scholar_gemm_bf16_amx(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                      float alpha, const float* A, int64_t lda, const float* B,
                                      int64_t ldb, float beta, float* C, int64_t ldc);
#endif

namespace scholar::kernels {

namespace {

using SerialGemm = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                            const float*, int64_t, float, float*, int64_t);

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

MatmulPrecision precision_from_env() {
  const char* env = std::getenv("SCHOLAR_MATMUL_PRECISION");
  if (env == nullptr || *env == 0) return MatmulPrecision::f32;
  const std::string_view v(env);
  if (v == "f32") return MatmulPrecision::f32;
  if (v == "bf16") return MatmulPrecision::bf16;
  fail<ValueError>("SCHOLAR_MATMUL_PRECISION='", v, "': expected f32 or bf16");
}

std::atomic<int> g_precision{-1};  // -1: not yet read from the environment

// Checks the arguments of a GEMM; false if there is nothing to compute.
bool check(const char* op, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, int64_t lda,
           int64_t ldb, int64_t ldc) {
  if (M < 0 || N < 0 || K < 0)
    fail<ShapeError>(op, ": negative size (M=", M, ", N=", N, ", K=", K, ")");
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  if (lda < std::max<int64_t>(1, a_cols) || ldb < std::max<int64_t>(1, b_cols) ||
      ldc < std::max<int64_t>(1, N))
    fail<ShapeError>(op, ": leading dimension too small (lda=", lda, " for ", a_cols,
                     " columns, ldb=", ldb, " for ", b_cols, ", ldc=", ldc, " for ", N, ")");
  constexpr int64_t kBlasMax = 2147483647;
  if (M > kBlasMax || N > kBlasMax || K > kBlasMax || lda > kBlasMax || ldb > kBlasMax ||
      ldc > kBlasMax)
    fail<ShapeError>(op, ": sizes beyond 32-bit BLAS limits (M=", M, ", N=", N, ", K=", K, ")");
  return M > 0 && N > 0;
}

// Runs `serial` on the whole product, or on one block of rows or columns per pool thread.
void run_split(SerialGemm serial, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
               float* C, int64_t ldc) {
  ThreadPool& pool = thread_pool();
  const int threads = pool.size();
  if (threads == 1 || M * N * K < kMinParallelMacs) {
    serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger of M and N into one block per thread; blocks stay multiples of 16 rows or
  // 64 columns so that the micro-kernels see whole panels.
  if (M >= N) {
    const int64_t step = (M / threads + 15) / 16 * 16;
    const int64_t chunks = (M + step - 1) / step;
    pool.run(chunks, [&](int64_t c) {
      const int64_t m0 = c * step, mc = std::min(step, M - m0);
      const float* a = trans_a ? A + m0 : A + m0 * lda;
      serial(trans_a, trans_b, mc, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    });
  } else {
    const int64_t step = (N / threads + 63) / 64 * 64;
    const int64_t chunks = (N + step - 1) / step;
    pool.run(chunks, [&](int64_t c) {
      const int64_t n0 = c * step, nc = std::min(step, N - n0);
      const float* b = trans_b ? B + n0 * ldb : B + n0;
      serial(trans_a, trans_b, M, nc, K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    });
  }
}

detail::RuntimeSwitch g_own_f32("SCHOLAR_F32_GEMM", "own", "blas");

#if defined(SCHOLAR_HAVE_X86_KERNELS)
// scholar's own kernels, except for thin products: below 16 rows or columns most of a micro-tile
// would be padding (one row runs 5x slower than Eigen's matrix-vector product).
template <SerialGemm own>
void own_f32_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M < 16 || N < 16)
    gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    own(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#endif

SerialGemm f32_serial() {
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  if (has_own_f32_gemm())
    return active().isa == Isa::avx2 ? own_f32_serial<scholar_gemm_f32_avx2>
                                     : own_f32_serial<scholar_gemm_f32_avx512>;
#endif
  return gemm_serial;
}

SerialGemm bf16_serial() {
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  if (has_amx_bf16()) return scholar_gemm_bf16_amx;
  if (has_bf16_gemm()) return scholar_gemm_bf16_avx512;
#endif
  return ref::gemm_bf16;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!check("gemm", trans_a, trans_b, M, N, K, lda, ldb, ldc)) return;
  const bool bf16 = M > 1 && N > 1 && effective_matmul_precision() == MatmulPrecision::bf16;
  run_split(bf16 ? bf16_serial() : f32_serial(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
            beta, C, ldc);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  if (!check("gemm_bf16", trans_a, trans_b, M, N, K, lda, ldb, ldc)) return;
  run_split(bf16_serial(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void PackedBf16B::Free::operator()(uint32_t* p) const {
  scholar::detail::free_large(p, bytes, true);
}

PackedBf16B pack_bf16_b(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb) {
  if (K < 0 || N < 0) fail<ShapeError>("pack_bf16_b: negative size (K=", K, ", N=", N, ")");
  if (ldb < std::max<int64_t>(1, trans_b ? K : N))
    fail<ShapeError>("pack_bf16_b: leading dimension ", ldb, " too small for ", trans_b ? K : N,
                     " columns");
  if (!has_amx_bf16()) fail<ValueError>("pack_bf16_b: this CPU or process has no AMX bf16 tiles");
  PackedBf16B p;
  p.K_ = K;
  p.N_ = N;
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  p.words_count_ = scholar_amx_packed_b_words(N, K);
  const size_t bytes =
      sizeof(uint32_t) * static_cast<size_t>(std::max<int64_t>(p.words_count_, 16));
  p.words_ = std::unique_ptr<uint32_t[], PackedBf16B::Free>(
      static_cast<uint32_t*>(scholar::detail::allocate_large(bytes, true)),
      PackedBf16B::Free{bytes});
  scholar_amx_pack_b(trans_b, N, K, B, ldb, p.words_.get());
#else
  static_cast<void>(B);  // unreachable: has_amx_bf16() is false without the x86 kernels
#endif
  return p;
}

void gemm_bf16_packed(bool trans_a, int64_t M, float alpha, const float* A, int64_t lda,
                      const PackedBf16B& B, float beta, float* C, int64_t ldc) {
  const int64_t K = B.rows(), N = B.cols();
  if (B.empty()) fail<ValueError>("gemm_bf16_packed: empty packed operand");
  if (!check("gemm_bf16_packed", trans_a, false, M, N, K, lda, std::max<int64_t>(1, N), ldc))
    return;
  if (!has_amx_bf16())
    fail<ValueError>(
        "gemm_bf16_packed: AMX bf16 tiles are not available (SCHOLAR_AMX or "
        "set_amx_enabled switched them off after packing)");
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  const uint32_t* words = B.words_.get();
  ThreadPool& pool = thread_pool();
  const int threads = pool.size();
  if (threads == 1 || M * N * K < kMinParallelMacs || M < 64) {
    scholar_gemm_bf16_amx_packed(trans_a, M, N, K, alpha, A, lda, words, beta, C, ldc);
    return;
  }
  // Blocks of rows, multiples of 32 (the micro-block's height).
  const int64_t step = (M / threads + 31) / 32 * 32;
  const int64_t chunks = (M + step - 1) / step;
  pool.run(chunks, [&](int64_t c) {
    const int64_t m0 = c * step, mc = std::min(step, M - m0);
    const float* a = trans_a ? A + m0 : A + m0 * lda;
    scholar_gemm_bf16_amx_packed(trans_a, mc, N, K, alpha, a, lda, words, beta, C + m0 * ldc, ldc);
  });
#else
  static_cast<void>(alpha), static_cast<void>(A), static_cast<void>(beta), static_cast<void>(C);
#endif
}

std::string_view matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::bf16 ? "bf16" : "f32";
}

void set_matmul_precision(MatmulPrecision p) {
  g_precision.store(static_cast<int>(p), std::memory_order_relaxed);
}

MatmulPrecision matmul_precision() {
  int p = g_precision.load(std::memory_order_relaxed);
  if (p < 0) {
    p = static_cast<int>(precision_from_env());
    g_precision.store(p, std::memory_order_relaxed);
  }
  return static_cast<MatmulPrecision>(p);
}

MatmulPrecision effective_matmul_precision() {
  return matmul_precision() == MatmulPrecision::bf16 && has_bf16_gemm() ? MatmulPrecision::bf16
                                                                        : MatmulPrecision::f32;
}

bool has_own_f32_gemm() {
#if defined(SCHOLAR_HAVE_X86_KERNELS)
  switch (active().isa) {
    case Isa::avx512:
    case Isa::avx512_vnni:
      return g_own_f32.on();
    case Isa::avx2:
      // On AVX2 the kernel is 1.0-1.26x Eigen's GEMM but 0.93-1.00x OpenBLAS's Haswell kernel
      // (docs/performance.md): OpenBLAS builds keep OpenBLAS unless asked for it.
#if defined(SCHOLAR_BLAS_OPENBLAS)
      return g_own_f32.on_or(false);
#else
      return g_own_f32.on();
#endif
    case Isa::scalar:
      return false;
  }
#endif
  return false;
}

void set_own_f32_gemm(bool enabled) {
  g_own_f32.set(enabled);
}

std::string gemm_backend() {
  if (has_own_f32_gemm())
    return active().isa == Isa::avx2 ? "scholar AVX2 (6x16 micro-tile)"
                                     : "scholar AVX-512 (8x48, 6x64 micro-tiles)";
  return blas_name();
}

std::string blas_name() {
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
