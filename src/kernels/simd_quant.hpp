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

// --- float weights: one row at a time, in 256-bit steps -----------------------------------------

// Bytes ahead of the loads that the GEMVs prefetch (rows are contiguous, so near a row's end this
// reaches into the next one). On the Sapphire Rapids host of 2026-12-05 one thread streamed an
// out-of-cache f32 matrix at 12.1 GB/s without it, 14.3 / 14.8 / 15.6 GB/s at 512 / 1,024 / 2,048
// bytes ahead (the hardware prefetchers alone leave one core short of its line-fill capacity).
constexpr size_t kGemvPrefetchBytes = 2048;

void gemv_f32(float* y, const float* Wm, const float* x, size_t rows, size_t n) {
  // One row at a time in 32-byte loads, even in the AVX-512 build: out of cache this streamed at
  // 33 GB/s on the Zen 4 host, against 25 GB/s for four interleaved rows and 18 GB/s for one row in
  // 64-byte loads.
  constexpr size_t ahead = kGemvPrefetchBytes / sizeof(float);
  for (size_t r = 0; r < rows; ++r) {
    const float* w = Wm + r * n;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(w + i + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + i + ahead + 16), _MM_HINT_T0);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) s += w[i] * x[i];
    y[r] = s;
  }
}

// f16/bf16 rows in 256-bit steps, even in the AVX-512 build, for the reason gemv_f32 gives: on the
// Zen 4 host of 2026-12-04, one-thread F16 decoding of the 124M benchmark model ran at 52-54
// tokens/s with 512-bit conversions (16 values from 32 bytes) and 73-74 with 256-bit ones.
template <class Convert, class Scalar>
SCHOLAR_INLINE void gemv_half_rows(float* y, const uint16_t* Wm, const float* x, size_t rows,
                                   size_t n, Convert&& cvt, Scalar&& scalar_w) {
  for (size_t r = 0; r < rows; ++r) {
    const uint16_t* w = Wm + r * n;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    auto at = [&](size_t k) {
      return cvt(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k)));
    };
    for (; i + 32 <= n; i += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(w + i) + kGemvPrefetchBytes, _MM_HINT_T0);
      a0 = _mm256_fmadd_ps(at(i), _mm256_loadu_ps(x + i), a0);
      a1 = _mm256_fmadd_ps(at(i + 8), _mm256_loadu_ps(x + i + 8), a1);
      a2 = _mm256_fmadd_ps(at(i + 16), _mm256_loadu_ps(x + i + 16), a2);
      a3 = _mm256_fmadd_ps(at(i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(at(i), _mm256_loadu_ps(x + i), a0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) s += scalar_w(w[i]) * x[i];
    y[r] = s;
  }
}

void gemv_f16(float* y, const uint16_t* Wm, const float* x, size_t rows, size_t n) {
  gemv_half_rows(
      y, Wm, x, rows, n, [](__m128i h) SCHOLAR_LAMBDA_INLINE { return _mm256_cvtph_ps(h); },
      [](uint16_t h) { return half_to_float(h); });
}

void gemv_bf16(float* y, const uint16_t* Wm, const float* x, size_t rows, size_t n) {
  gemv_half_rows(
      y, Wm, x, rows, n,
      [](__m128i h) SCHOLAR_LAMBDA_INLINE {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      },
      [](uint16_t h) { return static_cast<float>(bf16::from_bits(h)); });
}

// --- quantized weights
// ------------------------------------------------------------------------------
//
// One row at a time: streaming rows one after another keeps the hardware prefetcher on one
// sequential stream (interleaving four rows measured up to 3x slower out of cache). Blocks go in
// groups of four: their eight-lane integer dot products are folded by two horizontal adds into one
// register (the four blocks' low and high halves), converted once, and scaled by one vector of the
// four blocks' d_w * d_x, instead of four scalar scale products and broadcasts.

// What a GEMV needs of x beyond its bytes, computed once per call: the block scales as floats and,
// for Q4_0, the per-group correction -8 * sum(x) in the folded lane layout.
struct PreparedX {
  std::vector<float> dx;
  struct Lanes {
    int32_t v[8];
  };
  std::vector<Lanes> m8;  // one per group of four blocks

  __m256i m8_group(size_t g) const {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m8[g].v));
  }
};

