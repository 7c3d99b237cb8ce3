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

namespace {

constexpr int64_t MR = 14;       // rows of C per micro-tile
constexpr int64_t NR = 32;       // columns of C per micro-tile: two vectors of 16 floats
constexpr int64_t KC = 256;      // depth of a packed block (even: pairs never straddle blocks)
constexpr int64_t MC = MR * 12;  // rows of op(A) per packed block (168 x 256 bf16: 84 KiB, L2)
constexpr int64_t NC = 1536;     // columns of op(B) per packed block (256 x 1536 bf16: 768 KiB)
constexpr int64_t KP = KC / 2;   // pairs per block

// Thread-local packing buffers, 64-byte aligned, allocated once per thread.
struct Buffers {
  uint32_t* a = nullptr;
  uint32_t* b = nullptr;
  Buffers() {
    a = static_cast<uint32_t*>(::operator new (sizeof(uint32_t) * MC * KP, std::align_val_t{64}));
    b = static_cast<uint32_t*>(::operator new (sizeof(uint32_t) * NC * KP, std::align_val_t{64}));
  }
  ~Buffers() {
    ::operator delete (a, std::align_val_t{64});
    ::operator delete (b, std::align_val_t{64});
  }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
};

__mmask16 low_mask(int64_t n) {
  return n >= 16
             ? static_cast<__mmask16>(0xFFFF)
             : static_cast<__mmask16>((1u << static_cast<unsigned>(std::max<int64_t>(n, 0))) - 1);
}

// Transposes a 16 x 16 block of 32-bit words held in 16 registers: word j of r[i] moves to word i
// of r[j]. Two rounds of unpacks transpose the 4 x 4 blocks inside each 128-bit lane, then two
// rounds of lane shuffles transpose the 4 x 4 grid of lanes.
void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  __m512i u[16];  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3
  for (int g = 0; g < 4; ++g) {
    u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i s0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
    const __m512i s1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
    const __m512i s2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
    const __m512i s3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(s0, s2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(s0, s2, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(s1, s3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(s1, s3, 0xDD);
  }
}

// Packs R rows of a panel whose k runs contiguously in memory: element (r, k) = src[r * ld + k],
// r < rows (the rest zero), k < kc. dst receives ceil(kc / 2) words for each of the R rows. Sixteen
// rows at a time: each row's 32 values become 16 words (pairs), and a 16 x 16 transpose turns them
// into 16 pair-rows of the panel.
void pack_k_contiguous(uint32_t* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                       int64_t kc) {
  for (int64_t r0 = 0; r0 < R; r0 += 16) {
    const int64_t valid = std::clamp<int64_t>(rows - r0, 0, 16);
    const __mmask16 out_mask = low_mask(R - r0);
    for (int64_t k = 0; k < kc; k += 32) {
      const int64_t left = kc - k;
      const __mmask16 m_lo = low_mask(left), m_hi = low_mask(left - 16);
      __m512i v[16];
      for (int64_t i = 0; i < 16; ++i) {
        if (i < valid) {
          const float* s = src + (r0 + i) * ld + k;
          const __m512 lo = _mm512_maskz_loadu_ps(m_lo, s);
          const __m512 hi = _mm512_maskz_loadu_ps(m_hi, s + 16);
          v[i] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));  // s[0 .. 31] in order
        } else {
          v[i] = _mm512_setzero_si512();
        }
      }
      transpose16(v);
      const int64_t pairs = std::min<int64_t>(16, (left + 1) / 2);
      for (int64_t j = 0; j < pairs; ++j)
        _mm512_mask_storeu_epi32(dst + (k / 2 + j) * R + r0, out_mask, v[j]);
    }
  }
}

// Packs R rows of a panel whose rows run contiguously in memory: element (r, k) = src[k * ld + r],
// r < rows (the rest zero), k < kc.
void pack_r_contiguous(uint32_t* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                       int64_t kc) {
  // Interleaves the 16-bit halves: word j = (first[j], second[j]).
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const int64_t kp = (kc + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const float* s0 = src + 2 * p * ld;
    const float* s1 = 2 * p + 1 < kc ? s0 + ld : nullptr;
    for (int64_t r0 = 0; r0 < R; r0 += 16) {
      const __mmask16 m = low_mask(rows - r0);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, s0 + r0);
      const __m512 x1 = s1 ? _mm512_maskz_loadu_ps(m, s1 + r0) : _mm512_setzero_ps();
      const __m512i pairs = _mm512_permutexvar_epi16(
          interleave, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(x1, x0)));
      _mm512_mask_storeu_epi32(dst + p * R + r0, low_mask(R - r0), pairs);
    }
  }
}

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
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t i = 0; i < m; ++i) {
    float* row = C + i * ldc;
    __m512 y0 = _mm512_mul_ps(va, c0[i]), y1 = _mm512_mul_ps(va, c1[i]);
    if (!first) {
      y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, row));
      y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, row + 16));
    } else if (beta != 0.0f) {
      y0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), y0);
      y1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), y1);
    }
    _mm512_mask_storeu_ps(row, m0, y0);
    _mm512_mask_storeu_ps(row + 16, m1, y1);
  }
}

}  // namespace

extern "C" void scholar_gemm_bf16_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                         float alpha, const float* A, int64_t lda, const float* B,
                                         int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {  // C = beta C (beta = 0 ignores C's contents, as everywhere)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
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
