// Helpers shared by scholar's AVX-512 GEMMs (gemm_f32_avx512.cpp, gemm_bf16_avx512.cpp,
// gemm_bf16_amx.cpp): edge masks, a 16 x 16 transpose of 32-bit words and the write-back of a
// 32-column row of C; with the packing buffers and the K = 0 case of gemm_f32_driver.hpp.
// Included only by translation units compiled with AVX-512 flags (isolated objects: see
// CMakeLists.txt).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <new>

#include "kernels/gemm_f32_driver.hpp"

namespace {

// The lowest min(max(n, 0), 16) lanes.
inline __mmask16 low_mask(int64_t n) {
  return n >= 16
             ? static_cast<__mmask16>(0xFFFF)
             : static_cast<__mmask16>((1u << static_cast<unsigned>(std::max<int64_t>(n, 0))) - 1);
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

// Prefetches the cache line at byte_offset from base into L1. The address is formed in integer
// arithmetic: it may lie past the end of base's array (a prefetch never faults).
inline void prefetch_l1(const void* base, int64_t byte_offset) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(base) +
                                             static_cast<uintptr_t>(byte_offset)),
               _MM_HINT_T0);
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

}  // namespace
