// C = alpha op(A) op(B) + beta C with the products in bf16 and the sums in f32, on AMX tiles
// (Intel Advanced Matrix Extensions, Sapphire Rapids and later): one TDPBF16PS multiplies a 16 x 32
// bf16 tile of A by a 32 x 16 tile of B into a 16 x 16 f32 tile of C, 8,192 multiply-adds, about
// 16 times what an AVX-512 FMA does in the same cycles. Single threaded; kernels::gemm_bf16 splits
// large products over the pool. The arithmetic is gemm_bf16_avx512.cpp's (both operands rounded to
// bf16 once, nearest even; sums in f32): only the order of the sums differs.
//
// The blocking is BLIS's, as in gemm_bf16_avx512.cpp: op(B) packed one KC x NC block at a time into
// NR-column panels, op(A) one MC x KC block at a time into MR-row panels. What the tiles want:
//   B panel: word [p * NR + j] = (B(2p, j), B(2p + 1, j)), the same layout as the vdpbf16ps GEMM
//            (a B tile is 16 consecutive pairs p of 16 columns: rows NR words apart);
//   A panel: for each chunk c of 16 pairs, row i's 16 words are contiguous:
//            word [c * MR * 16 + i * 16 + q] = (A(i, 2p), A(i, 2p + 1)) with p = 16 c + q
//            (an A tile is 16 rows of one chunk: 1 KiB, rows 64 bytes apart).
// The micro-kernel holds a 32 x 32 block of C in four tiles (0-3), loads two A tiles (4, 5) and two
// B tiles (6, 7) per chunk and issues four TDPBF16PS; at the end the tiles go straight to C (a
// whole block, alpha 1) or through a scratch block that applies alpha, beta and the edge masks. K
// is padded with zero pairs to whole chunks, M and N with zero rows and columns, so the padding
// adds exact zeros.
//
// The OS must have granted the process the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM; done
// once by has_amx_bf16() in dispatch.cpp) before the first call. Each call loads the tile
// configuration on its own thread and releases the tiles when it returns.
//
// Also op(B) packed once for products that reuse it (scholar_amx_pack_b and
// scholar_gemm_bf16_amx_packed, behind kernels::pack_bf16_b): the same panels in the order the loop
// nest takes them, so the products are equal bit for bit.
//
// Compiled with AVX-512, AVX512_BF16 and AMX flags as an isolated object (see CMakeLists.txt); only
// the four scholar_* entry points are global.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <new>

#include "kernels/bf16_pack.hpp"

namespace {

constexpr int64_t MR = 32;                // rows of C per micro-block: two tiles of 16
constexpr int64_t NR = 32;                // columns of C per micro-block: two tiles of 16
constexpr int64_t KC = 512;               // depth of a packed block (a multiple of 32)
constexpr int64_t KPMAX = KC / 2;         // pairs per block
constexpr int64_t MC = 128;               // rows of op(A) per packed block (128 KiB)
constexpr int64_t NC = 1024;              // columns of op(B) per packed block (1 MiB, in L2)
constexpr int64_t kChunkWords = MR * 16;  // words of one 16-pair chunk of an A panel

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of each tile
  uint8_t rows[16] = {};
};

using Buffers = PackBuffers<uint32_t, MC * KPMAX, NC * KPMAX>;

// Packs an A panel of MR rows (rows < MR valid, the rest zero) and kc values of k into kp pairs
// (kp a multiple of 16, pairs past kc zero). Element (i, k) is src[i * ld + k] (k contiguous) or,
// when k_strided, src[k * ld + i].
void pack_a(uint32_t* dst, const float* src, int64_t ld, bool k_strided, int64_t rows, int64_t kc,
            int64_t kp) {
  if (!k_strided) {
    for (int64_t c = 0; c < kp / 16; ++c) {
      const int64_t k0 = c * 32, left = kc - k0;
      const __mmask16 m_lo = low_mask(left), m_hi = low_mask(left - 16);
      for (int64_t i = 0; i < MR; ++i) {
        const __m512i v = i < rows && left > 0 ? pairs_along(src + i * ld + k0, m_lo, m_hi)
                                               : _mm512_setzero_si512();
        _mm512_store_si512(dst + c * kChunkWords + i * 16, v);
      }
    }
    return;
  }
  // Rows contiguous: build, for 16 rows at a time, the 16 pair-vectors of a chunk (word i = row i's
  // pair), then transpose them into 16 row-vectors (word q = pair q).
  for (int64_t c = 0; c < kp / 16; ++c) {
    for (int64_t g = 0; g < MR; g += 16) {
      const __mmask16 m = low_mask(rows - g);
      __m512i v[16];
      for (int64_t q = 0; q < 16; ++q) {
        const int64_t k = 2 * (16 * c + q);
        v[q] = pairs_across(k < kc ? src + k * ld + g : nullptr,
                            k + 1 < kc ? src + (k + 1) * ld + g : nullptr, m);
      }
      transpose16(v);
      for (int64_t i = 0; i < 16; ++i)
        _mm512_store_si512(dst + c * kChunkWords + (g + i) * 16, v[i]);
    }
  }
}

