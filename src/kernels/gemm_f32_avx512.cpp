// C = alpha op(A) op(B) + beta C in f32 on AVX-512: scholar's own GEMM, which gemm() runs on CPUs
// with AVX-512 instead of the BLAS chosen at build time (kernels::set_own_f32_gemm). Single
// threaded; kernels::gemm splits large products over the pool.
//
// The loop nest is gemm_f32_driver.hpp's (BLIS's). The A micro-panel (MR x KC: 12 KiB) stays in
// L1 while B's micro-panels stream from L2 past it. The other order (a B micro-panel held in L1)
// does not fit this core's L1 beside the A stream, and ran whole products 10-20% slower.
//
// Two micro-kernels, both in assembly, keep 24 accumulators: an 8 x 48 tile of C (Wide: for each
// p, three B vectors and eight broadcasts of A) and a 6 x 64 tile (Narrow: four B vectors, six
// broadcasts). Loads, not multiply-adds, bound such a loop on the Sapphire Rapids host: a loop of
// 24 FMAs runs at the full rate with 8 loads beside it but about 9% slower with 11 (measured on
// registers alone), so a tile needs few loads per FMA: the 14 x 32 tile this file had before
// (14 broadcasts, 2 loads and 2 prefetches per 28 FMAs) ran a step's large products 0.96-0.99x as
// fast as the 8 x 48 in a fast hour, about as fast in a slow one. Narrow pads less where N is small
// or a multiple of 64 but not of 48 (attention's 64-column blocks: 1.17-1.34x), so the entry point
// picks whichever pads the product less (pick_narrow). Edges are zero-padded in the panels and
// written through masks; full tiles are written from the registers.
//
// Memory latency is hidden by software prefetches, each measured on a host where a miss to memory
// costs 250-300 ns: the packers fetch the rows they will read next (the next 16 rows for
// op(A) and transposed op(B), kRowsAhead rows ahead otherwise), and a tile fetches its rows of C,
// with intent to write, kCLate steps before it writes them. B's micro-panels are not prefetched:
// they stream from L2 in order, and three prefetches per step took load slots from the loop (its
// rate with all operands in L1: 0.84 of the peak with them, 0.88 without).
//
// Compiled with AVX-512 flags as an isolated object (see CMakeLists.txt); only the entry point
// scholar_gemm_f32_avx512 is global. Called only on CPUs with AVX-512 F/BW/DQ/VL.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/avx512_gemm_util.hpp"

namespace {

// What both micro-kernels share: the packers and the write-back of edge tiles.
struct Avx512Common {
  static constexpr int64_t kCLate = 64;     // steps before its end at which a tile prefetches C
  static constexpr int64_t kRowsAhead = 4;  // rows ahead that pack_rows prefetches

