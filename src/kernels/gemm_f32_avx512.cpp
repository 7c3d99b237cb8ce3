// C = alpha op(A) op(B) + beta C in f32 on AVX-512: scholar's own GEMM, which gemm() runs on CPUs
// with AVX-512 instead of the BLAS chosen at build time (kernels::set_own_f32_gemm). Single
// threaded; kernels::gemm splits large products over the pool.
//
// The structure is BLIS's (Van Zee and van de Geijn, "BLIS: A Framework for Rapidly Instantiating
// BLAS Functionality", 2015), with the roles of the two caches swapped against the bf16 kernel's:
// op(B) is packed one KC x NC block at a time into NR-column micro-panels that stay in L2, op(A)
// one MC x KC block at a time into MR-row micro-panels, and the loop over B's micro-panels runs
// innermost, so one A micro-panel (MR x KC: 21 KiB) stays in L1 while B streams from L2 past it.
// The other order (a B micro-panel of KC x NR = 48 KiB held in L1) does not fit this core's L1
// beside the A stream, and ran whole products 10-20% slower.
//   A panel: [p * MR + i] = op(A)(i, p)
//   B panel: [p * NR + j] = op(B)(p, j)
// The micro-kernel keeps a 14 x 32 tile of C in 28 registers; for each p it loads two B vectors
// and broadcasts each A value against them. Edges are zero-padded in the panels and written through
// masks.
//
// Compiled with AVX-512 flags as an isolated object (see CMakeLists.txt); only the entry point
// scholar_gemm_f32_avx512 is global. Called only on CPUs with AVX-512 F/BW/DQ/VL.
#include <immintrin.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <new>

#include "kernels/avx512_gemm_util.hpp"

namespace {

constexpr int64_t MR = 14;        // rows of C per micro-tile
constexpr int64_t NR = 32;        // columns of C per micro-tile: two vectors of 16 floats
constexpr int64_t KC = 384;       // depth of a packed block
constexpr int64_t MC = MR * 16;   // rows of op(A) per packed block (224 x 384 floats: 336 KiB)
constexpr int64_t kMaxNC = 1536;  // columns of op(B) per packed block, at most (2.25 MiB)
constexpr int64_t kMinNC = 256;   // ... and at least
constexpr int64_t kPrefetch = 8;  // B rows ahead that the micro-kernel prefetches into L1

// Columns of op(B) per packed block: the KC x NC block fills about 55% of this core's L2, leaving
// room for C and the A block's stream (2 MiB L2: 736 columns).
int64_t block_columns() {
  static const int64_t nc = [] {
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l2 <= 0) l2 = 1 << 20;  // unknown (some virtual machines): assume 1 MiB
    const int64_t cols = static_cast<int64_t>(0.55 * static_cast<double>(l2)) /
                         (KC * static_cast<int64_t>(sizeof(float)));
    return std::clamp<int64_t>(cols / NR * NR, kMinNC, kMaxNC);
  }();
  return nc;
}

using Buffers = PackBuffers<float, MC * KC, kMaxNC * KC>;

// Packs one micro-panel of R rows whose k runs contiguously in memory: element (r, k) =
// src[r * ld + k], r < rows (the rest zero), k < kc, into dst[k * R + r]. Sixteen rows at a time,
// through 16 x 16 transposes.
void pack_k_contiguous(float* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
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
// src[k * ld + c], into micro-panels of R columns (the last one zero-padded): dst[(c / R) * kc * R
// + k * R + c % R]. Row by row, so that memory is read in order (a panel at a time would jump a
// whole row, often a page, per k).
void pack_rows(float* dst, const float* src, int64_t ld, int64_t R, int64_t cols, int64_t kc) {
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
void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* C,
                  int64_t ldc, int64_t m, int64_t n, float alpha, float beta, bool first) {
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
  for (int64_t i = 0; i < m; ++i) store_row(C + i * ldc, c0[i], c1[i], m0, m1, alpha, beta, first);
}

}  // namespace

extern "C" void scholar_gemm_f32_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                        float alpha, const float* A, int64_t lda, const float* B,
                                        int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  static thread_local Buffers buf;
  // N in blocks of about block_columns(), as equal as whole panels allow: a thin last block would
  // pack all of op(A) again for a few columns (N = 768 would be 736 + 32).
  const int64_t nblocks = std::max<int64_t>(1, (N + block_columns() / 2) / block_columns());
  const int64_t NC = std::min(kMaxNC, ((N + nblocks - 1) / nblocks + NR - 1) / NR * NR);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    // K in equal blocks of at most KC.
    const int64_t kblocks = (K + KC - 1) / KC;
    const int64_t kstep = (K + kblocks - 1) / kblocks;
    for (int64_t pc = 0; pc < K; pc += kstep) {
      const int64_t kc = std::min(kstep, K - pc);
      const bool first = pc == 0;
      // op(B)(k, j) is B[k * ldb + j], or B[j * ldb + k] when transposed.
      if (tb) {
        for (int64_t jr = 0; jr < nc; jr += NR)
          pack_k_contiguous(buf.b + (jr / NR) * kc * NR, B + (jc + jr) * ldb + pc, ldb, NR,
                            std::min(NR, nc - jr), kc);
      } else {
        pack_rows(buf.b, B + pc * ldb + jc, ldb, NR, nc, kc);
      }
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        // op(A)(i, k) is A[i * lda + k], or A[k * lda + i] when transposed.
        if (ta) {
          pack_rows(buf.a, A + pc * lda + ic, lda, MR, mc, kc);
        } else {
          for (int64_t ir = 0; ir < mc; ir += MR)
            pack_k_contiguous(buf.a + (ir / MR) * kc * MR, A + (ic + ir) * lda + pc, lda, MR,
                              std::min(MR, mc - ir), kc);
        }
        for (int64_t ir = 0; ir < mc; ir += MR)
          for (int64_t jr = 0; jr < nc; jr += NR)
            micro_kernel(kc, buf.a + (ir / MR) * kc * MR, buf.b + (jr / NR) * kc * NR,
                         C + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir),
                         std::min(NR, nc - jr), alpha, beta, first);
      }
    }
  }
}
