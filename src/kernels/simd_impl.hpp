// SIMD kernels written once with xsimd and compiled once per instruction set.
//
// A translation unit defines SCHOLAR_KERNEL_NS (a namespace name such as avx512) and
// SCHOLAR_KERNEL_ARCH (an xsimd architecture) and includes this file. Everything here has internal
// linkage or lives in that namespace, so code compiled with AVX-512 flags can never be picked by
// the linker for a caller on another path. Each function mirrors its scalar twin in reference.cpp:
// a vector body over whole batches, then a scalar tail.
#if !defined(SCHOLAR_KERNEL_NS) || !defined(SCHOLAR_KERNEL_ARCH) || \
    !defined(SCHOLAR_KERNEL_AVX512) || !defined(SCHOLAR_KERNEL_ENTRY)
#error \
    "define SCHOLAR_KERNEL_NS, SCHOLAR_KERNEL_ARCH, SCHOLAR_KERNEL_AVX512 and SCHOLAR_KERNEL_ENTRY"
#endif
#if !defined(SCHOLAR_KERNEL_VNNI)
#define SCHOLAR_KERNEL_VNNI 0  // AVX512_VNNI for the quantized products (kernels_avx512vnni.cpp)
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"
#include "scholar/tensor/dtype.hpp"

// The Group math below must be inlined into each kernel's loop for the chains to interleave; GCC's
// inliner gives up on the larger lambdas unless told.
#define SCHOLAR_INLINE inline __attribute__((always_inline))
#define SCHOLAR_LAMBDA_INLINE __attribute__((always_inline))

namespace scholar::kernels::SCHOLAR_KERNEL_NS {
namespace {

using A = SCHOLAR_KERNEL_ARCH;
using B = xsimd::batch<float, A>;
using I = xsimd::batch<int32_t, A>;
using U = xsimd::batch<uint32_t, A>;
constexpr size_t W = B::size;  // floats per register
constexpr bool kAvx512 = SCHOLAR_KERNEL_AVX512;
static_assert(kAvx512 == (W == 16), "SCHOLAR_KERNEL_AVX512 must match the architecture");

SCHOLAR_INLINE B load(const float* p) {
  return B::load_unaligned(p);
}
SCHOLAR_INLINE void store(float* p, B v) {
  v.store_unaligned(p);
}
// The first n (< W) lanes, the rest zero: lets a tail run the same vector arithmetic as the body,
// so an element's result never depends on where it sits in the array.
SCHOLAR_INLINE B load_n(const float* p, size_t n) {
  alignas(64) float t[W] = {};
  std::memcpy(t, p, n * sizeof(float));
  return B::load_aligned(t);
}
SCHOLAR_INLINE void store_n(float* p, B v, size_t n) {
  alignas(64) float t[W];
  v.store_aligned(t);
  std::memcpy(p, t, n * sizeof(float));
}

// Names here avoid xsimd's (exp, reciprocal, ...): with a batch argument, argument-dependent lookup
// would otherwise prefer xsimd's more specialized templates over these.
//
// Transcendental kernels are long chains of dependent operations (about 16 deep for a sigmoid).
// A Group of K independent registers processed in lockstep puts K chains side by side in program
// order, so the CPU's schedulers always hold independent work; with K = 8 this nearly doubles their
// throughput on Zen 4. The math below is written once for both B and Group<K>.
template <int K>
struct Group {
  B v[K];
};
template <int K, class F>
SCHOLAR_INLINE Group<K> map(F&& f) {
  Group<K> r;
  for (int k = 0; k < K; ++k) r.v[k] = f(k);
  return r;
}
template <int K>
inline Group<K> operator+(const Group<K>& x, const Group<K>& y) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return x.v[k] + y.v[k]; });
}
template <int K>
inline Group<K> operator-(const Group<K>& x, const Group<K>& y) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return x.v[k] - y.v[k]; });
}
template <int K>
inline Group<K> operator*(const Group<K>& x, const Group<K>& y) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return x.v[k] * y.v[k]; });
}
template <int K>
inline Group<K> operator/(const Group<K>& x, const Group<K>& y) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return x.v[k] / y.v[k]; });
}
SCHOLAR_INLINE B splat(B, float v) {
  return B(v);
}
template <int K>
SCHOLAR_INLINE Group<K> splat(const Group<K>&, float v) {
  return map<K>([&](int) SCHOLAR_LAMBDA_INLINE { return B(v); });
}

SCHOLAR_INLINE B vfma(B x, B y, B z) {
  return xsimd::fma(x, y, z);
}
template <int K>
SCHOLAR_INLINE Group<K> vfma(const Group<K>& x, const Group<K>& y, const Group<K>& z) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::fma(x.v[k], y.v[k], z.v[k]); });
}
// -(x y) - z
SCHOLAR_INLINE B vfnms(B x, B y, B z) {
  return xsimd::fnms(x, y, z);
}
template <int K>
SCHOLAR_INLINE Group<K> vfnms(const Group<K>& x, const Group<K>& y, const Group<K>& z) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::fnms(x.v[k], y.v[k], z.v[k]); });
}
// -(x y) + z
SCHOLAR_INLINE B vfnma(B x, B y, B z) {
  return xsimd::fnma(x, y, z);
}
template <int K>
SCHOLAR_INLINE Group<K> vfnma(const Group<K>& x, const Group<K>& y, const Group<K>& z) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::fnma(x.v[k], y.v[k], z.v[k]); });
}
SCHOLAR_INLINE B vmin(B x, B y) {
  return xsimd::min(x, y);
}
template <int K>
SCHOLAR_INLINE Group<K> vmin(const Group<K>& x, const Group<K>& y) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::min(x.v[k], y.v[k]); });
}
SCHOLAR_INLINE B vmax(B x, B y) {
  return xsimd::max(x, y);
}
template <int K>
SCHOLAR_INLINE Group<K> vmax(const Group<K>& x, const Group<K>& y) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::max(x.v[k], y.v[k]); });
}

