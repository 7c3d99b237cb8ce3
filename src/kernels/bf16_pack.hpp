// Packing helpers shared by the bf16 GEMMs (gemm_bf16_avx512.cpp on vdpbf16ps, gemm_bf16_amx.cpp on
// AMX tiles): f32 operands rounded to bf16 (nearest even) and stored as pairs of consecutive k in
// one 32-bit word, the operand both instruction families take. Included only by translation units
// compiled with AVX-512 and AVX512_BF16 flags (isolated objects: see CMakeLists.txt).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/avx512_gemm_util.hpp"

namespace {

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

}  // namespace
