// Packing helpers shared by the bf16 GEMMs (gemm_bf16_avx512.cpp on vdpbf16ps, gemm_bf16_amx.cpp on
// AMX tiles): f32 operands rounded to bf16 (nearest even) and stored as pairs of consecutive k in
// one 32-bit word, the operand both instruction families take. Included only by translation units
// compiled with AVX-512 and AVX512_BF16 flags (isolated objects: see CMakeLists.txt).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace {

inline __mmask16 low_mask(int64_t n) {
  return n >= 16
             ? static_cast<__mmask16>(0xFFFF)
             : static_cast<__mmask16>((1u << static_cast<unsigned>(std::max<int64_t>(n, 0))) - 1);
}

// 32 consecutive values s[0 .. 31] (masked by m_lo and m_hi, the rest zero) rounded to bf16 as 16
// pair-words in order: word j = (s[2j], s[2j + 1]).
inline __m512i pairs_along(const float* s, __mmask16 m_lo, __mmask16 m_hi) {
  return reinterpret_cast<__m512i>(
      _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m_hi, s + 16), _mm512_maskz_loadu_ps(m_lo, s)));
}

// Two rows of 16 values (masked by m; a null row reads as zeros) rounded to bf16 and interleaved:
// word j = (x0[j], x1[j]).
inline __m512i pairs_across(const float* x0, const float* x1, __mmask16 m) {
  const __m512i interleave =
      _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512 a = x0 ? _mm512_maskz_loadu_ps(m, x0) : _mm512_setzero_ps();
  const __m512 b = x1 ? _mm512_maskz_loadu_ps(m, x1) : _mm512_setzero_ps();
  return _mm512_permutexvar_epi16(interleave, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a)));
}

// Transposes a 16 x 16 block of 32-bit words held in 16 registers: word j of r[i] moves to word i
// of r[j]. Two rounds of unpacks transpose the 4 x 4 blocks inside each 128-bit lane, then two
// rounds of lane shuffles transpose the 4 x 4 grid of lanes.
inline void transpose16(__m512i r[16]) {
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
inline void pack_k_contiguous(uint32_t* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                              int64_t kc) {
  for (int64_t r0 = 0; r0 < R; r0 += 16) {
    const int64_t valid = std::clamp<int64_t>(rows - r0, 0, 16);
    const __mmask16 out_mask = low_mask(R - r0);
    for (int64_t k = 0; k < kc; k += 32) {
      const int64_t left = kc - k;
      const __mmask16 m_lo = low_mask(left), m_hi = low_mask(left - 16);
      __m512i v[16];
      for (int64_t i = 0; i < 16; ++i) {
        v[i] =
            i < valid ? pairs_along(src + (r0 + i) * ld + k, m_lo, m_hi) : _mm512_setzero_si512();
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
inline void pack_r_contiguous(uint32_t* dst, const float* src, int64_t ld, int64_t R, int64_t rows,
                              int64_t kc) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t p = 0; p < kp; ++p) {
    const float* s0 = src + 2 * p * ld;
    const float* s1 = 2 * p + 1 < kc ? s0 + ld : nullptr;
    for (int64_t r0 = 0; r0 < R; r0 += 16)
      _mm512_mask_storeu_epi32(dst + p * R + r0, low_mask(R - r0),
                               pairs_across(s0 + r0, s1 ? s1 + r0 : nullptr, low_mask(rows - r0)));
  }
}

// Writes one row of a 32-column block of C: row = alpha * (acc0, acc1) + (first ? beta * row :
// row), columns masked by m0 and m1. beta = 0 ignores the row's contents.
inline void store_row(float* row, __m512 acc0, __m512 acc1, __mmask16 m0, __mmask16 m1, float alpha,
                      float beta, bool first) {
  const __m512 va = _mm512_set1_ps(alpha);
  __m512 y0 = _mm512_mul_ps(va, acc0), y1 = _mm512_mul_ps(va, acc1);
  if (!first) {
    y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, row));
    y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, row + 16));
  } else if (beta != 0.0f) {
    const __m512 vb = _mm512_set1_ps(beta);
    y0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), y0);
    y1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), y1);
  }
  _mm512_mask_storeu_ps(row, m0, y0);
  _mm512_mask_storeu_ps(row + 16, m1, y1);
}

// C = beta C for a product with K = 0 (beta = 0 ignores C's contents, as everywhere).
inline void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

}  // namespace
