// C = alpha op(A) op(B) + beta C in f32 on AVX2 and FMA: scholar's own GEMM, which gemm() runs on
// CPUs whose best instruction set is AVX2 (or under SCHOLAR_ISA=avx2) instead of the BLAS chosen at
// build time (kernels::set_own_f32_gemm). Single threaded; kernels::gemm splits large products
// over the pool.
//
// The loop nest is gemm_f32_driver.hpp's (BLIS's). The micro-kernel keeps a 6 x 16 tile of C in
// 12 of the 16 vector registers (BLIS's Haswell shape); for each p it loads two B vectors and
// broadcasts each of the 6 A values against them, which leaves three registers for the two B
// vectors and the broadcast. The A micro-panel (6 x 384: 9 KiB) stays in L1 while B's 16-column
// micro-panels stream from L2. Edges are zero-padded in the panels and written through masks.
//
// Compiled with AVX2 flags as an isolated object (see CMakeLists.txt); only the entry point
// scholar_gemm_f32_avx2 is global. Called only on CPUs with AVX2 and FMA.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/gemm_f32_driver.hpp"

namespace {

// The lowest min(max(n, 0), 8) lanes, as a mask for vmaskmovps.
inline __m256i lane_mask(int64_t n) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int valid = static_cast<int>(std::clamp<int64_t>(n, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), index);
}

// Transposes an 8 x 8 block of floats held in 8 registers: element j of r[i] moves to element i of
// r[j]. Unpacks and shuffles transpose the 4 x 4 blocks inside each 128-bit lane, then lane
// permutes swap the off-diagonal blocks.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

struct Avx2 {
  static constexpr int64_t MR = 6;         // rows of C per micro-tile
  static constexpr int64_t NR = 16;        // columns of C per micro-tile: two vectors of 8 floats
  static constexpr int64_t MC = MR * 40;   // rows of op(A) packed in one pass
  static constexpr int64_t kPrefetch = 8;  // B rows ahead that the micro-kernel prefetches into L1

  // Packs one micro-panel of R rows whose k runs contiguously in memory: element (r, k) =
  // src[r * ld + k], r < rows (the rest zero), k < kc, into dst[k * R + r]. Eight rows at a time,
  // through 8 x 8 transposes.
  static void pack_k_contiguous(float* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                                int64_t kc) {
    for (int64_t r0 = 0; r0 < R; r0 += 8) {
      const int64_t valid = std::clamp<int64_t>(rows - r0, 0, 8);
      for (int64_t k = 0; k < kc; k += 8) {
        const bool whole = kc - k >= 8;
        const __m256i in_mask = lane_mask(kc - k);
        __m256 v[8];
        for (int64_t i = 0; i < 8; ++i) {
          const float* s = src + (r0 + i) * ld + k;
          v[i] = i >= valid ? _mm256_setzero_ps()
                 : whole    ? _mm256_loadu_ps(s)
                            : _mm256_maskload_ps(s, in_mask);
        }
        transpose8(v);
        // Whole 8-lane stores: with R = 6 the last two lanes (zero) land on the next k's slots,
        // which the next store rewrites, and past the end of the panel, which the next panel's
        // packing rewrites or the buffer's slack takes (vmaskmovps stores are slow, on AMD
        // especially).
        const int64_t n = std::min<int64_t>(8, kc - k);
        for (int64_t j = 0; j < n; ++j) _mm256_storeu_ps(dst + (k + j) * R + r0, v[j]);
      }
    }
  }

  // Packs `cols` columns whose elements run contiguously along each of kc rows: element (k, c) =
  // src[k * ld + c], into micro-panels of R columns (the last one zero-padded). Row by row, so that
  // memory is read in order.
  static void pack_rows(float* dst, const float* src, int64_t ld, int64_t R, int64_t cols,
                        int64_t kc) {
    const int64_t panels = (cols + R - 1) / R;
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = src + k * ld;
      for (int64_t q = 0; q < panels; ++q) {
        float* d = dst + q * kc * R + k * R;
        for (int64_t r0 = 0; r0 < R; r0 += 8) {
          const int64_t c = q * R + r0;
          const __m256 v = cols - c >= 8 ? _mm256_loadu_ps(s + c)
                                         : _mm256_maskload_ps(s + c, lane_mask(cols - c));
          // With R = 6 a whole store spills two lanes onto the panel's next k, stored later,
          // except at its last k, whose next slots belong to the next panel, stored already.
          if (R - r0 >= 8 || k + 1 < kc)
            _mm256_storeu_ps(d + r0, v);
          else
            _mm256_maskstore_ps(d + r0, lane_mask(R - r0), v);
        }
      }
    }
  }

  // C tile (m <= MR rows, n <= NR columns) = alpha * Apanel . Bpanel + (first ? beta * C : C).
  static void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                           float* C, int64_t ldc, int64_t m, int64_t n, float alpha, float beta,
                           bool first) {
    __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      c0[i] = c1[i] = _mm256_setzero_ps();
    }
    // Two steps per iteration: 4-6% faster than one (loop overhead beside 12 FMAs), as fast as 4.
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; ++p) {
      _mm_prefetch(reinterpret_cast<const char*>(b + (p + kPrefetch) * NR), _MM_HINT_T0);
      const __m256 b0 = _mm256_load_ps(b + p * NR), b1 = _mm256_load_ps(b + p * NR + 8);
      const float* ap = a + p * MR;
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(ap + i);
        c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
      }
    }
    const bool whole = n == NR;
    const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
    const __m256 va = _mm256_set1_ps(alpha);
    // Unrolled with a constant index: a loop to the run-time m made GCC keep the accumulators in
    // memory and store all twelve on every step of the loop above (2.5x slower).
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
      float* row = C + i * ldc;
      __m256 y0 = _mm256_mul_ps(va, c0[i]), y1 = _mm256_mul_ps(va, c1[i]);
      if (!first || beta != 0.0f) {
        const __m256 r0 = whole ? _mm256_loadu_ps(row) : _mm256_maskload_ps(row, m0);
        const __m256 r1 = whole ? _mm256_loadu_ps(row + 8) : _mm256_maskload_ps(row + 8, m1);
        if (!first) {
          y0 = _mm256_add_ps(y0, r0);
          y1 = _mm256_add_ps(y1, r1);
        } else {
          const __m256 vb = _mm256_set1_ps(beta);
          y0 = _mm256_fmadd_ps(vb, r0, y0);
          y1 = _mm256_fmadd_ps(vb, r1, y1);
        }
      }
      if (whole) {
        _mm256_storeu_ps(row, y0);
        _mm256_storeu_ps(row + 8, y1);
      } else {
        _mm256_maskstore_ps(row, m0, y0);
        _mm256_maskstore_ps(row + 8, m1, y1);
      }
    }
  }
};

}  // namespace

extern "C" void scholar_gemm_f32_avx2(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                      float alpha, const float* A, int64_t lda, const float* B,
                                      int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  f32_gemm_driver<Avx2>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
