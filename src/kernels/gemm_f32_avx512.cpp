// C = alpha op(A) op(B) + beta C in f32 on AVX-512: scholar's own GEMM, which gemm() runs on CPUs
// with AVX-512 instead of the BLAS chosen at build time (kernels::set_own_f32_gemm). Single
// threaded; kernels::gemm splits large products over the pool.
//
// The loop nest is gemm_f32_driver.hpp's (BLIS's). The A micro-panel (MR x KC: 21 KiB) stays in
// L1 while B's micro-panels stream from L2 past it. The other order (a B micro-panel of KC x NR =
// 48 KiB held in L1) does not fit this core's L1 beside the A stream, and ran whole products 10-20%
// slower. The micro-kernel keeps a 14 x 32 tile of C in 28 registers; for each p it loads two B
// vectors and broadcasts each A value against them (in assembly: tile_loop). Edges are
// zero-padded in the panels and written through masks.
//
// Memory latency is hidden by software prefetches, each measured on a host where a miss to memory
// costs 250-300 ns: the packers fetch the rows they will read next (a whole micro-panel ahead for
// op(A) and transposed op(B), kRowsAhead rows ahead otherwise), and a tile fetches its rows of C,
// with intent to write, kCLate steps before it writes them.
//
// Compiled with AVX-512 flags as an isolated object (see CMakeLists.txt); only the entry point
// scholar_gemm_f32_avx512 is global. Called only on CPUs with AVX-512 F/BW/DQ/VL.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/avx512_gemm_util.hpp"

namespace {

struct Avx512 {
  static constexpr int64_t MR = 14;         // rows of C per micro-tile
  static constexpr int64_t NR = 32;         // columns of C per micro-tile: two vectors of 16 floats
  static constexpr int64_t MC = MR * 16;    // rows of op(A) packed in one pass
  static constexpr int64_t kPrefetch = 8;   // B rows ahead that the micro-kernel prefetches into L1
  static constexpr int64_t kCLate = 64;     // steps before its end at which a tile prefetches C
  static constexpr int64_t kRowsAhead = 4;  // rows ahead that pack_rows prefetches

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
        for (int64_t i = 0; i < 16; ++i)  // the next micro-panel's rows, a whole panel ahead
          prefetch_l1(src, ((R + r0 + i) * ld + k) * 4);
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
      for (int64_t c = 0; c < cols; c += 16) prefetch_l1(s, (kRowsAhead * ld + c) * 4);
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
    alignas(64) float acc[MR * NR];
    tile_loop(kc, a, b, acc, C, ldc, m);
    const __mmask16 m0 = low_mask(n), m1 = low_mask(n - 16);
    for (int64_t i = 0; i < m; ++i)
      store_row(C + i * ldc, _mm512_load_ps(acc + i * NR), _mm512_load_ps(acc + i * NR + 16), m0,
                m1, alpha, beta, first);
  }