// p * 2^n for integral n (as float), exactly, with IEEE overflow to inf and underflow to 0.
SCHOLAR_INLINE B scale2(B p, B n) {
#if SCHOLAR_KERNEL_AVX512
  return _mm512_scalef_ps(p, n);
#else
  const I ni = xsimd::to_int(n);
  const I n1 = ni >> 1;  // two steps keep each factor a normal float
  const B s1 = xsimd::bitwise_cast<B>((n1 + I(127)) << 23);
  const B s2 = xsimd::bitwise_cast<B>((ni - n1 + I(127)) << 23);
  return p * s1 * s2;
#endif
}
template <int K>
SCHOLAR_INLINE Group<K> scale2(const Group<K>& p, const Group<K>& n) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return scale2(p.v[k], n.v[k]); });
}
SCHOLAR_INLINE B round_even(B x) {
  return xsimd::nearbyint(x);
}
template <int K>
SCHOLAR_INLINE Group<K> round_even(const Group<K>& x) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::nearbyint(x.v[k]); });
}
// 1 / d, correctly rounded. (With eight chains in flight the divider's latency is hidden; it beat
// a reciprocal estimate plus a Newton step in bench_kernels.)
template <class V>
SCHOLAR_INLINE V recip(V d) {
  return splat(d, 1.0f) / d;
}

// 1 / d to about 2^-22 relative: the hardware estimate and one Newton step, for finite d >= 1 (no
// zeros, infinities or subnormals to care about). A little cheaper than recip() where the divider
// is not hidden behind other work (normal_cdf: 4%).
SCHOLAR_INLINE B recip_fast(B d) {
#if SCHOLAR_KERNEL_AVX512
  const B r = _mm512_rcp14_ps(d);
#else
  const B r = _mm256_rcp_ps(d);
#endif
  return vfma(r, vfnma(d, r, B(1.0f)), r);  // r + r (1 - d r)
}
template <int K>
SCHOLAR_INLINE Group<K> recip_fast(const Group<K>& d) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return recip_fast(d.v[k]); });
}

// e^x for x already in [-110, 89]: e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2, and
// e^r = 1 + r + r^2 q(r), q a cubic fitted for minimal relative error (1.0e-7 before rounding,
// under 2e-7 in float arithmetic). 2^n is applied exactly: results below FLT_MIN come out subnormal
// or zero and results above FLT_MAX come out +inf.
template <class V>
SCHOLAR_INLINE V exp_clamped(V x) {
  const V n = round_even(x * splat(x, 1.44269504088896341f));
  V r = vfma(n, splat(x, -0.693359375f), x);  // ln 2 split in a short high part and the rest
  r = vfma(n, splat(x, 2.12194440e-4f), r);
  V p = vfma(splat(x, 0x1.106268p-7f), r, splat(x, 0x1.5729ecp-5f));
  p = vfma(p, r, splat(x, 0x1.5557aep-3f));
  p = vfma(p, r, splat(x, 0x1.fffdfcp-2f));
  p = vfma(p, r, splat(x, 1.0f));
  p = vfma(p, r, splat(x, 1.0f));
  return scale2(p, n);
}

// e^x for any x. The clamps return their NaN operand, so NaN stays NaN; -inf gives 0, +inf gives
// inf.
template <class V>
SCHOLAR_INLINE V exp_any(V x) {
  return exp_clamped(vmax(splat(x, -110.0f), vmin(splat(x, 89.0f), x)));
}

// e^-x for x already in [0, 110], for sigmoids: as exp_clamped(-x), with the negation folded into
// the range reduction r = -x - n ln 2. One rounding of ln 2 (error 1.9e-9) is enough here: n stays
// above -160, so r is off by at most 3e-7 and e^-x by that relative amount in the far tail only.
template <class V>
SCHOLAR_INLINE V exp_neg_clamped(V x) {
  const V n = round_even(x * splat(x, -1.44269504088896341f));
  const V r = vfnms(n, splat(x, 0.693147182464599609375f), x);
  V p = vfma(splat(x, 0x1.106268p-7f), r, splat(x, 0x1.5729ecp-5f));
  p = vfma(p, r, splat(x, 0x1.5557aep-3f));
  p = vfma(p, r, splat(x, 0x1.fffdfcp-2f));
  p = vfma(p, r, splat(x, 1.0f));
  p = vfma(p, r, splat(x, 1.0f));
  return scale2(p, n);
}

SCHOLAR_INLINE B vabs(B x) {
  return xsimd::abs(x);
}
template <int K>
SCHOLAR_INLINE Group<K> vabs(const Group<K>& x) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return xsimd::abs(x.v[k]); });
}
// where(x < 0, a, b), lane by lane (x < 0 meaning a set sign bit, so -0 counts as negative).
SCHOLAR_INLINE B where_negative(B x, B a, B b) {
#if SCHOLAR_KERNEL_AVX512
  return _mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(x)), b, a);
#else
  return _mm256_blendv_ps(b, a, x);
#endif
}
template <int K>
SCHOLAR_INLINE Group<K> where_negative(const Group<K>& x, const Group<K>& a, const Group<K>& b) {
  return map<K>([&](int k)
                    SCHOLAR_LAMBDA_INLINE { return where_negative(x.v[k], a.v[k], b.v[k]); });
}
// where(x < 0, a * b, a): one masked multiply on AVX-512.
SCHOLAR_INLINE B mul_where_negative(B x, B a, B b) {
#if SCHOLAR_KERNEL_AVX512
  return _mm512_mask_mul_ps(a, _mm512_movepi32_mask(_mm512_castps_si512(x)), a, b);
#else
  return _mm256_blendv_ps(a, a * b, x);
#endif
}
template <int K>
SCHOLAR_INLINE Group<K> mul_where_negative(const Group<K>& x, const Group<K>& a,
                                           const Group<K>& b) {
  return map<K>([&](int k)
                    SCHOLAR_LAMBDA_INLINE { return mul_where_negative(x.v[k], a.v[k], b.v[k]); });
}

// sigmoid(x) and 1 - sigmoid(x) from t = e^-|x| (which never overflows): with r = 1 / (1 + t), they
// are (r, t r) for x >= 0 and (t r, r) for x < 0. Both keep full relative accuracy in the tails,
// and underflow to exactly 0 (so silu(-inf) = -inf * 0 = NaN, as in PyTorch). NaN gives (1, 0).
template <class V>
SCHOLAR_INLINE void sigmoid_parts(V x, V& s, V& one_minus_s) {
  const V t = exp_neg_clamped(vmin(vabs(x), splat(x, 110.0f)));
  const V r = recip(splat(x, 1.0f) + t);
  const V tr = t * r;
  s = where_negative(x, tr, r);
  one_minus_s = where_negative(x, r, tr);
}

