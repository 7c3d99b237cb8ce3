// C = alpha op(A) op(B) + beta C in f32 on AVX-512: scholar's own GEMM, which gemm() runs on CPUs
// with AVX-512 instead of the BLAS chosen at build time (kernels::set_own_f32_gemm). Single
// threaded; kernels::gemm splits large products over the pool.
//
// The loop nest is gemm_f32_driver.hpp's (BLIS's). The A micro-panel (MR x KC: 21 KiB) stays in
// L1 while B's micro-panels stream from L2 past it. The other order (a B micro-panel of KC x NR =
// 48 KiB held in L1) does not fit this core's L1 beside the A stream, and ran whole products 10-20%
// slower. The micro-kernel keeps a 14 x 32 tile of C in 28 registers; for each p it loads two B
// vectors and broadcasts each A value against them. Edges are zero-padded in the panels and
// written through masks.
//
// Compiled with AVX-512 flags as an isolated object (see CMakeLists.txt); only the entry point
// scholar_gemm_f32_avx512 is global. Called only on CPUs with AVX-512 F/BW/DQ/VL.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/avx512_gemm_util.hpp"

namespace {

struct Avx512 {
  static constexpr int64_t MR = 14;        // rows of C per micro-tile
  static constexpr int64_t NR = 32;        // columns of C per micro-tile: two vectors of 16 floats
  static constexpr int64_t MC = MR * 16;   // rows of op(A) per packed block (224 x 384: 336 KiB)
  static constexpr int64_t kPrefetch = 8;  // B rows ahead that the micro-kernel prefetches into L1

  // Packs one micro-panel of R rows whose k runs contiguously in memory: element (r, k) =
  // src[r * ld + k], r < rows (the rest zero), k < kc, into dst[k * R + r]. Sixteen rows at a time,
  // through 16 x 16 transposes.
  static void pack_k_contiguous(float* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                                int64_t kc) {
    for (int64_t r0 = 0; r0 < R; r0 += 16) {
      const int64_t valid = std::clamp<int64_t>(rows - r0, 0, 16);
      const __mmask16 out_mask = low_mask(R - r0);
      for (int64_t k = 0; k < kc; k += 16) {
        const __mmask16 in_mask = low_mask(kc - k);
        __m512i v[16];
        for (int64_t i = 0; i < 16; ++i) {
          v[i] = i < valid
                     ? _mm512_castps_si512(_mm512_maskz_loadu_ps(in_mask, src + (r0 + i) * ld + k))
                     : _mm512_setzero_si512();
        }
        transpose16(v);
        const int64_t n = std::min<int64_t>(16, kc - k);
        for (int64_t j = 0; j < n; ++j)
          _mm512_mask_storeu_epi32(dst + (k + j) * R + r0, out_mask, v[j]);
      }
    }
  }

  // Packs `cols` columns whose elements run contiguously along each of kc rows: element (k, c) =
  // src[k * ld + c], into micro-panels of R columns (the last one zero-padded): dst[(c / R) * kc *
  // R
  // + k * R + c % R]. Row by row, so that memory is read in order (a panel at a time would jump a
  // whole row, often a page, per k).
  static void pack_rows(float* dst, const float* src, int64_t ld, int64_t R, int64_t cols,
                        int64_t kc) {
    const int64_t panels = (cols + R - 1) / R;
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = src + k * ld;
      for (int64_t q = 0; q < panels; ++q) {
        float* d = dst + q * kc * R + k * R;
        for (int64_t r0 = 0; r0 < R; r0 += 16) {
          const int64_t c = q * R + r0;
          _mm512_mask_storeu_ps(d + r0, low_mask(R - r0),
                                _mm512_maskz_loadu_ps(low_mask(cols - c), s + c));
        }
      }
    }
  }

  // C tile (m <= MR rows, n <= NR columns) = alpha * Apanel . Bpanel + (first ? beta * C : C).
  static void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                           float* C, int64_t ldc, int64_t m, int64_t n, float alpha, float beta,
                           bool first) {
    if (!first || beta != 0.0f) {
      for (int64_t i = 0; i < m; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16), _MM_HINT_T0);
      }
    }
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kc; ++p) {
      _mm_prefetch(reinterpret_cast<const char*>(b + (p + kPrefetch) * NR), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + (p + kPrefetch) * NR + 16), _MM_HINT_T0);
      const __m512 b0 = _mm512_load_ps(b + p * NR), b1 = _mm512_load_ps(b + p * NR + 16);
      const float* ap = a + p * MR;
#pragma GCC unroll 14
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(ap[i]);
        c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
      }
    }
    const __mmask16 m0 = low_mask(n), m1 = low_mask(n - 16);
    for (int64_t i = 0; i < m; ++i)
      store_row(C + i * ldc, c0[i], c1[i], m0, m1, alpha, beta, first);
  }
};

}  // namespace

extern "C" void scholar_gemm_f32_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                        float alpha, const float* A, int64_t lda, const float* B,
                                        int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  f32_gemm_driver<Avx512>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