  // acc (MR x NR, row-major, 64-byte aligned) = Apanel . Bpanel over kc steps, each step's 28
  // products added in order with fused multiply-adds from zero, as ref::gemm_f32 does. kCLate
  // steps before the end it prefetches, with intent to write, the first two cache lines of `rows`
  // rows of C from c on, ldc floats apart (the tile's C, which the caller then writes).
  //
  // In assembly: the same loop written with intrinsics ran 3-5% slower (84-86% of the peak
  // against 88-90%, B's micro-panels streaming from L2 past an A panel in L1). The compiler put
  // both of a step's B prefetches together ahead of its loads and interleaved the pointer updates;
  // here each step loads its two B vectors first, the prefetches (kPrefetch rows ahead) sit between
  // the broadcasts, and two steps share one loop iteration. Registers: zmm0-27 the tile (row i in
  // zmm 2i and 2i + 1), zmm29 the broadcast, zmm30-31 the B row.
  static void tile_loop(int64_t kc, const float* a, const float* b, float* acc, float* c,
                        int64_t ldc, int64_t rows) {
    static_assert(MR == 14 && NR == 32 && kPrefetch == 8, "the assembly below is this tile's");
    // clang-format off
    // Row I of the tile: broadcast A's value I (byte AO + 4 I of the A pointer) against B's row.
#define SCHOLAR_ROW(AO, I, C0, C1)                          \
    "vbroadcastss " #AO "+4*" #I "(%[a]), %%zmm29\n\t"      \
    "vfmadd231ps %%zmm29, %%zmm30, %%zmm" #C0 "\n\t"        \
    "vfmadd231ps %%zmm29, %%zmm31, %%zmm" #C1 "\n\t"
    // One step: B's row at byte BO of the B pointer (prefetching the row kPrefetch = 8 ahead, 1,024
    // bytes on), A's 14 values at byte AO of the A pointer.
#define SCHOLAR_STEP(AO, BO)                                                              \
    "vmovaps " #BO "(%[b]), %%zmm30\n\t"                                                  \
    "vmovaps " #BO "+64(%[b]), %%zmm31\n\t"                                               \
    SCHOLAR_ROW(AO, 0, 0, 1) SCHOLAR_ROW(AO, 1, 2, 3) SCHOLAR_ROW(AO, 2, 4, 5)            \
    "prefetcht0 " #BO "+1024(%[b])\n\t"                                                   \
    SCHOLAR_ROW(AO, 3, 6, 7) SCHOLAR_ROW(AO, 4, 8, 9) SCHOLAR_ROW(AO, 5, 10, 11)          \
    SCHOLAR_ROW(AO, 6, 12, 13) SCHOLAR_ROW(AO, 7, 14, 15)                                 \
    "prefetcht0 " #BO "+1088(%[b])\n\t"                                                   \
    SCHOLAR_ROW(AO, 8, 16, 17) SCHOLAR_ROW(AO, 9, 18, 19) SCHOLAR_ROW(AO, 10, 20, 21)     \
    SCHOLAR_ROW(AO, 11, 22, 23) SCHOLAR_ROW(AO, 12, 24, 25) SCHOLAR_ROW(AO, 13, 26, 27)
    // clang-format on
    const int64_t pairs = kc / 2;
    int64_t late = std::min(pairs, kCLate / 2);  // pairs after C's prefetch
    int64_t early = pairs - late;
    const int64_t odd = kc % 2;
    const int64_t ldc_bytes = ldc * static_cast<int64_t>(sizeof(float));
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
        "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\tvmovaps %%zmm0, %%zmm3\n\t"
        "vmovaps %%zmm0, %%zmm4\n\tvmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\t"
        "vmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\tvmovaps %%zmm0, %%zmm9\n\t"
        "vmovaps %%zmm0, %%zmm10\n\tvmovaps %%zmm0, %%zmm11\n\tvmovaps %%zmm0, %%zmm12\n\t"
        "vmovaps %%zmm0, %%zmm13\n\tvmovaps %%zmm0, %%zmm14\n\tvmovaps %%zmm0, %%zmm15\n\t"
        "vmovaps %%zmm0, %%zmm16\n\tvmovaps %%zmm0, %%zmm17\n\tvmovaps %%zmm0, %%zmm18\n\t"
        "vmovaps %%zmm0, %%zmm19\n\tvmovaps %%zmm0, %%zmm20\n\tvmovaps %%zmm0, %%zmm21\n\t"
        "vmovaps %%zmm0, %%zmm22\n\tvmovaps %%zmm0, %%zmm23\n\tvmovaps %%zmm0, %%zmm24\n\t"
        "vmovaps %%zmm0, %%zmm25\n\tvmovaps %%zmm0, %%zmm26\n\tvmovaps %%zmm0, %%zmm27\n\t"
        "test %[early], %[early]\n\t"
        "jz 4f\n\t"
        "1:\n\t"  // two steps
        SCHOLAR_STEP(0, 0) SCHOLAR_STEP(56, 128)
        "add $112, %[a]\n\t"
        "add $256, %[b]\n\t"
        "dec %[early]\n\t"
        "jnz 1b\n\t"
        "4:\n\t"  // C's rows into L1, with intent to write
        "prefetchw (%[c])\n\t"
        "prefetchw 64(%[c])\n\t"
        "add %[ldc], %[c]\n\t"
        "dec %[rows]\n\t"
        "jnz 4b\n\t"
        "test %[late], %[late]\n\t"
        "jz 2f\n\t"
        "5:\n\t"  // two steps
        SCHOLAR_STEP(0, 0) SCHOLAR_STEP(56, 128)
        "add $112, %[a]\n\t"
        "add $256, %[b]\n\t"
        "dec %[late]\n\t"
        "jnz 5b\n\t"
        "2:\n\t"  // the last step of an odd kc
        "test %[odd], %[odd]\n\t"
        "jz 3f\n\t" SCHOLAR_STEP(0, 0)
        "3:\n\t"
        "vmovaps %%zmm0, 0(%[acc])\n\tvmovaps %%zmm1, 64(%[acc])\n\t"
        "vmovaps %%zmm2, 128(%[acc])\n\tvmovaps %%zmm3, 192(%[acc])\n\t"
        "vmovaps %%zmm4, 256(%[acc])\n\tvmovaps %%zmm5, 320(%[acc])\n\t"
        "vmovaps %%zmm6, 384(%[acc])\n\tvmovaps %%zmm7, 448(%[acc])\n\t"
        "vmovaps %%zmm8, 512(%[acc])\n\tvmovaps %%zmm9, 576(%[acc])\n\t"
        "vmovaps %%zmm10, 640(%[acc])\n\tvmovaps %%zmm11, 704(%[acc])\n\t"
        "vmovaps %%zmm12, 768(%[acc])\n\tvmovaps %%zmm13, 832(%[acc])\n\t"
        "vmovaps %%zmm14, 896(%[acc])\n\tvmovaps %%zmm15, 960(%[acc])\n\t"
        "vmovaps %%zmm16, 1024(%[acc])\n\tvmovaps %%zmm17, 1088(%[acc])\n\t"
        "vmovaps %%zmm18, 1152(%[acc])\n\tvmovaps %%zmm19, 1216(%[acc])\n\t"
        "vmovaps %%zmm20, 1280(%[acc])\n\tvmovaps %%zmm21, 1344(%[acc])\n\t"
        "vmovaps %%zmm22, 1408(%[acc])\n\tvmovaps %%zmm23, 1472(%[acc])\n\t"
        "vmovaps %%zmm24, 1536(%[acc])\n\tvmovaps %%zmm25, 1600(%[acc])\n\t"
        "vmovaps %%zmm26, 1664(%[acc])\n\tvmovaps %%zmm27, 1728(%[acc])\n\t"
        : [early] "+r"(early), [late] "+r"(late), [a] "+r"(a), [b] "+r"(b), [c] "+r"(c),
          [rows] "+r"(rows)
        : [odd] "r"(odd), [acc] "r"(acc), [ldc] "r"(ldc_bytes)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",
          "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm29",
          "xmm30", "xmm31", "cc", "memory");
#undef SCHOLAR_STEP
#undef SCHOLAR_ROW
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