template <class V>
SCHOLAR_INLINE V sigmoid(V x) {
  const V t = exp_neg_clamped(vmin(vabs(x), splat(x, 110.0f)));
  return mul_where_negative(x, recip(splat(x, 1.0f) + t), t);
}

// Applies f to [0, n) K registers at a time, then one, then a partial one: f(offset, tag, lanes)
// where the tag (Group<4> or B) selects the width and lanes counts a partial register's floats.
// K = 8 on AVX-512 (32 registers), 4 on AVX2 (16): as many chains as fit without spilling.
constexpr int kGroupRegisters = kAvx512 ? 8 : 4;
template <int K = kGroupRegisters, class F>
SCHOLAR_INLINE void for_each_group(size_t n, F&& f) {
  size_t i = 0;
  for (; i + K * W <= n; i += K * W) f(i, Group<K>{}, W);
  for (; i < n; i += W) f(i, B{}, std::min(W, n - i));
}
template <int K>
SCHOLAR_INLINE Group<K> load_v(const float* p, const Group<K>&, size_t) {
  return map<K>([&](int k) SCHOLAR_LAMBDA_INLINE { return load(p + k * W); });
}
SCHOLAR_INLINE B load_v(const float* p, B, size_t r) {
  return r == W ? load(p) : load_n(p, r);
}
template <int K>
SCHOLAR_INLINE void store_v(float* p, const Group<K>& v, size_t) {
  for (int k = 0; k < K; ++k) store(p + k * W, v.v[k]);
}
SCHOLAR_INLINE void store_v(float* p, B v, size_t r) {
  r == W ? store(p, v) : store_n(p, v, r);
}

// --- elementwise ---------------------------------------------------------------------------------

#define SCHOLAR_BINARY_KERNEL(name, expr_v, ref_fn)                 \
  void name(float* out, const float* a, const float* b, size_t n) { \
    size_t i = 0;                                                   \
    for (; i + W <= n; i += W) {                                    \
      const B va = load(a + i), vb = load(b + i);                   \
      store(out + i, expr_v);                                       \
    }                                                               \
    if (i < n) ref_fn(out + i, a + i, b + i, n - i);                \
  }

SCHOLAR_BINARY_KERNEL(add, va + vb, ref::add)
SCHOLAR_BINARY_KERNEL(sub, va - vb, ref::sub)
SCHOLAR_BINARY_KERNEL(mul, va* vb, ref::mul)
SCHOLAR_BINARY_KERNEL(div, va / vb, ref::div)
// NaN in a propagates (select), NaN in b propagates through max's second operand.
SCHOLAR_BINARY_KERNEL(maximum, xsimd::select(xsimd::isnan(va), va, xsimd::max(va, vb)),
                      ref::maximum)
#undef SCHOLAR_BINARY_KERNEL

void add_scalar(float* out, const float* a, float s, size_t n) {
  const B vs(s);
  size_t i = 0;
  for (; i + W <= n; i += W) store(out + i, load(a + i) + vs);
  for (; i < n; ++i) out[i] = a[i] + s;
}

void scale(float* out, const float* a, float s, size_t n) {
  const B vs(s);
  size_t i = 0;
  for (; i + W <= n; i += W) store(out + i, load(a + i) * vs);
  for (; i < n; ++i) out[i] = a[i] * s;
}