  // Packs `rows` rows whose k runs contiguously in memory (element (r, k) = src[r * ld + k], k <
  // kc) into consecutive micro-panels of R rows, each kc * R values (the last one zero-padded): row
  // r lands at dst[(r / R) * kc * R + k * R + r % R]. Sixteen rows at a time through a 16 x 16
  // transpose, whose lanes are stored to the panels they belong to through masks (a group of 16
  // rows spans up to four 6-row panels), so the transposes are not spent on padding: packing one
  // 6- or 8-row panel per transpose cost 2-2.7x the shuffles.
  static void pack_k_panels(float* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                            int64_t kc) {
    const int64_t padded = (rows + R - 1) / R * R;  // rows of whole panels
    for (int64_t r0 = 0; r0 < padded; r0 += 16) {
      const int64_t valid = std::clamp<int64_t>(rows - r0, 0, 16);
      const int64_t group = std::min<int64_t>(16, padded - r0);
      for (int64_t k = 0; k < kc; k += 16) {
        const __mmask16 in_mask = low_mask(kc - k);
        __m512i v[16];
        for (int64_t i = 0; i < 16; ++i)  // the next group's rows
          prefetch_l1(src, ((r0 + 16 + i) * ld + k) * 4);
        for (int64_t i = 0; i < 16; ++i) {
          v[i] = i < valid
                     ? _mm512_castps_si512(_mm512_maskz_loadu_ps(in_mask, src + (r0 + i) * ld + k))
                     : _mm512_setzero_si512();
        }
        transpose16(v);
        const int64_t n = std::min<int64_t>(16, kc - k);
        for (int64_t lo = 0; lo < group;) {
          // Lanes lo .. hi - 1 (rows r0 + lo ..) belong to panel p, from its row `off` on; lane l
          // is stored at base + l, base lying inside the buffer (p R (kc - 1) + r0 >= 0 values on).
          const int64_t p = (r0 + lo) / R, off = (r0 + lo) % R;
          const int64_t hi = std::min(group, lo + R - off);
          const __mmask16 lanes = static_cast<__mmask16>(low_mask(hi) & ~low_mask(lo));
          float* base = dst + p * kc * R + (r0 - p * R) + k * R;
          for (int64_t j = 0; j < n; ++j) _mm512_mask_storeu_epi32(base + j * R, lanes, v[j]);
          lo = hi;
        }
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

  // Writes an m x n tile (n <= 16 V) from acc (rows of 16 V sums, 64-byte aligned) to C:
  // alpha * acc + (first ? beta * C : C), beta = 0 ignoring C, columns through masks.
  template <int V>
  static void store_tile(const float* acc, float* C, int64_t ldc, int64_t m, int64_t n, float alpha,
                         float beta, bool first) {
    __mmask16 mask[V];
    for (int v = 0; v < V; ++v) mask[v] = low_mask(n - 16 * v);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t i = 0; i < m; ++i) {
      float* row = C + i * ldc;
      for (int v = 0; v < V; ++v) {
        __m512 y = _mm512_mul_ps(va, _mm512_load_ps(acc + (i * V + v) * 16));
        if (!first)
          y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
        else if (beta != 0.0f)
          y = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask[v], row + 16 * v), y);
        _mm512_mask_storeu_ps(row + 16 * v, mask[v], y);
      }
    }
  }