// Packs a B panel of NR columns (cols < NR valid) and kc values of k into kp pairs. Element (k, j)
// is src[k * ld + j] (j contiguous) or, when j_strided, src[j * ld + k].
void pack_b(uint32_t* dst, const float* src, int64_t ld, bool j_strided, int64_t cols, int64_t kc,
            int64_t kp) {
  if (j_strided)
    pack_k_contiguous(dst, src, ld, NR, cols, kc);
  else
    pack_r_contiguous(dst, src, ld, NR, cols, kc);
  for (int64_t p = (kc + 1) / 2; p < kp; ++p)  // the padding pairs of the last chunk
    for (int64_t j = 0; j < NR; j += 16)
      _mm512_store_si512(dst + p * NR + j, _mm512_setzero_si512());
}

// C block (m <= MR rows, n <= NR columns) = alpha * A panel . B panel + (first ? beta * C : C).
// TWO_ROWS / TWO_COLS: whether the second row / column of tiles holds anything (m > 16, n > 16).
// When the block fills its tiles exactly and alpha is 1 (a plain product, or an accumulation into C
// with beta 1 or over K blocks), the tiles load and store C directly; otherwise they go through a
// scratch block and a vector pass that applies alpha, beta and the edge masks. (The direct form
// matters: a vector load of a tile's store cannot be forwarded and waits for it, which cost a
// quarter of the time of products with K = 384.)
template <bool TWO_ROWS, bool TWO_COLS>
void micro_kernel(int64_t kp, const uint32_t* a, const uint32_t* b, float* C, int64_t ldc,
                  int64_t m, int64_t n, float alpha, float beta, bool first) {
  const bool direct = alpha == 1.0f && m == (TWO_ROWS ? 32 : 16) && n == (TWO_COLS ? 32 : 16) &&
                      (!first || beta == 0.0f || beta == 1.0f);
  const int64_t stride = ldc * static_cast<int64_t>(sizeof(float));
  if (direct && (!first || beta == 1.0f)) {
    _tile_loadd(0, C, stride);
    if constexpr (TWO_COLS) _tile_loadd(1, C + 16, stride);
    if constexpr (TWO_ROWS) _tile_loadd(2, C + 16 * ldc, stride);
    if constexpr (TWO_ROWS && TWO_COLS) _tile_loadd(3, C + 16 * ldc + 16, stride);
  } else {
    _tile_zero(0);
    if constexpr (TWO_COLS) _tile_zero(1);
    if constexpr (TWO_ROWS) _tile_zero(2);
    if constexpr (TWO_ROWS && TWO_COLS) _tile_zero(3);
  }
  for (int64_t c = 0; c < kp / 16; ++c) {
    const uint32_t* ac = a + c * kChunkWords;
    const uint32_t* bc = b + c * 16 * NR;
    _tile_loadd(4, ac, 64);
    _tile_loadd(6, bc, NR * 4);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (TWO_COLS) {
      _tile_loadd(7, bc + 16, NR * 4);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (TWO_ROWS) {
      _tile_loadd(5, ac + 16 * 16, 64);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (TWO_COLS) _tile_dpbf16ps(3, 5, 7);
    }
  }
  if (direct) {
    _tile_stored(0, C, stride);
    if constexpr (TWO_COLS) _tile_stored(1, C + 16, stride);
    if constexpr (TWO_ROWS) _tile_stored(2, C + 16 * ldc, stride);
    if constexpr (TWO_ROWS && TWO_COLS) _tile_stored(3, C + 16 * ldc + 16, stride);
    return;
  }
  alignas(64) float t[MR * NR];
  _tile_stored(0, t, NR * 4);
  if constexpr (TWO_COLS) _tile_stored(1, t + 16, NR * 4);
  if constexpr (TWO_ROWS) _tile_stored(2, t + 16 * NR, NR * 4);
  if constexpr (TWO_ROWS && TWO_COLS) _tile_stored(3, t + 16 * NR + 16, NR * 4);
  const __mmask16 m0 = low_mask(n), m1 = low_mask(n - 16);
  for (int64_t i = 0; i < m; ++i)
    store_row(C + i * ldc, _mm512_load_ps(t + i * NR), _mm512_load_ps(t + i * NR + 16), m0, m1,
              alpha, beta, first);
}

void run_micro(int64_t kp, const uint32_t* a, const uint32_t* b, float* C, int64_t ldc, int64_t m,
               int64_t n, float alpha, float beta, bool first) {
  if (m > 16 && n > 16)
    micro_kernel<true, true>(kp, a, b, C, ldc, m, n, alpha, beta, first);
  else if (m > 16)
    micro_kernel<true, false>(kp, a, b, C, ldc, m, n, alpha, beta, first);
  else if (n > 16)
    micro_kernel<false, true>(kp, a, b, C, ldc, m, n, alpha, beta, first);
  else
    micro_kernel<false, false>(kp, a, b, C, ldc, m, n, alpha, beta, first);
}

// K in equal blocks of at most KC, each a multiple of 32 but the last.
int64_t k_step(int64_t K) {
  const int64_t kblocks = (K + KC - 1) / KC;
  return ((K + kblocks - 1) / kblocks + 31) / 32 * 32;
}

// Pairs of k a block of kc values takes: whole chunks of 16.
int64_t k_pairs(int64_t kc) {
  return (kc + 31) / 32 * 16;
}

// Packs the op(B) block (jc, pc) of nc columns and kc values of k into dst (its panels in order).
void pack_b_block(uint32_t* dst, bool tb, const float* B, int64_t ldb, int64_t jc, int64_t pc,
                  int64_t nc, int64_t kc) {
  const int64_t kp = k_pairs(kc);
  // op(B)(k, j) is B[k * ldb + j], or B[j * ldb + k] when transposed.
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const float* s = tb ? B + (jc + jr) * ldb + pc : B + pc * ldb + jc + jr;
    pack_b(dst + (jr / NR) * kp * NR, s, ldb, tb, std::min(NR, nc - jr), kc, kp);
  }
}