void axpy(float* y, float alpha, const float* x, size_t n) {
  const B va(alpha);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    store(y + i, xsimd::fma(va, load(x + i), load(y + i)));
    store(y + i + W, xsimd::fma(va, load(x + i + W), load(y + i + W)));
  }
  for (; i + W <= n; i += W) store(y + i, xsimd::fma(va, load(x + i), load(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

// --- distances to compact stored vectors (vector search) -----------------------------------------
// The stored side is widened to W floats per step; two accumulators (the rows are short, 128 to
// 1024, and the loads, not the FMAs, bound these).

SCHOLAR_INLINE B load_bf16(const uint16_t* p) {
#if SCHOLAR_KERNEL_AVX512
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
#else
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
#endif
}
SCHOLAR_INLINE B load_u8(const uint8_t* p) {
#if SCHOLAR_KERNEL_AVX512
  return _mm512_cvtepi32_ps(
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#endif
}

// Horizontal sum of one register (xsimd's hadd goes through two slow vhaddps on AVX-512).
SCHOLAR_INLINE float hsum(B v) {
#if SCHOLAR_KERNEL_AVX512
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
#else
  const __m256 h = v;
#endif
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// --- reductions: three independent accumulators ------------------------------------------------
// Three beat two, four and eight at every size measured (384 to 4096) on Zen 4, by up to 40%: three
// FMA chains match the rate at which two loads per cycle can feed them.

float dot(const float* a, const float* b, size_t n) {
  B s0(0.f), s1(0.f), s2(0.f);
  size_t i = 0;
  for (; i + 3 * W <= n; i += 3 * W) {
    s0 = xsimd::fma(load(a + i), load(b + i), s0);
    s1 = xsimd::fma(load(a + i + W), load(b + i + W), s1);
    s2 = xsimd::fma(load(a + i + 2 * W), load(b + i + 2 * W), s2);
  }
  for (; i + W <= n; i += W) s0 = xsimd::fma(load(a + i), load(b + i), s0);
  float s = hsum(s0 + s1 + s2);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Attention over a cache: rows of one head (n = head_dim, 64 or 128 typically) at a stride. One
// call per run of cells instead of a dot or axpy call per cell; axpy_rows keeps a strip of y in
// registers across all the rows.
void dot_rows(float* out, const float* A, size_t lda, const float* x, size_t rows, size_t n,
              float scale) {
  for (size_t r = 0; r < rows; ++r) {
    const float* a = A + r * lda;
    B s0(0.f), s1(0.f);
    size_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = xsimd::fma(load(a + i), load(x + i), s0);
      s1 = xsimd::fma(load(a + i + W), load(x + i + W), s1);
    }
    for (; i + W <= n; i += W) s0 = xsimd::fma(load(a + i), load(x + i), s0);
    float s = hsum(s0 + s1);
    for (; i < n; ++i) s += a[i] * x[i];
    out[r] = scale * s;
  }
}

void axpy_rows(float* y, const float* p, const float* A, size_t lda, size_t rows, size_t n) {
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    B y0 = load(y + i), y1 = load(y + i + W), y2 = load(y + i + 2 * W), y3 = load(y + i + 3 * W);
    for (size_t r = 0; r < rows; ++r) {
      const float* a = A + r * lda + i;
      const B pr(p[r]);
      y0 = xsimd::fma(pr, load(a), y0);
      y1 = xsimd::fma(pr, load(a + W), y1);
      y2 = xsimd::fma(pr, load(a + 2 * W), y2);
      y3 = xsimd::fma(pr, load(a + 3 * W), y3);
    }
    store(y + i, y0);
    store(y + i + W, y1);
    store(y + i + 2 * W, y2);
    store(y + i + 3 * W, y3);
  }
  for (; i + W <= n; i += W) {
    B y0 = load(y + i);
    for (size_t r = 0; r < rows; ++r) y0 = xsimd::fma(B(p[r]), load(A + r * lda + i), y0);
    store(y + i, y0);
  }
  for (; i < n; ++i)
    for (size_t r = 0; r < rows; ++r) y[i] += p[r] * A[r * lda + i];
}

float l2_squared(const float* a, const float* b, size_t n) {
  B s0(0.f), s1(0.f), s2(0.f);
  size_t i = 0;
  for (; i + 3 * W <= n; i += 3 * W) {
    const B d0 = load(a + i) - load(b + i);
    const B d1 = load(a + i + W) - load(b + i + W);
    const B d2 = load(a + i + 2 * W) - load(b + i + 2 * W);
    s0 = xsimd::fma(d0, d0, s0);
    s1 = xsimd::fma(d1, d1, s1);
    s2 = xsimd::fma(d2, d2, s2);
  }
  for (; i + W <= n; i += W) {
    const B d = load(a + i) - load(b + i);
    s0 = xsimd::fma(d, d, s0);
  }
  float s = hsum(s0 + s1 + s2);
  for (; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

float dot_bf16(const float* a, const uint16_t* b, size_t n) {
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = xsimd::fma(load(a + i), load_bf16(b + i), s0);
    s1 = xsimd::fma(load(a + i + W), load_bf16(b + i + W), s1);
  }
  for (; i + W <= n; i += W) s0 = xsimd::fma(load(a + i), load_bf16(b + i), s0);
  float s = hsum(s0 + s1);
  for (; i < n; ++i) s += a[i] * static_cast<float>(bf16::from_bits(b[i]));
  return s;
}

float l2_squared_bf16(const float* a, const uint16_t* b, size_t n) {
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const B d0 = load(a + i) - load_bf16(b + i);
    const B d1 = load(a + i + W) - load_bf16(b + i + W);
    s0 = xsimd::fma(d0, d0, s0);
    s1 = xsimd::fma(d1, d1, s1);
  }
  for (; i + W <= n; i += W) {
    const B d = load(a + i) - load_bf16(b + i);
    s0 = xsimd::fma(d, d, s0);
  }
  float s = hsum(s0 + s1);
  for (; i < n; ++i) {
    const float d = a[i] - static_cast<float>(bf16::from_bits(b[i]));
    s += d * d;
  }
  return s;
}

float dot_u8(const float* a, const uint8_t* c, float lo, float step, size_t n) {
  const B vlo(lo), vstep(step);
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    s0 = xsimd::fma(load(a + i), xsimd::fma(vstep, load_u8(c + i), vlo), s0);
    s1 = xsimd::fma(load(a + i + W), xsimd::fma(vstep, load_u8(c + i + W), vlo), s1);
  }
  for (; i + W <= n; i += W)
    s0 = xsimd::fma(load(a + i), xsimd::fma(vstep, load_u8(c + i), vlo), s0);
  float s = hsum(s0 + s1);
  for (; i < n; ++i) s += a[i] * std::fma(step, float(c[i]), lo);
  return s;
}

float l2_squared_u8(const float* a, const uint8_t* c, float lo, float step, size_t n) {
  const B vlo(lo), vstep(step);
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const B d0 = load(a + i) - xsimd::fma(vstep, load_u8(c + i), vlo);
    const B d1 = load(a + i + W) - xsimd::fma(vstep, load_u8(c + i + W), vlo);
    s0 = xsimd::fma(d0, d0, s0);
    s1 = xsimd::fma(d1, d1, s1);
  }
  for (; i + W <= n; i += W) {
    const B d = load(a + i) - xsimd::fma(vstep, load_u8(c + i), vlo);
    s0 = xsimd::fma(d, d, s0);
  }
  float s = hsum(s0 + s1);
  for (; i < n; ++i) {
    const float d = a[i] - std::fma(step, float(c[i]), lo);
    s += d * d;
  }
  return s;
}

float sum(const float* x, size_t n) {
  B s0(0.f), s1(0.f), s2(0.f);
  size_t i = 0;
  for (; i + 3 * W <= n; i += 3 * W) {
    s0 += load(x + i);
    s1 += load(x + i + W);
    s2 += load(x + i + 2 * W);
  }
  for (; i + W <= n; i += W) s0 += load(x + i);
  float s = hsum(s0 + s1 + s2);
  for (; i < n; ++i) s += x[i];
  return s;
}

// Horizontal max of one register.
SCHOLAR_INLINE float hmax(B v) {
  alignas(64) float t[W];
  v.store_aligned(t);
  float m = t[0];
  for (size_t k = 1; k < W; ++k) m = t[k] > m ? t[k] : m;
  return m;
}

// Max without NaN bookkeeping: a NaN may or may not win. Used where NaN reaches the output anyway.
float max_fast(const float* x, size_t n) {
  float m = -std::numeric_limits<float>::infinity();
  size_t i = 0;
  if (n >= W) {
    B m0 = load(x), m1 = m0, m2 = m0, m3 = m0;
    for (; i + 4 * W <= n; i += 4 * W) {
      m0 = xsimd::max(m0, load(x + i));
      m1 = xsimd::max(m1, load(x + i + W));
      m2 = xsimd::max(m2, load(x + i + 2 * W));
      m3 = xsimd::max(m3, load(x + i + 3 * W));
    }
    for (; i + W <= n; i += W) m0 = xsimd::max(m0, load(x + i));
    m = hmax(xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)));
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

float max(const float* x, size_t n) {
  // Hardware max drops NaNs, so a running sum probes for them: it turns NaN if any input is NaN
  // (or infinite, or the sum overflows), and only then does a scalar pass decide.
  if (n < 4 * W) return ref::max(x, n);
  B m0 = load(x), m1 = load(x + W), m2 = load(x + 2 * W), m3 = load(x + 3 * W);
  B probe = (m0 + m1) + (m2 + m3);
  size_t i = 4 * W;
  for (; i + 4 * W <= n; i += 4 * W) {
    const B v0 = load(x + i), v1 = load(x + i + W), v2 = load(x + i + 2 * W),
            v3 = load(x + i + 3 * W);
    m0 = xsimd::max(m0, v0);
    m1 = xsimd::max(m1, v1);
    m2 = xsimd::max(m2, v2);
    m3 = xsimd::max(m3, v3);
    probe = probe + ((v0 + v1) + (v2 + v3));
  }
  for (; i + W <= n; i += W) {
    const B v = load(x + i);
    m0 = xsimd::max(m0, v);
    probe = probe + v;
  }
  float m = hmax(xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)));
  for (; i < n; ++i) {
    if (x[i] != x[i]) return x[i];
    m = x[i] > m ? x[i] : m;
  }
  if (std::isnan(hsum(probe * B(0.0f)))) return ref::max(x, n);
  return m;
}