  // How tile_loop writes its sums: 0 into acc (the caller writes C), 1 C = alpha * sums and 2 C +=
  // alpha * sums from the registers (full tiles that overwrite C, or add to it after the first K
  // block).
  static int64_t write_mode(int64_t m, int64_t n, int64_t mr, int64_t nr, float beta, bool first) {
    if (m != mr || n != nr) return 0;
    return !first ? 2 : beta == 0.0f ? 1 : 0;
  }
};

// clang-format off
// The assembly shared by both tiles. SCHOLAR_ZERO clears zmm0-23 (the tile); SCHOLAR_LOOP runs the
// steps (two per iteration: SCHOLAR_STEP(0, 0) SCHOLAR_STEP(AS, BS) with A and B advancing 2 AS and
// 2 BS bytes), prefetches C's rows (PFC: the prefetchw of one row) kCLate steps before the end,
// then the odd last step; SCHOLAR_ACC stores zmm0-23 to acc.
#define SCHOLAR_ZERO                                                                          \
    "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"                                                       \
    "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\tvmovaps %%zmm0, %%zmm3\n\t"          \
    "vmovaps %%zmm0, %%zmm4\n\tvmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\t"          \
    "vmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\tvmovaps %%zmm0, %%zmm9\n\t"          \
    "vmovaps %%zmm0, %%zmm10\n\tvmovaps %%zmm0, %%zmm11\n\tvmovaps %%zmm0, %%zmm12\n\t"       \
    "vmovaps %%zmm0, %%zmm13\n\tvmovaps %%zmm0, %%zmm14\n\tvmovaps %%zmm0, %%zmm15\n\t"       \
    "vmovaps %%zmm0, %%zmm16\n\tvmovaps %%zmm0, %%zmm17\n\tvmovaps %%zmm0, %%zmm18\n\t"       \
    "vmovaps %%zmm0, %%zmm19\n\tvmovaps %%zmm0, %%zmm20\n\tvmovaps %%zmm0, %%zmm21\n\t"       \
    "vmovaps %%zmm0, %%zmm22\n\tvmovaps %%zmm0, %%zmm23\n\t"
#define SCHOLAR_LOOP(AS, BS, PFC)                                                             \
    "test %[early], %[early]\n\t"                                                             \
    "jz 4f\n\t"                                                                               \
    "1:\n\t"                                                                                  \
    SCHOLAR_STEP(0, 0) SCHOLAR_STEP(AS, BS)                                                   \
    "add $2*" #AS ", %[a]\n\t"                                                                \
    "add $2*" #BS ", %[b]\n\t"                                                                \
    "dec %[early]\n\t"                                                                        \
    "jnz 1b\n\t"                                                                              \
    "4:\n\t"                                                                                  \
    PFC                                                                                       \
    "add %[ldc], %[c]\n\t"                                                                    \
    "dec %[rows]\n\t"                                                                         \
    "jnz 4b\n\t"                                                                              \
    "test %[late], %[late]\n\t"                                                               \
    "jz 2f\n\t"                                                                               \
    "5:\n\t"                                                                                  \
    SCHOLAR_STEP(0, 0) SCHOLAR_STEP(AS, BS)                                                   \
    "add $2*" #AS ", %[a]\n\t"                                                                \
    "add $2*" #BS ", %[b]\n\t"                                                                \
    "dec %[late]\n\t"                                                                         \
    "jnz 5b\n\t"                                                                              \
    "2:\n\t"                                                                                  \
    "test %[odd], %[odd]\n\t"                                                                 \
    "jz 3f\n\t" SCHOLAR_STEP(0, 0)                                                            \
    "3:\n\t"
#define SCHOLAR_ACC                                                                           \
    "vmovaps %%zmm0, 0(%[acc])\n\tvmovaps %%zmm1, 64(%[acc])\n\t"                             \
    "vmovaps %%zmm2, 128(%[acc])\n\tvmovaps %%zmm3, 192(%[acc])\n\t"                          \
    "vmovaps %%zmm4, 256(%[acc])\n\tvmovaps %%zmm5, 320(%[acc])\n\t"                          \
    "vmovaps %%zmm6, 384(%[acc])\n\tvmovaps %%zmm7, 448(%[acc])\n\t"                          \
    "vmovaps %%zmm8, 512(%[acc])\n\tvmovaps %%zmm9, 576(%[acc])\n\t"                          \
    "vmovaps %%zmm10, 640(%[acc])\n\tvmovaps %%zmm11, 704(%[acc])\n\t"                        \
    "vmovaps %%zmm12, 768(%[acc])\n\tvmovaps %%zmm13, 832(%[acc])\n\t"                        \
    "vmovaps %%zmm14, 896(%[acc])\n\tvmovaps %%zmm15, 960(%[acc])\n\t"                        \
    "vmovaps %%zmm16, 1024(%[acc])\n\tvmovaps %%zmm17, 1088(%[acc])\n\t"                      \
    "vmovaps %%zmm18, 1152(%[acc])\n\tvmovaps %%zmm19, 1216(%[acc])\n\t"                      \
    "vmovaps %%zmm20, 1280(%[acc])\n\tvmovaps %%zmm21, 1344(%[acc])\n\t"                      \
    "vmovaps %%zmm22, 1408(%[acc])\n\tvmovaps %%zmm23, 1472(%[acc])\n\t"
// One vector of a full tile's row written to C at the row pointer (byte offset O): alpha (zmm28,
// broadcast after the loop) times the sums, plus C's old values when accumulating (%[mode] = 2).
#define SCHOLAR_SCALE(R) "vmulps %%zmm28, %%zmm" #R ", %%zmm" #R "\n\t"
#define SCHOLAR_ADD(R, O) "vaddps " #O "(%[crow]), %%zmm" #R ", %%zmm" #R "\n\t"
#define SCHOLAR_PUT(R, O) "vmovups %%zmm" #R ", " #O "(%[crow])\n\t"
// The operands of both tile loops.
#define SCHOLAR_OPERANDS                                                                      \
    : [early] "+r"(t.early), [late] "+r"(t.late), [a] "+r"(a), [b] "+r"(b), [c] "+r"(c),      \
      [rows] "+r"(rows), [crow] "+r"(t.crow)                                                  \
    : [odd] "r"(t.odd), [acc] "r"(acc), [ldc] "r"(t.ldc_bytes), [mode] "r"(mode),             \
      [alpha] "m"(alpha)                                                                      \
    : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19",        \
      "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",        \
      "xmm29", "xmm30", "xmm31", "cc", "memory"
// clang-format on

// The loop state of a tile: pairs of steps before and after C's prefetch, an odd last step, the
// row stride of C in bytes and the row of C that a full tile's write-back is at.
struct TileState {
  int64_t early, late, odd, ldc_bytes;
  float* crow;
  TileState(int64_t kc, int64_t ldc, float* c)
      : late(std::min(kc / 2, Avx512Common::kCLate / 2)),
        odd(kc % 2),
        ldc_bytes(ldc * static_cast<int64_t>(sizeof(float))),
        crow(c) {
    early = kc / 2 - late;
  }
};

// A micro-kernel around Tile::tile_loop (MR x NR, NR = 16 V).
template <class Tile, int64_t kRows, int V>
struct Avx512Tile : Avx512Common {
  static constexpr int64_t MR = kRows;    // rows of C per micro-tile
  static constexpr int64_t NR = 16 * V;   // columns of C per micro-tile: V vectors of 16 floats
  static constexpr int64_t MC = MR * 16;  // rows of op(A) packed in one pass