// The words one block of nc columns and kc values of k takes once packed.
int64_t block_words(int64_t nc, int64_t kc) {
  return (nc + NR - 1) / NR * NR * k_pairs(kc);
}

// The BLIS loop nest; b_block(jc, pc, nc, kc) gives the packed op(B) block.
template <class BBlock>
void amx_gemm(bool ta, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              BBlock&& b_block, float beta, float* C, int64_t ldc) {
  static thread_local Buffers buf;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  const int64_t kstep = k_step(K);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kstep) {
      const int64_t kc = std::min(kstep, K - pc), kp = k_pairs(kc);
      const bool first = pc == 0;
      const uint32_t* bp = b_block(buf.b, jc, pc, nc, kc);
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        // op(A)(i, k) is A[i * lda + k], or A[k * lda + i] when transposed.
        for (int64_t ir = 0; ir < mc; ir += MR) {
          const float* s = ta ? A + pc * lda + ic + ir : A + (ic + ir) * lda + pc;
          pack_a(buf.a + (ir / MR) * kp * MR, s, lda, ta, std::min(MR, mc - ir), kc, kp);
        }
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR)
            run_micro(kp, buf.a + (ir / MR) * kp * MR, bp + (jr / NR) * kp * NR,
                      C + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir),
                      std::min(NR, nc - jr), alpha, beta, first);
      }
    }
  }
  _tile_release();
}

}  // namespace

extern "C" void scholar_gemm_bf16_amx(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                      float alpha, const float* A, int64_t lda, const float* B,
                                      int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  amx_gemm(
      ta, M, N, K, alpha, A, lda,
      [&](uint32_t* scratch, int64_t jc, int64_t pc, int64_t nc, int64_t kc) {
        pack_b_block(scratch, tb, B, ldb, jc, pc, nc, kc);
        return static_cast<const uint32_t*>(scratch);
      },
      beta, C, ldc);
}

// op(B) packed once, block by block in the order the loop nest takes them (scholar_gemm_bf16_amx's
// panels, so the products equal its bit for bit). Words needed for K x N:
extern "C" int64_t scholar_amx_packed_b_words(int64_t N, int64_t K) {
  int64_t words = 0;
  const int64_t kstep = K > 0 ? k_step(K) : 1;
  for (int64_t jc = 0; jc < N; jc += NC)
    for (int64_t pc = 0; pc < K; pc += kstep)
      words += block_words(std::min(NC, N - jc), std::min(kstep, K - pc));
  return words;
}

extern "C" void scholar_amx_pack_b(bool tb, int64_t N, int64_t K, const float* B, int64_t ldb,
                                   uint32_t* out) {
  const int64_t kstep = K > 0 ? k_step(K) : 1;
  for (int64_t jc = 0; jc < N; jc += NC)
    for (int64_t pc = 0; pc < K; pc += kstep) {
      const int64_t nc = std::min(NC, N - jc), kc = std::min(kstep, K - pc);
      pack_b_block(out, tb, B, ldb, jc, pc, nc, kc);
      out += block_words(nc, kc);
    }
}

// scholar_gemm_bf16_amx with op(B) packed by scholar_amx_pack_b.
extern "C" void scholar_gemm_bf16_amx_packed(bool ta, int64_t M, int64_t N, int64_t K, float alpha,
                                             const float* A, int64_t lda, const uint32_t* Bp,
                                             float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  const uint32_t* next = Bp;
  amx_gemm(
      ta, M, N, K, alpha, A, lda,
      [&](uint32_t*, int64_t, int64_t, int64_t nc, int64_t kc) {
        const uint32_t* p = next;
        next += block_words(nc, kc);
        return p;
      },
      beta, C, ldc);
}