// --- rows ----------------------------------------------------------------------------------------

// Scalar e^x for tails, identical in formula to the vector exp above (one lane).
SCHOLAR_INLINE float exp1(float x) {
  using S = xsimd::batch<float, A>;
  alignas(64) float t[W];
  exp_any(S(x)).store_aligned(t);
  return t[0];
}

void softmax(float* out, const float* x, size_t n) {
  if (n == 0) return;
  const float mf = max_fast(x, n);
  const B m(mf);
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const Group<2> e = exp_any(Group<2>{{load(x + i) - m, load(x + i + W) - m}});
    store(out + i, e.v[0]);
    store(out + i + W, e.v[1]);
    s0 += e.v[0];
    s1 += e.v[1];
  }
  for (; i + W <= n; i += W) {
    const B e = exp_any(load(x + i) - m);
    store(out + i, e);
    s0 += e;
  }
  float s = hsum(s0 + s1);
  for (; i < n; ++i) {
    out[i] = exp1(x[i] - mf);
    s += out[i];
  }
  scale(out, out, 1.0f / s, n);
}

void log_softmax(float* out, const float* x, size_t n) {
  if (n == 0) return;
  const float mf = max_fast(x, n);
  const B m(mf);
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const Group<2> e = exp_any(Group<2>{{load(x + i) - m, load(x + i + W) - m}});
    s0 += e.v[0];
    s1 += e.v[1];
  }
  for (; i + W <= n; i += W) s0 += exp_any(load(x + i) - m);
  float s = hsum(s0 + s1);
  for (; i < n; ++i) s += exp1(x[i] - mf);
  add_scalar(out, x, -(mf + std::log(s)), n);
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                       const float* bias, size_t C, float eps) {
  const float m = sum(x, C) / static_cast<float>(C);
  // Variance from the centred values (two passes): no cancellation for rows with a large mean.
  const B vm(m);
  B v0(0.f), v1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= C; i += 2 * W) {
    const B d0 = load(x + i) - vm, d1 = load(x + i + W) - vm;
    v0 = xsimd::fma(d0, d0, v0);
    v1 = xsimd::fma(d1, d1, v1);
  }
  for (; i + W <= C; i += W) {
    const B d = load(x + i) - vm;
    v0 = xsimd::fma(d, d, v0);
  }
  float v = hsum(v0 + v1);
  for (; i < C; ++i) v += (x[i] - m) * (x[i] - m);
  const float r = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
  const B vr(r);
  i = 0;
  if (bias) {
    for (; i + W <= C; i += W)
      store(out + i, xsimd::fma((load(x + i) - vm) * vr, load(weight + i), load(bias + i)));
    for (; i < C; ++i) out[i] = (x[i] - m) * r * weight[i] + bias[i];
  } else {
    for (; i + W <= C; i += W) store(out + i, (load(x + i) - vm) * vr * load(weight + i));
    for (; i < C; ++i) out[i] = (x[i] - m) * r * weight[i];
  }
  if (mean) *mean = m;
  if (rstd) *rstd = r;
}

