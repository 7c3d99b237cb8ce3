// Quantized blocks and weight-matrix products, included by simd_impl.hpp inside its anonymous
// namespace (it uses B, W, load, hsum, ...). Mirrors the scalar twins in reference.cpp.
//
// A Q8_0 or Q4_0 block holds 32 values: one 256-bit register of bytes. The integer dot product of
// two blocks is formed in eight 32-bit lanes, converted to float and scaled by the two blocks'
// scales into a float accumulator, so a row's sum is exact per block and rounded once per block.
// With AVX512_VNNI one vpdpbusd forms the eight lanes; without it, vpmaddubsw + vpmaddwd do.
// Both take unsigned x signed bytes, so signed x signed products use the sign trick: |w| times
// (x with w's sign).

// Sum of a 256-bit float register.
SCHOLAR_INLINE float hsum256(__m256 v) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

SCHOLAR_INLINE float half_to_float(uint16_t h) {
  return _cvtsh_ss(h);
}

// acc + the dot products of 4-byte groups of u (unsigned) and s (signed), in eight int32 lanes.
SCHOLAR_INLINE __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if SCHOLAR_KERNEL_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  // u <= 128 here (|w| or a nibble) and |s| <= 127, so the int16 pair sums cannot saturate.
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

// Eight int32 partial sums of w . x for two blocks of 32 signed bytes.
SCHOLAR_INLINE __m256i dot_s8s8(__m256i w, __m256i x) {
  return dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

SCHOLAR_INLINE __m256i load_qs(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// The 32 codes 0..15 of a Q4_0 block as bytes, in value order.
SCHOLAR_INLINE __m256i unpack_q4(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(raw, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
  return _mm256_set_m128i(hi, lo);
}

// Rounds half away from zero (C's roundf) for |v| < 2^23; NaN lanes give 0.
SCHOLAR_INLINE B round_half_away(B v) {
  const B t = xsimd::trunc(v);
  const B f = v - t;                    // exact, in (-1, 1)
  const B r = t + xsimd::trunc(f + f);  // adds the sign of v when |f| >= 0.5
  return xsimd::select(v == v, r, B(0.0f));
}

void quantize_q8_0(BlockQ8_0* out, const float* x, size_t n) {
  constexpr size_t kRegs = kQuantBlock / W;
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    // max_ps(a, m) returns m when a is NaN: NaN inputs are ignored, as in the reference.
    B m(0.0f);
    for (size_t k = 0; k < kRegs; ++k) {
#if SCHOLAR_KERNEL_AVX512
      m = _mm512_max_ps(xsimd::abs(load(xb + k * W)), m);
#else
      m = _mm256_max_ps(xsimd::abs(load(xb + k * W)), m);
#endif
    }
    alignas(64) float t[W];
    m.store_aligned(t);
    float amax = 0.0f;
    for (size_t k = 0; k < W; ++k) amax = t[k] > amax ? t[k] : amax;
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = f16::from_float(d);
    alignas(64) int32_t q[kQuantBlock];
    for (size_t k = 0; k < kRegs; ++k) {
      const I qi = xsimd::to_int(round_half_away(load(xb + k * W) * B(id)));
      qi.store_aligned(q + k * W);
    }
    for (int j = 0; j < kQuantBlock; ++j) out[b].qs[j] = static_cast<int8_t>(q[j]);
  }
}

void dequantize_q8_0(float* out, const BlockQ8_0* x, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const __m256 d = _mm256_set1_ps(half_to_float(x[b].d));
    for (int k = 0; k < kQuantBlock; k += 8) {
      const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[b].qs + k));
      const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
      _mm256_storeu_ps(out + b * kQuantBlock + k, _mm256_mul_ps(d, v));
    }
  }
}

void dequantize_q4_0(float* out, const BlockQ4_0* x, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const __m256 d = _mm256_set1_ps(half_to_float(x[b].d));
    alignas(32) int8_t q[kQuantBlock];
    _mm256_store_si256(reinterpret_cast<__m256i*>(q),
                       _mm256_sub_epi8(unpack_q4(x[b].qs), _mm256_set1_epi8(8)));
    for (int k = 0; k < kQuantBlock; k += 8) {
      const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + k));
      const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
      _mm256_storeu_ps(out + b * kQuantBlock + k, _mm256_mul_ps(d, v));
    }
  }
}

