// C = alpha op(A) op(B) + beta C with the products in bf16 and the sums in f32, on AVX512_BF16's
// vdpbf16ps (two bf16 multiply-adds per f32 lane per instruction: twice the f32 FMA rate). Single
// threaded; kernels::gemm_bf16 splits large products over the pool.
//
// The structure is BLIS's (Van Zee and van de Geijn, "BLIS: A Framework for Rapidly Instantiating
// BLAS Functionality", 2015): op(B) is packed one KC x NC block at a time into NR-column
// micro-panels and op(A) one MC x KC block at a time into MR-row micro-panels; both are rounded to
// bf16 (nearest even) as they are packed, so the four transposition cases differ only in how they
// pack. A packed panel stores a pair of consecutive k as one 32-bit word, the operand vdpbf16ps
// takes:
//   A panel: word [p * MR + i] = (A(i, 2p), A(i, 2p + 1))
//   B panel: word [p * NR + j] = (B(2p, j), B(2p + 1, j))
// The micro-kernel keeps an MR x NR tile of C in 28 registers; for each pair p it loads two B
// vectors and broadcasts each A word against them. Edges are zero-padded in the panels (so an odd
// K, or a ragged M or N, adds exact zeros) and written through masks.
//
// Compiled with AVX-512 and AVX512_BF16 flags as an isolated object (see CMakeLists.txt); only the
// entry point scholar_gemm_bf16_avx512 is global. Called only on CPUs with AVX512_BF16.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "kernels/bf16_pack.hpp"

namespace {

constexpr int64_t MR = 14;       // rows of C per micro-tile
constexpr int64_t NR = 32;       // columns of C per micro-tile: two vectors of 16 floats
constexpr int64_t KC = 256;      // depth of a packed block (even: pairs never straddle blocks)
constexpr int64_t MC = MR * 12;  // rows of op(A) per packed block (168 x 256 bf16: 84 KiB, L2)
constexpr int64_t NC = 1536;     // columns of op(B) per packed block (256 x 1536 bf16: 768 KiB)
constexpr int64_t KP = KC / 2;   // pairs per block

using Buffers = PackBuffers<uint32_t, MC * KP, NC * KP>;

// C tile (m <= MR rows, n <= NR columns) = alpha * Apanel . Bpanel + (first ? beta * C : C).
void micro_kernel(int64_t kp, const uint32_t* __restrict a, const uint32_t* __restrict b, float* C,
                  int64_t ldc, int64_t m, int64_t n, float alpha, float beta, bool first) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const auto b0 = reinterpret_cast<__m512bh>(_mm512_load_si512(b + p * NR));
    const auto b1 = reinterpret_cast<__m512bh>(_mm512_load_si512(b + p * NR + 16));
    const uint32_t* ap = a + p * MR;
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const auto ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(ap[i])));
      c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
    }
  }
  const __mmask16 m0 = low_mask(n), m1 = low_mask(n - 16);
  for (int64_t i = 0; i < m; ++i) store_row(C + i * ldc, c0[i], c1[i], m0, m1, alpha, beta, first);
}

}  // namespace

extern "C" void scholar_gemm_bf16_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                         float alpha, const float* A, int64_t lda, const float* B,
                                         int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) return scale_c(M, N, beta, C, ldc);
  static thread_local Buffers buf;
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    // K in equal blocks of at most KC (even lengths, so pairs never straddle blocks).
    const int64_t kblocks = (K + KC - 1) / KC;
    const int64_t kstep = ((K + kblocks - 1) / kblocks + 1) / 2 * 2;
    for (int64_t pc = 0; pc < K; pc += kstep) {
      const int64_t kc = std::min(kstep, K - pc), kp = (kc + 1) / 2;
      const bool first = pc == 0;
      // op(B)(k, j) is B[k * ldb + j], or B[j * ldb + k] when transposed.
      for (int64_t jr = 0; jr < nc; jr += NR) {
        uint32_t* d = buf.b + (jr / NR) * kp * NR;
        const int64_t nr = std::min(NR, nc - jr);
        if (tb)
          pack_k_contiguous(d, B + (jc + jr) * ldb + pc, ldb, NR, nr, kc);
        else
          pack_r_contiguous(d, B + pc * ldb + jc + jr, ldb, NR, nr, kc);
      }
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        // op(A)(i, k) is A[i * lda + k], or A[k * lda + i] when transposed.
        for (int64_t ir = 0; ir < mc; ir += MR) {
          uint32_t* d = buf.a + (ir / MR) * kp * MR;
          const int64_t mr = std::min(MR, mc - ir);
          if (ta)
            pack_r_contiguous(d, A + pc * lda + ic + ir, lda, MR, mr, kc);
          else
            pack_k_contiguous(d, A + (ic + ir) * lda + pc, lda, MR, mr, kc);
        }
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR)
            micro_kernel(kp, buf.a + (ir / MR) * kp * MR, buf.b + (jr / NR) * kp * NR,
                         C + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir),
                         std::min(NR, nc - jr), alpha, beta, first);
      }
    }
  }
}