void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x,
                        const float* weight, float mean, float rstd, size_t C) {
  const B vm(mean), vr(rstd);
  B g0(0.f), g1(0.f), gn0(0.f), gn1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= C; i += 2 * W) {
    const B nrm0 = (load(x + i) - vm) * vr, nrm1 = (load(x + i + W) - vm) * vr;
    const B ga = load(weight + i) * load(dout + i), gb = load(weight + i + W) * load(dout + i + W);
    g0 += ga;
    g1 += gb;
    gn0 = xsimd::fma(ga, nrm0, gn0);
    gn1 = xsimd::fma(gb, nrm1, gn1);
  }
  for (; i + W <= C; i += W) {
    const B nrm = (load(x + i) - vm) * vr;
    const B g = load(weight + i) * load(dout + i);
    g0 += g;
    gn0 = xsimd::fma(g, nrm, gn0);
  }
  float g_sum = hsum(g0 + g1), gn_sum = hsum(gn0 + gn1);
  for (; i < C; ++i) {
    const float nrm = (x[i] - mean) * rstd;
    const float g = weight[i] * dout[i];
    g_sum += g;
    gn_sum += g * nrm;
  }
  const float g_mean = g_sum / static_cast<float>(C), gn_mean = gn_sum / static_cast<float>(C);
  const B vg(g_mean), vgn(gn_mean);
  // One loop per combination of outputs: a test inside the loop keeps it from vectorizing well.
  auto pass = [&](auto want_dx, auto want_dw, auto want_db) SCHOLAR_LAMBDA_INLINE {
    size_t j = 0;
    for (; j + W <= C; j += W) {
      const B nrm = (load(x + j) - vm) * vr;
      const B d = load(dout + j);
      if constexpr (want_dx) {
        const B g = load(weight + j) * d;
        store(dx + j, xsimd::fma(vr, g - vg - nrm * vgn, load(dx + j)));
      }
      if constexpr (want_dw) store(dweight + j, xsimd::fma(d, nrm, load(dweight + j)));
      if constexpr (want_db) store(dbias + j, load(dbias + j) + d);
    }
    return j;
  };
  using T = std::true_type;
  using F = std::false_type;
  if (dx && dweight && dbias)
    i = pass(T{}, T{}, T{});
  else if (dx && dweight)
    i = pass(T{}, T{}, F{});
  else if (dx)
    i = pass(T{}, F{}, F{});
  else
    i = 0;  // rare combinations run the scalar loop below
  for (; i < C; ++i) {
    const float nrm = (x[i] - mean) * rstd;
    const float g = weight[i] * dout[i];
    if (dx) dx[i] += rstd * (g - g_mean - nrm * gn_mean);
    if (dweight) dweight[i] += dout[i] * nrm;
    if (dbias) dbias[i] += dout[i];
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, size_t C,
                     float eps) {
  const float ms = dot(x, x, C) / static_cast<float>(C);
  const float r = 1.0f / std::sqrt(ms + eps);
  const B vr(r);
  size_t i = 0;
  for (; i + W <= C; i += W) store(out + i, load(x + i) * vr * load(weight + i));
  for (; i < C; ++i) out[i] = x[i] * r * weight[i];
  if (rstd) *rstd = r;
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                      const float* weight, float rstd, size_t C) {
  B a0(0.f), a1(0.f), a2(0.f), a3(0.f);
  size_t i = 0;
  for (; i + 4 * W <= C; i += 4 * W) {
    a0 = xsimd::fma(load(weight + i) * load(dout + i), load(x + i), a0);
    a1 = xsimd::fma(load(weight + i + W) * load(dout + i + W), load(x + i + W), a1);
    a2 = xsimd::fma(load(weight + i + 2 * W) * load(dout + i + 2 * W), load(x + i + 2 * W), a2);
    a3 = xsimd::fma(load(weight + i + 3 * W) * load(dout + i + 3 * W), load(x + i + 3 * W), a3);
  }
  for (; i + W <= C; i += W) a0 = xsimd::fma(load(weight + i) * load(dout + i), load(x + i), a0);
  float gx = hsum((a0 + a1) + (a2 + a3));
  for (; i < C; ++i) gx += weight[i] * dout[i] * x[i];
  gx /= static_cast<float>(C);
  const float c = rstd * rstd * rstd * gx;
  const B vr(rstd), vc(c);
  // One loop per combination of outputs: a test inside the loop keeps it from vectorizing well.
  auto pass = [&](auto want_dx, auto want_dw) SCHOLAR_LAMBDA_INLINE {
    size_t j = 0;
    for (; j + W <= C; j += W) {
      const B d = load(dout + j), xv = load(x + j);
      if constexpr (want_dx) store(dx + j, load(dx + j) + (vr * load(weight + j) * d - xv * vc));
      if constexpr (want_dw) store(dweight + j, xsimd::fma(xv * vr, d, load(dweight + j)));
    }
    return j;
  };
  using T = std::true_type;
  using F = std::false_type;
  i = dx ? (dweight ? pass(T{}, T{}) : pass(T{}, F{})) : (dweight ? pass(F{}, T{}) : C);
  for (; i < C; ++i) {
    if (dx) dx[i] += rstd * weight[i] * dout[i] - x[i] * c;
    if (dweight) dweight[i] += x[i] * rstd * dout[i];
  }
}

// --- activations ---------------------------------------------------------------------------------

// GELU (tanh form) via 0.5 (1 + tanh(u)) = sigmoid(2u): no tanh, no cancellation near zero.
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

template <class V>
SCHOLAR_INLINE V gelu_two_u(V x) {  // 2u = 2 sqrt(2/pi) (x + 0.044715 x^3)
  return splat(x, 2.0f * kSqrt2OverPi) * x * vfma(splat(x, kGeluCubic), x * x, splat(x, 1.0f));
}

template <class V>
SCHOLAR_INLINE V gelu_grad(V x) {  // d/dx [x s(2u)] = s + 2 x s (1 - s) u'
  V s, t;
  sigmoid_parts(gelu_two_u(x), s, t);
  const V du = splat(x, kSqrt2OverPi) * vfma(splat(x, 3.0f * kGeluCubic), x * x, splat(x, 1.0f));
  return vfma(splat(x, 2.0f) * x * s * t, du, s);
}

template <class V>
SCHOLAR_INLINE V silu_grad(V x) {  // s (1 + x (1 - s))
  V s, t;
  sigmoid_parts(x, s, t);
  return s * vfma(x, t, splat(x, 1.0f));
}

void gelu_forward(float* out, const float* x, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto v = load_v(x + i, tag, r);
    store_v(out + i, v * sigmoid(gelu_two_u(v)), r);
  });
}

void gelu_backward(float* dx, const float* dout, const float* x, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto g = gelu_grad(load_v(x + i, tag, r));
    store_v(dx + i, vfma(load_v(dout + i, tag, r), g, load_v(dx + i, tag, r)), r);
  });
}

// GELU, exact form: Phi(x) = 0.5 erfc(-x / sqrt 2). With z = |x| / sqrt 2 and t = 1 / (1 + z / 2),
// erfc(z) = t e^(-z^2 + P(t)), P a degree-9 polynomial fitted by scripts/fit_erfc.py: P is smooth
// on all of t in [0, 1], so erfc keeps a small relative error in the tail (under 2e-6 for z <= 3,
// 1.5e-5 at z = 10 from the float rounding of z^2; x Phi(x) within 1.6e-7 of exact, relative
// above 1), in three quarters of the time of xsimd's erfc. Then Phi(x) = erfc(z) / 2 for x < 0,
// 1 - erfc(z) / 2 otherwise. The exponent is clamped at -110 (e^-110 is 0 in float), so
// Phi(-inf) = 0 and Phi(inf) = 1; NaN stays NaN in x Phi(x). t comes from a reciprocal estimate and
// a Newton step, 4% faster than the divider.
template <class V>
SCHOLAR_INLINE V normal_cdf(V x) {
  constexpr float c[10] = {
      -1.265447974e+00f, 9.986327887e-01f,  3.866403997e-01f, 3.460279852e-02f,  1.267586369e-03f,
      -8.028043061e-02f, -6.962518692e-01f, 1.156733751e+00f, -6.808272004e-01f, 1.449302137e-01f};
  // (z is capped so that infinities keep t and P finite; erfc(10^4) is 0 all the same.)
  const V z = vmin(vabs(x) * splat(x, 0.70710678118654752f), splat(x, 1e4f));
  const V t = recip_fast(vfma(z, splat(x, 0.5f), splat(x, 1.0f)));  // in (0, 1]
  V p = splat(x, c[9]);
  for (int i = 8; i >= 0; --i) p = vfma(p, t, splat(x, c[i]));
  const V half = splat(x, 0.5f) * t * exp_clamped(vmax(vfnma(z, z, p), splat(x, -110.0f)));
  return where_negative(x, half, splat(x, 1.0f) - half);
}