  // C tile (m <= MR rows, n <= NR columns) = alpha * Apanel . Bpanel + (first ? beta * C : C).
  static void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                           float* C, int64_t ldc, int64_t m, int64_t n, float alpha, float beta,
                           bool first) {
    const int64_t mode = write_mode(m, n, MR, NR, beta, first);
    alignas(64) float acc[MR * NR];
    Tile::tile_loop(kc, a, b, acc, C, ldc, m, mode, alpha);
    if (mode == 0) store_tile<V>(acc, C, ldc, m, n, alpha, beta, first);
  }
};

// The 8 x 48 tile: registers zmm0-23 the tile (row i in zmm 3i .. 3i + 2), zmm24-27 the
// broadcasts (in turn), zmm29-31 B's row.
struct Avx512Wide : Avx512Tile<Avx512Wide, 8, 3> {
  // The sums of kc steps, each step's 24 products added in order with fused multiply-adds from
  // zero, as ref::gemm_f32 does, written as write_mode says (to acc: MR x NR, row-major, 64-byte
  // aligned). kCLate steps before the end it prefetches, with intent to write, the first three
  // cache lines of `rows` rows of C. Each step loads its three B vectors first; two steps share
  // one loop iteration.
  static void tile_loop(int64_t kc, const float* a, const float* b, float* acc, float* c,
                        int64_t ldc, int64_t rows, int64_t mode, float alpha) {
    static_assert(MR == 8 && NR == 48, "the assembly below is this tile's");
    // clang-format off
    // Row I of the tile: broadcast A's value I (byte AO + 4 I of the A pointer) into zmm Z against
    // B's row.
#define SCHOLAR_ROW(AO, I, Z, C0, C1, C2)                   \
    "vbroadcastss " #AO "+4*" #I "(%[a]), %%zmm" #Z "\n\t"  \
    "vfmadd231ps %%zmm" #Z ", %%zmm29, %%zmm" #C0 "\n\t"    \
    "vfmadd231ps %%zmm" #Z ", %%zmm30, %%zmm" #C1 "\n\t"    \
    "vfmadd231ps %%zmm" #Z ", %%zmm31, %%zmm" #C2 "\n\t"
    // One step: B's row at byte BO of the B pointer, A's 8 values at byte AO of the A pointer.
#define SCHOLAR_STEP(AO, BO)                                                \
    "vmovaps " #BO "(%[b]), %%zmm29\n\t"                                    \
    "vmovaps " #BO "+64(%[b]), %%zmm30\n\t"                                 \
    "vmovaps " #BO "+128(%[b]), %%zmm31\n\t"                                \
    SCHOLAR_ROW(AO, 0, 24, 0, 1, 2) SCHOLAR_ROW(AO, 1, 25, 3, 4, 5)         \
    SCHOLAR_ROW(AO, 2, 26, 6, 7, 8) SCHOLAR_ROW(AO, 3, 27, 9, 10, 11)       \
    SCHOLAR_ROW(AO, 4, 24, 12, 13, 14) SCHOLAR_ROW(AO, 5, 25, 15, 16, 17)   \
    SCHOLAR_ROW(AO, 6, 26, 18, 19, 20) SCHOLAR_ROW(AO, 7, 27, 21, 22, 23)
    // Row i of a full tile (zmm R0-R2) to C.
#define SCHOLAR_OUT(R0, R1, R2)                                                         \
    SCHOLAR_SCALE(R0) SCHOLAR_SCALE(R1) SCHOLAR_SCALE(R2)                               \
    "cmp $2, %[mode]\n\t"                                                               \
    "jne 8f\n\t"                                                                        \
    SCHOLAR_ADD(R0, 0) SCHOLAR_ADD(R1, 64) SCHOLAR_ADD(R2, 128)                         \
    "8:\n\t"                                                                            \
    SCHOLAR_PUT(R0, 0) SCHOLAR_PUT(R1, 64) SCHOLAR_PUT(R2, 128)                         \
    "add %[ldc], %[crow]\n\t"
    // clang-format on
    TileState t(kc, ldc, c);
    __asm__ volatile(
        SCHOLAR_ZERO
        SCHOLAR_LOOP(32, 192, "prefetchw (%[c])\n\tprefetchw 64(%[c])\n\tprefetchw 128(%[c])\n\t")
        "test %[mode], %[mode]\n\t"
        "jz 7f\n\t"
        "vbroadcastss %[alpha], %%zmm28\n\t"
        SCHOLAR_OUT(0, 1, 2) SCHOLAR_OUT(3, 4, 5) SCHOLAR_OUT(6, 7, 8) SCHOLAR_OUT(9, 10, 11)
        SCHOLAR_OUT(12, 13, 14) SCHOLAR_OUT(15, 16, 17) SCHOLAR_OUT(18, 19, 20)
        SCHOLAR_OUT(21, 22, 23)
        "jmp 9f\n\t"
        "7:\n\t" SCHOLAR_ACC
        "9:\n\t"
        SCHOLAR_OPERANDS);
#undef SCHOLAR_OUT
#undef SCHOLAR_STEP
#undef SCHOLAR_ROW
  }
};