// Folds the lanes of four blocks' products: [b0, b1, b2, b3 (bytes 0-15) | b0..b3 (bytes 16-31)].
SCHOLAR_INLINE __m256i fold4(__m256i d0, __m256i d1, __m256i d2, __m256i d3) {
  return _mm256_hadd_epi32(_mm256_hadd_epi32(d0, d1), _mm256_hadd_epi32(d2, d3));
}

// Lanes of -8 * x for one block (the Q4_0 offset), in the layout of dot_u8s8.
SCHOLAR_INLINE __m256i minus8_lanes(const BlockQ8_0& x) {
  return _mm256_sub_epi32(_mm256_setzero_si256(),
                          dot_u8s8(_mm256_setzero_si256(), _mm256_set1_epi8(8), load_qs(x.qs)));
}

SCHOLAR_INLINE PreparedX& prepare_x(const BlockQ8_0* x, size_t nb, bool q4) {
  thread_local PreparedX p;  // reused: no allocation once grown
  p.dx.resize(nb);
  for (size_t b = 0; b < nb; ++b) p.dx[b] = half_to_float(x[b].d);
  if (q4) {
    p.m8.resize(nb / 4);
    for (size_t g = 0; g < nb / 4; ++g)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.m8[g].v),
                          fold4(minus8_lanes(x[4 * g]), minus8_lanes(x[4 * g + 1]),
                                minus8_lanes(x[4 * g + 2]), minus8_lanes(x[4 * g + 3])));
  }
  return p;
}

// The four blocks' d_w * d_x in both halves of a register.
template <class Block>
SCHOLAR_INLINE __m256 scales4(const Block* w, const float* dx) {
  const __m128i h =
      _mm_setr_epi16(static_cast<short>(w[0].d), static_cast<short>(w[1].d),
                     static_cast<short>(w[2].d), static_cast<short>(w[3].d), 0, 0, 0, 0);
  const __m128 s = _mm_mul_ps(_mm_cvtph_ps(h), _mm_loadu_ps(dx));
  return _mm256_set_m128(s, s);
}

// Integer dot products of one block pair, eight lanes.
SCHOLAR_INLINE __m256i dot_q8(const BlockQ8_0& w, const BlockQ8_0& x) {
  return dot_s8s8(load_qs(w.qs), load_qs(x.qs));
}

// The 32 codes 0..15 of a Q4_0 block, in value order: the 16 bytes in both halves, the high half
// shifted right by 4, then masked. (Cheaper than unpack_q4's two 128-bit halves.)
SCHOLAR_INLINE __m256i codes_q4(const BlockQ4_0& w) {
  const __m256i raw =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.qs)));
  return _mm256_and_si256(_mm256_srlv_epi64(raw, _mm256_setr_epi64x(0, 0, 4, 4)),
                          _mm256_set1_epi8(0x0F));
}

// codes . x without the offset (Q4_0 codes are unsigned, so no sign trick is needed).
SCHOLAR_INLINE __m256i dot_codes(const BlockQ4_0& w, const BlockQ8_0& x) {
  return dot_u8s8(_mm256_setzero_si256(), codes_q4(w), load_qs(x.qs));
}

void gemv_q8_0(float* y, const BlockQ8_0* Wm, const BlockQ8_0* x, size_t rows, size_t n) {
  const size_t nb = n / kQuantBlock, groups = nb / 4;
  const PreparedX& p = prepare_x(x, nb, false);
  for (size_t r = 0; r < rows; ++r) {
    const BlockQ8_0* w = Wm + r * nb;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    size_t g = 0;
    for (; g + 2 <= groups; g += 2) {
      const size_t b = 4 * g;
      // Eight blocks: 272 bytes, five cache lines.
      const char* ahead = reinterpret_cast<const char*>(w + b) + kGemvPrefetchBytes;
      for (int l = 0; l < 5; ++l) _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);
      const __m256i f0 = fold4(dot_q8(w[b], x[b]), dot_q8(w[b + 1], x[b + 1]),
                               dot_q8(w[b + 2], x[b + 2]), dot_q8(w[b + 3], x[b + 3]));
      const __m256i f1 = fold4(dot_q8(w[b + 4], x[b + 4]), dot_q8(w[b + 5], x[b + 5]),
                               dot_q8(w[b + 6], x[b + 6]), dot_q8(w[b + 7], x[b + 7]));
      a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(f0), scales4(w + b, p.dx.data() + b), a0);
      a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(f1), scales4(w + b + 4, p.dx.data() + b + 4), a1);
    }
    for (; g < groups; ++g) {
      const size_t b = 4 * g;
      const __m256i f = fold4(dot_q8(w[b], x[b]), dot_q8(w[b + 1], x[b + 1]),
                              dot_q8(w[b + 2], x[b + 2]), dot_q8(w[b + 3], x[b + 3]));
      a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(f), scales4(w + b, p.dx.data() + b), a0);
    }
    for (size_t b = 4 * groups; b < nb; ++b)
      a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_q8(w[b], x[b])),
                           _mm256_set1_ps(half_to_float(w[b].d) * p.dx[b]), a1);
    y[r] = hsum256(_mm256_add_ps(a0, a1));
  }
}