void gelu_erf_forward(float* out, const float* x, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto v = load_v(x + i, tag, r);
    store_v(out + i, v * normal_cdf(v), r);
  });
}

void gelu_erf_backward(float* dx, const float* dout, const float* x, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto v = load_v(x + i, tag, r);
    // phi(v) = e^(-v^2 / 2) / sqrt(2 pi); the clamp keeps e^-x in its range (it is 0 beyond).
    const auto pdf = splat(v, 0.3989422804014327f) *
                     exp_neg_clamped(vmin(splat(v, 0.5f) * v * v, splat(v, 110.0f)));
    const auto g = vfma(v, pdf, normal_cdf(v));
    store_v(dx + i, vfma(load_v(dout + i, tag, r), g, load_v(dx + i, tag, r)), r);
  });
}

void silu_forward(float* out, const float* x, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto v = load_v(x + i, tag, r);
    store_v(out + i, v * sigmoid(v), r);
  });
}

void silu_backward(float* dx, const float* dout, const float* x, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto g = silu_grad(load_v(x + i, tag, r));
    store_v(dx + i, vfma(load_v(dout + i, tag, r), g, load_v(dx + i, tag, r)), r);
  });
}

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto g = load_v(gate + i, tag, r);
    store_v(out + i, g * sigmoid(g) * load_v(up + i, tag, r), r);
  });
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n) {
  if (!dgate || !dup) return ref::swiglu_backward(dgate, dup, dout, gate, up, n);  // rare
  // With s = sigmoid(g): dup += d g s, dgate += d u s (1 + g (1 - s)) = d u (s + g s (1 - s)).
  for_each_group(n, [&](size_t i, auto tag, size_t r) SCHOLAR_LAMBDA_INLINE {
    const auto g = load_v(gate + i, tag, r), u = load_v(up + i, tag, r),
               d = load_v(dout + i, tag, r);
    decltype(tag) s, t;
    sigmoid_parts(g, s, t);
    const auto gs = g * s;
    store_v(dgate + i, vfma(d * u, vfma(gs, t, s), load_v(dgate + i, tag, r)), r);
    store_v(dup + i, vfma(d, gs, load_v(dup + i, tag, r)), r);
  });
}

// --- rotary embedding ----------------------------------------------------------------------------

// Lane index generators for xsimd::swizzle.
struct SwapPairs {
  static constexpr uint32_t get(size_t i, size_t) { return static_cast<uint32_t>(i ^ 1u); }
};
struct DupLow {  // (0, 0, 1, 1, ..., W/2-1, W/2-1)
  static constexpr uint32_t get(size_t i, size_t) { return static_cast<uint32_t>(i / 2); }
};
struct DupHigh {  // (W/2, W/2, ..., W-1, W-1)
  static constexpr uint32_t get(size_t i, size_t n) { return static_cast<uint32_t>(n / 2 + i / 2); }
};

void rope(float* out, const float* x, const float* cos, const float* sin, size_t n_pairs,
          RopeStyle style, bool inverse) {
  const B sign(inverse ? -1.0f : 1.0f);
  size_t p = 0;
  if (style == RopeStyle::half) {
    const float* xa = x;
    const float* xb = x + n_pairs;
    float* oa = out;
    float* ob = out + n_pairs;
    for (; p + W <= n_pairs; p += W) {
      const B a = load(xa + p), b = load(xb + p);
      const B c = load(cos + p), s = load(sin + p) * sign;
      store(oa + p, xsimd::fms(a, c, b * s));
      store(ob + p, xsimd::fma(a, s, b * c));
    }
    for (; p < n_pairs; ++p) {
      const float a = xa[p], b = xb[p], c = cos[p], s = inverse ? -sin[p] : sin[p];
      oa[p] = a * c - b * s;
      ob[p] = a * s + b * c;
    }
    return;
  }
  // Interleaved pairs: out = x * cos' + swap(x) * sin', where cos' repeats each cos twice and sin'
  // is (-s, +s) per pair. One load of W angles serves two registers of x.
  using UB = xsimd::batch<uint32_t, A>;
  constexpr auto swap_pairs = xsimd::make_batch_constant<UB, SwapPairs>();
  constexpr auto dup_low = xsimd::make_batch_constant<UB, DupLow>();
  constexpr auto dup_high = xsimd::make_batch_constant<UB, DupHigh>();
  alignas(64) float alt[W];
  for (size_t k = 0; k < W; ++k) alt[k] = (k % 2 == 0) ? -1.0f : 1.0f;
  const B sgn = B::load_aligned(alt) * sign;
  for (; p + W <= n_pairs; p += W) {
    const B c = load(cos + p), s = load(sin + p);
    const B x0 = load(x + 2 * p), x1 = load(x + 2 * p + W);
    const B c0 = xsimd::swizzle(c, dup_low), c1 = xsimd::swizzle(c, dup_high);
    const B s0 = xsimd::swizzle(s, dup_low) * sgn, s1 = xsimd::swizzle(s, dup_high) * sgn;
    store(out + 2 * p, xsimd::fma(x0, c0, xsimd::swizzle(x0, swap_pairs) * s0));
    store(out + 2 * p + W, xsimd::fma(x1, c1, xsimd::swizzle(x1, swap_pairs) * s1));
  }
  for (; p < n_pairs; ++p) {
    const float a = x[2 * p], b = x[2 * p + 1], c = cos[p], s = inverse ? -sin[p] : sin[p];
    out[2 * p] = a * c - b * s;
    out[2 * p + 1] = a * s + b * c;
  }
}