// The 6 x 64 tile: registers zmm0-23 the tile (row i in zmm 4i .. 4i + 3), zmm24-27 the
// broadcasts (in turn), zmm28-31 B's row.
struct Avx512Narrow : Avx512Tile<Avx512Narrow, 6, 4> {
  // As Avx512Wide::tile_loop, for this tile (four cache lines of each row of C prefetched).
  static void tile_loop(int64_t kc, const float* a, const float* b, float* acc, float* c,
                        int64_t ldc, int64_t rows, int64_t mode, float alpha) {
    static_assert(MR == 6 && NR == 64, "the assembly below is this tile's");
    // clang-format off
#define SCHOLAR_ROW(AO, I, Z, C0, C1, C2, C3)               \
    "vbroadcastss " #AO "+4*" #I "(%[a]), %%zmm" #Z "\n\t"  \
    "vfmadd231ps %%zmm" #Z ", %%zmm28, %%zmm" #C0 "\n\t"    \
    "vfmadd231ps %%zmm" #Z ", %%zmm29, %%zmm" #C1 "\n\t"    \
    "vfmadd231ps %%zmm" #Z ", %%zmm30, %%zmm" #C2 "\n\t"    \
    "vfmadd231ps %%zmm" #Z ", %%zmm31, %%zmm" #C3 "\n\t"
#define SCHOLAR_STEP(AO, BO)                                                    \
    "vmovaps " #BO "(%[b]), %%zmm28\n\t"                                        \
    "vmovaps " #BO "+64(%[b]), %%zmm29\n\t"                                     \
    "vmovaps " #BO "+128(%[b]), %%zmm30\n\t"                                    \
    "vmovaps " #BO "+192(%[b]), %%zmm31\n\t"                                    \
    SCHOLAR_ROW(AO, 0, 24, 0, 1, 2, 3) SCHOLAR_ROW(AO, 1, 25, 4, 5, 6, 7)       \
    SCHOLAR_ROW(AO, 2, 26, 8, 9, 10, 11) SCHOLAR_ROW(AO, 3, 27, 12, 13, 14, 15) \
    SCHOLAR_ROW(AO, 4, 24, 16, 17, 18, 19) SCHOLAR_ROW(AO, 5, 25, 20, 21, 22, 23)
#define SCHOLAR_OUT(R0, R1, R2, R3)                                                     \
    SCHOLAR_SCALE(R0) SCHOLAR_SCALE(R1) SCHOLAR_SCALE(R2) SCHOLAR_SCALE(R3)             \
    "cmp $2, %[mode]\n\t"                                                               \
    "jne 8f\n\t"                                                                        \
    SCHOLAR_ADD(R0, 0) SCHOLAR_ADD(R1, 64) SCHOLAR_ADD(R2, 128) SCHOLAR_ADD(R3, 192)    \
    "8:\n\t"                                                                            \
    SCHOLAR_PUT(R0, 0) SCHOLAR_PUT(R1, 64) SCHOLAR_PUT(R2, 128) SCHOLAR_PUT(R3, 192)    \
    "add %[ldc], %[crow]\n\t"
    // clang-format on
    TileState t(kc, ldc, c);
    __asm__ volatile(
        SCHOLAR_ZERO
        SCHOLAR_LOOP(24, 256, "prefetchw (%[c])\n\tprefetchw 64(%[c])\n\tprefetchw 128(%[c])\n\t"
                              "prefetchw 192(%[c])\n\t")
        "test %[mode], %[mode]\n\t"
        "jz 7f\n\t"
        "vbroadcastss %[alpha], %%zmm28\n\t"  // B's row is no longer needed
        SCHOLAR_OUT(0, 1, 2, 3) SCHOLAR_OUT(4, 5, 6, 7) SCHOLAR_OUT(8, 9, 10, 11)
        SCHOLAR_OUT(12, 13, 14, 15) SCHOLAR_OUT(16, 17, 18, 19) SCHOLAR_OUT(20, 21, 22, 23)
        "jmp 9f\n\t"
        "7:\n\t" SCHOLAR_ACC
        "9:\n\t"
        SCHOLAR_OPERANDS);
#undef SCHOLAR_OUT
#undef SCHOLAR_STEP
#undef SCHOLAR_ROW
  }
};

#undef SCHOLAR_OPERANDS
#undef SCHOLAR_PUT
#undef SCHOLAR_ADD
#undef SCHOLAR_SCALE
#undef SCHOLAR_ACC
#undef SCHOLAR_LOOP
#undef SCHOLAR_ZERO

// True if the 6 x 64 tile pads the product less than the 8 x 48 one: C's elements computed, padded
// to whole tiles, with a 3% margin for the 8 x 48 tile (its edge on large products when op(A) was
// packed a panel per transpose; since op(A) packs 16 rows per transpose the two run within 1-2% of
// each other there, and the margin only keeps large products on the tile measured most).
bool pick_narrow(int64_t M, int64_t N) {
  auto padded = [](int64_t n, int64_t r) { return static_cast<double>((n + r - 1) / r * r); };
  return 1.03 * padded(M, 6) * padded(N, 64) < padded(M, 8) * padded(N, 48);
}

}  // namespace

extern "C" void scholar_gemm_f32_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                        float alpha, const float* A, int64_t lda, const float* B,
                                        int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  if (pick_narrow(M, N))
    f32_gemm_driver<Avx512Narrow>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    f32_gemm_driver<Avx512Wide>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