void gemv_q4_0(float* y, const BlockQ4_0* Wm, const BlockQ8_0* x, size_t rows, size_t n) {
  const size_t nb = n / kQuantBlock, groups = nb / 4;
  const PreparedX& p = prepare_x(x, nb, true);
  for (size_t r = 0; r < rows; ++r) {
    const BlockQ4_0* w = Wm + r * nb;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    size_t g = 0;
    for (; g + 2 <= groups; g += 2) {
      const size_t b = 4 * g;
      // Eight blocks: 144 bytes, three cache lines.
      const char* ahead = reinterpret_cast<const char*>(w + b) + kGemvPrefetchBytes;
      for (int l = 0; l < 3; ++l) _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);
      const __m256i f0 =
          _mm256_add_epi32(fold4(dot_codes(w[b], x[b]), dot_codes(w[b + 1], x[b + 1]),
                                 dot_codes(w[b + 2], x[b + 2]), dot_codes(w[b + 3], x[b + 3])),
                           p.m8_group(g));
      const __m256i f1 =
          _mm256_add_epi32(fold4(dot_codes(w[b + 4], x[b + 4]), dot_codes(w[b + 5], x[b + 5]),
                                 dot_codes(w[b + 6], x[b + 6]), dot_codes(w[b + 7], x[b + 7])),
                           p.m8_group(g + 1));
      a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(f0), scales4(w + b, p.dx.data() + b), a0);
      a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(f1), scales4(w + b + 4, p.dx.data() + b + 4), a1);
    }
    for (; g < groups; ++g) {
      const size_t b = 4 * g;
      const __m256i f =
          _mm256_add_epi32(fold4(dot_codes(w[b], x[b]), dot_codes(w[b + 1], x[b + 1]),
                                 dot_codes(w[b + 2], x[b + 2]), dot_codes(w[b + 3], x[b + 3])),
                           p.m8_group(g));
      a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(f), scales4(w + b, p.dx.data() + b), a0);
    }
    for (size_t b = 4 * groups; b < nb; ++b) {
      const __m256i d = _mm256_add_epi32(dot_codes(w[b], x[b]), minus8_lanes(x[b]));
      a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(half_to_float(w[b].d) * p.dx[b]),
                           a1);
    }
    y[r] = hsum256(_mm256_add_ps(a0, a1));
  }
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

// --- interleaved weights (repack_x8): eight rows in the eight lanes
// ---------------------------------
//
// A 32-byte load of an interleaved block holds four consecutive values of each of eight rows; one
// u8 x s8 dot-product instruction against x's matching four bytes broadcast to all lanes adds each
// row's four products into its own lane. Up to four tokens share every weight load. Per block,
// each token's eight integer sums are converted once and scaled by the eight rows' d_w times d_x.

// x's four bytes at `off`, in every lane.
SCHOLAR_INLINE __m256i bcast4(const BlockQ8_0& x, size_t off) {
  int32_t v;
  std::memcpy(&v, x.qs + off, 4);
  return _mm256_set1_epi32(v);
}

// What the tile needs of each token's block: its scale as float and sum of its values.
struct TokenBlocks {
  std::vector<float> dx;
  std::vector<int32_t> sum;  // sum of the 32 values (for Q4_0's offset of 8)
};