// --- optimizers ----------------------------------------------------------------------------------

void adamw(float* param, float* m, float* v, const float* grad, size_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float bc1, float bc2) {
  const B decay(1.0f - lr * weight_decay), b1c(1.0f - beta1), b2(beta2), b2c(1.0f - beta2);
  const B step(lr / bc1), inv_bc2_sqrt(1.0f / std::sqrt(bc2)), veps(eps);
  size_t i = 0;
  for (; i < n; i += W) {
    const size_t r = std::min(W, n - i);
    const B g = load_v(grad + i, B{}, r), mi = load_v(m + i, B{}, r), vi = load_v(v + i, B{}, r);
    const B m2 = xsimd::fma(b1c, g - mi, mi);
    const B v2 = xsimd::fma(b2, vi, b2c * g * g);
    const B p = load_v(param + i, B{}, r) * decay;
    store_v(param + i, p - step * m2 / xsimd::fma(xsimd::sqrt(v2), inv_bc2_sqrt, veps), r);
    store_v(m + i, m2, r);
    store_v(v + i, v2, r);
  }
}

// --- conversions ---------------------------------------------------------------------------------

// Round-to-nearest-even f32 -> bf16 on the bit patterns; NaN becomes a quiet NaN.
SCHOLAR_INLINE U bf16_round(B v) {
  const U u = xsimd::bitwise_cast<U>(v);
  const U rounded = (u + U(0x7fffu) + ((u >> 16) & U(1u))) >> 16;
  const U quiet = (u >> 16) | U(0x40u);
  return xsimd::select((u & U(0x7fffffffu)) > U(0x7f800000u), quiet, rounded);
}

void f32_to_bf16(uint16_t* out, const float* x, size_t n) {
  size_t i = 0;
#if SCHOLAR_KERNEL_AVX512
  for (; i + W <= n; i += W) {
    const __m512i r = bf16_round(load(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(r));
  }
#else
  for (; i + 2 * W <= n; i += 2 * W) {
    const __m256i lo = bf16_round(load(x + i)), hi = bf16_round(load(x + i + W));
    // packus works within 128-bit lanes; the permute puts the quarters back in order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), packed);
  }
#endif
  if (i < n) ref::f32_to_bf16(out + i, x + i, n - i);
}

void bf16_to_f32(float* out, const uint16_t* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
#if SCHOLAR_KERNEL_AVX512
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
#else
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
#endif
  }
  if (i < n) ref::bf16_to_f32(out + i, x + i, n - i);
}

// F16C / AVX-512 conversions round to nearest even and keep subnormals, NaN and infinities.
void f32_to_f16(uint16_t* out, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
#if SCHOLAR_KERNEL_AVX512
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
#else
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
#endif
  }
  if (i < n) ref::f32_to_f16(out + i, x + i, n - i);
}

void f16_to_f32(float* out, const uint16_t* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
#if SCHOLAR_KERNEL_AVX512
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(h));
#else
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
#endif
  }
  if (i < n) ref::f16_to_f32(out + i, x + i, n - i);
}

#include "kernels/simd_quant.hpp"

void quantize_q4_0(BlockQ4_0* out, const float* x, size_t n) {
  ref::quantize_q4_0(out, x, n);  // used when exporting only; the twin is exact
}

#include "kernels/weight_rows.inc"

}  // namespace

// This instruction set's table.
const KernelTable& table() {
  static const KernelTable t{
      .isa = SCHOLAR_KERNEL_VNNI ? Isa::avx512_vnni
             : kAvx512           ? Isa::avx512
                                 : Isa::avx2,
      .add = add,
      .sub = sub,
      .mul = mul,
      .div = div,
      .maximum = maximum,
      .add_scalar = add_scalar,
      .scale = scale,
      .axpy = axpy,
      .dot = dot,
      .l2_squared = l2_squared,
      .sum = sum,
      .dot_bf16 = dot_bf16,
      .l2_squared_bf16 = l2_squared_bf16,
      .dot_u8 = dot_u8,
      .l2_squared_u8 = l2_squared_u8,
      .max = max,
      .dot_rows = dot_rows,
      .axpy_rows = axpy_rows,
      .softmax = softmax,
      .log_softmax = log_softmax,
      .layernorm_forward = layernorm_forward,
      .layernorm_backward = layernorm_backward,
      .rmsnorm_forward = rmsnorm_forward,
      .rmsnorm_backward = rmsnorm_backward,
      .gelu_forward = gelu_forward,
      .gelu_backward = gelu_backward,
      .gelu_erf_forward = gelu_erf_forward,
      .gelu_erf_backward = gelu_erf_backward,
      .silu_forward = silu_forward,
      .silu_backward = silu_backward,
      .swiglu_forward = swiglu_forward,
      .swiglu_backward = swiglu_backward,
      .rope = rope,
      .adamw = adamw,
      .f32_to_bf16 = f32_to_bf16,
      .bf16_to_f32 = bf16_to_f32,
      .f32_to_f16 = f32_to_f16,
      .f16_to_f32 = f16_to_f32,
      .quantize_q8_0 = quantize_q8_0,
      .quantize_q4_0 = quantize_q4_0,
      .dequantize_q8_0 = dequantize_q8_0,
      .dequantize_q4_0 = dequantize_q4_0,
      .gemv_f32 = gemv_f32,
      .gemv_f16 = gemv_f16,
      .gemv_bf16 = gemv_bf16,
      .gemv_q8_0 = gemv_q8_0,
      .gemv_q4_0 = gemv_q4_0,
      .gemm_q8_0 = gemm_q8_0,
      .gemm_q4_0 = gemm_q4_0,
      .gemm_q8_0_x8 = gemm_q8_0_x8,
      .gemm_q4_0_x8 = gemm_q4_0_x8,
      .weights = kWeightRows,
  };
  return t;
}

}  // namespace scholar::kernels::SCHOLAR_KERNEL_NS

// The one symbol this translation unit exports (the build makes every other symbol local).
extern "C" const scholar::kernels::KernelTable* SCHOLAR_KERNEL_ENTRY() {
  return &scholar::kernels::SCHOLAR_KERNEL_NS::table();
}