// --- float weights: four rows at a time share each load of x ------------------------------------

// Loads W floats of a row stored as f16 or bf16.
SCHOLAR_INLINE B load_row(const uint16_t* p, std::false_type /*f16*/) {
#if SCHOLAR_KERNEL_AVX512
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#else
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#endif
}
SCHOLAR_INLINE B load_row(const uint16_t* p, std::true_type /*bf16*/) {
#if SCHOLAR_KERNEL_AVX512
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
#else
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
#endif
}

template <class T, class Load, class Scalar>
SCHOLAR_INLINE void gemv_rows(float* y, const T* Wm, const float* x, size_t rows, size_t n,
                              Load&& load_w, Scalar&& scalar_w) {
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const T* w0 = Wm + r * n;
    const T *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
    B a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    size_t i = 0;
    for (; i + W <= n; i += W) {
      const B xv = load(x + i);
      a0 = xsimd::fma(load_w(w0 + i), xv, a0);
      a1 = xsimd::fma(load_w(w1 + i), xv, a1);
      a2 = xsimd::fma(load_w(w2 + i), xv, a2);
      a3 = xsimd::fma(load_w(w3 + i), xv, a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; i < n; ++i) {
      s0 += scalar_w(w0[i]) * x[i];
      s1 += scalar_w(w1[i]) * x[i];
      s2 += scalar_w(w2[i]) * x[i];
      s3 += scalar_w(w3[i]) * x[i];
    }
    y[r] = s0;
    y[r + 1] = s1;
    y[r + 2] = s2;
    y[r + 3] = s3;
  }
  for (; r < rows; ++r) {
    const T* w = Wm + r * n;
    B a(0.0f);
    size_t i = 0;
    for (; i + W <= n; i += W) a = xsimd::fma(load_w(w + i), load(x + i), a);
    float s = hsum(a);
    for (; i < n; ++i) s += scalar_w(w[i]) * x[i];
    y[r] = s;
  }
}

void gemv_f32(float* y, const float* Wm, const float* x, size_t rows, size_t n) {
  gemv_rows(
      y, Wm, x, rows, n, [](const float* p) SCHOLAR_LAMBDA_INLINE { return load(p); },
      [](float v) { return v; });
}

void gemv_f16(float* y, const uint16_t* Wm, const float* x, size_t rows, size_t n) {
  gemv_rows(
      y, Wm, x, rows, n,
      [](const uint16_t* p) SCHOLAR_LAMBDA_INLINE { return load_row(p, std::false_type{}); },
      [](uint16_t h) { return half_to_float(h); });
}

void gemv_bf16(float* y, const uint16_t* Wm, const float* x, size_t rows, size_t n) {
  gemv_rows(
      y, Wm, x, rows, n,
      [](const uint16_t* p) SCHOLAR_LAMBDA_INLINE { return load_row(p, std::true_type{}); },
      [](uint16_t h) { return static_cast<float>(bf16::from_bits(h)); });
}

// --- quantized weights: four rows at a time share each block of x -------------------------------

// y[r] for rows [0, rows) of Q8_0 weights against one Q8_0 vector.
// Block b of row w against block b of x, scaled, added to acc.
SCHOLAR_INLINE __m256 block_q8(__m256 acc, const BlockQ8_0& w, const BlockQ8_0& x) {
  const __m256 s = _mm256_cvtepi32_ps(dot_s8s8(load_qs(w.qs), load_qs(x.qs)));
  return _mm256_fmadd_ps(s, _mm256_set1_ps(half_to_float(w.d) * half_to_float(x.d)), acc);
}