SCHOLAR_INLINE TokenBlocks& prepare_tokens(const BlockQ8_0* X, size_t T, size_t nb, bool sums) {
  thread_local TokenBlocks p;
  p.dx.resize(T * nb);
  for (size_t i = 0; i < T * nb; ++i) p.dx[i] = half_to_float(X[i].d);
  if (sums) {
    p.sum.resize(T * nb);
    for (size_t i = 0; i < T * nb; ++i) {
      // sum(x) = sum(x + 128 as unsigned bytes) - 32 * 128, by sums of absolute differences.
      const __m256i u =
          _mm256_xor_si256(load_qs(X[i].qs), _mm256_set1_epi8(static_cast<char>(0x80)));
      const __m256i s4 = _mm256_sad_epu8(u, _mm256_setzero_si256());
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
      p.sum[i] = static_cast<int32_t>(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - 32 * 128;
    }
  }
  return p;
}

template <int NT, bool Q4, class WBlock>
SCHOLAR_INLINE void tile_x8(float* Y, size_t ldy, const WBlock* W, const BlockQ8_0* X,
                            const TokenBlocks& tb, size_t t0, size_t nb) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const WBlock& w = W[b];
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    if constexpr (Q4) {
      for (size_t c = 0; c < 4; ++c) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * c));
        const __m256i lo = _mm256_and_si256(raw, _mm256_set1_epi8(0x0F));
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0F));
        for (int t = 0; t < NT; ++t) {
          const BlockQ8_0& x = X[(t0 + t) * nb + b];
          isum[t] = dot_u8s8(isum[t], lo, bcast4(x, 4 * c));
          isum[t] = dot_u8s8(isum[t], hi, bcast4(x, 16 + 4 * c));
        }
      }
    } else {
      for (size_t c = 0; c < 8; ++c) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * c));
        const __m256i aw = _mm256_sign_epi8(wv, wv);
        for (int t = 0; t < NT; ++t)
          isum[t] =
              dot_u8s8(isum[t], aw, _mm256_sign_epi8(bcast4(X[(t0 + t) * nb + b], 4 * c), wv));
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.d)));
    for (int t = 0; t < NT; ++t) {
      const size_t i = (t0 + t) * nb + b;
      __m256i s = isum[t];
      if constexpr (Q4) s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * tb.sum[i]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(tb.dx[i])),
                               acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(Y + (t0 + t) * ldy, acc[t]);
}

template <bool Q4, class WBlock>
SCHOLAR_INLINE void gemm_x8(float* Y, size_t ldy, const WBlock* W, const BlockQ8_0* X, size_t rows,
                            size_t T, size_t n) {
  const size_t nb = n / kQuantBlock;
  const TokenBlocks& tb = prepare_tokens(X, T, nb, Q4);
  // Bands of 8-row groups small enough to stay in L2 while the tokens pass over them.
  const size_t band = std::max<size_t>(1, (size_t{256} << 10) / (nb * sizeof(WBlock)));
  for (size_t g0 = 0; g0 < rows / 8; g0 += band) {
    const size_t g1 = std::min(rows / 8, g0 + band);
    size_t t = 0;
#if SCHOLAR_KERNEL_AVX512
    // 32 vector registers: eight tokens share each weight load.
    for (; t + 8 <= T; t += 8)
      for (size_t g = g0; g < g1; ++g) tile_x8<8, Q4>(Y + 8 * g, ldy, W + g * nb, X, tb, t, nb);
#endif
    for (; t + 4 <= T; t += 4)
      for (size_t g = g0; g < g1; ++g) tile_x8<4, Q4>(Y + 8 * g, ldy, W + g * nb, X, tb, t, nb);
    for (; t < T; ++t)
      for (size_t g = g0; g < g1; ++g) tile_x8<1, Q4>(Y + 8 * g, ldy, W + g * nb, X, tb, t, nb);
  }
}

void gemm_q8_0_x8(float* Y, size_t ldy, const BlockQ8_0x8* W, const BlockQ8_0* X, size_t rows,
                  size_t T, size_t n) {
  gemm_x8<false>(Y, ldy, W, X, rows, T, n);
}

void gemm_q4_0_x8(float* Y, size_t ldy, const BlockQ4_0x8* W, const BlockQ8_0* X, size_t rows,
                  size_t T, size_t n) {
  gemm_x8<true>(Y, ldy, W, X, rows, T, n);
}