// One row at a time: streaming rows one after another keeps the hardware prefetcher on one
// sequential stream (interleaving four rows measured up to 3x slower out of cache), with four
// accumulators so that the FMA latency is hidden.
template <class Block, class Step>
SCHOLAR_INLINE void gemv_blocks(float* y, const Block* Wm, const BlockQ8_0* x, size_t rows,
                                size_t n, Step step) {
  const size_t nb = n / kQuantBlock;
  for (size_t r = 0; r < rows; ++r) {
    const Block* w = Wm + r * nb;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t b = 0;
    for (; b + 4 <= nb; b += 4) {
      a0 = step(a0, w[b], x[b]);
      a1 = step(a1, w[b + 1], x[b + 1]);
      a2 = step(a2, w[b + 2], x[b + 2]);
      a3 = step(a3, w[b + 3], x[b + 3]);
    }
    for (; b < nb; ++b) a0 = step(a0, w[b], x[b]);
    y[r] = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  }
}

void gemv_q8_0(float* y, const BlockQ8_0* Wm, const BlockQ8_0* x, size_t rows, size_t n) {
  gemv_blocks(y, Wm, x, rows, n,
              [](__m256 a, const BlockQ8_0& w, const BlockQ8_0& xb)
                  SCHOLAR_LAMBDA_INLINE { return block_q8(a, w, xb); });
}

// Integer dot product of a Q4_0 block's codes (0..15) with x's bytes, minus 8 * sum(x): the dot
// product of the values q - 8. minus8x holds -8 * sum(x) in eight lanes (VNNI) or is unused.
SCHOLAR_INLINE __m256i dot_q4(__m256i codes, __m256i xv, __m256i minus8x) {
#if SCHOLAR_KERNEL_VNNI
  return _mm256_dpbusd_epi32(minus8x, codes, xv);
#else
  (void)minus8x;
  return dot_s8s8(_mm256_sub_epi8(codes, _mm256_set1_epi8(8)), xv);
#endif
}

SCHOLAR_INLINE __m256i minus8_sum(__m256i xv) {
#if SCHOLAR_KERNEL_VNNI
  const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), xv);
  return _mm256_sub_epi32(_mm256_setzero_si256(), s);
#else
  (void)xv;
  return _mm256_setzero_si256();
#endif
}

SCHOLAR_INLINE __m256 block_q4(__m256 acc, const BlockQ4_0& w, const BlockQ8_0& x) {
  const __m256i xv = load_qs(x.qs);
  const __m256 s = _mm256_cvtepi32_ps(dot_q4(unpack_q4(w.qs), xv, minus8_sum(xv)));
  return _mm256_fmadd_ps(s, _mm256_set1_ps(half_to_float(w.d) * half_to_float(x.d)), acc);
}

void gemv_q4_0(float* y, const BlockQ4_0* Wm, const BlockQ8_0* x, size_t rows, size_t n) {
  gemv_blocks(y, Wm, x, rows, n,
              [](__m256 a, const BlockQ4_0& w, const BlockQ8_0& xb)
                  SCHOLAR_LAMBDA_INLINE { return block_q4(a, w, xb); });
}

// Prefill: a band of rows stays in cache while every input passes over it.
constexpr size_t kGemmRowBand = 64;

void gemm_q8_0(float* Y, size_t ldy, const BlockQ8_0* Wm, const BlockQ8_0* X, size_t rows, size_t T,
               size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t r0 = 0; r0 < rows; r0 += kGemmRowBand) {
    const size_t nr = std::min(kGemmRowBand, rows - r0);
    for (size_t t = 0; t < T; ++t) gemv_q8_0(Y + t * ldy + r0, Wm + r0 * nb, X + t * nb, nr, n);
  }
}

void gemm_q4_0(float* Y, size_t ldy, const BlockQ4_0* Wm, const BlockQ8_0* X, size_t rows, size_t T,
               size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t r0 = 0; r0 < rows; r0 += kGemmRowBand) {
    const size_t nr = std::min(kGemmRowBand, rows - r0);
    for (size_t t = 0; t < T; ++t) gemv_q4_0(Y + t * ldy + r0, Wm + r0 * nb, X + t * nb, nr, n);
  }
}
