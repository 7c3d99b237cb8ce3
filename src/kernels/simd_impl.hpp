// SIMD kernels written once with xsimd and compiled once per instruction set.
//
// A translation unit defines SCHOLAR_KERNEL_NS (a namespace name such as avx512) and
// SCHOLAR_KERNEL_ARCH (an xsimd architecture) and includes this file. Everything here has internal
// linkage or lives in that namespace, so code compiled with AVX-512 flags can never be picked by
// the linker for a caller on another path. Each function mirrors its scalar twin in reference.cpp:
// a vector body over whole batches, then a scalar tail.
#if !defined(SCHOLAR_KERNEL_NS) || !defined(SCHOLAR_KERNEL_ARCH) || !defined(SCHOLAR_KERNEL_AVX512)
#error "define SCHOLAR_KERNEL_NS, SCHOLAR_KERNEL_ARCH and SCHOLAR_KERNEL_AVX512 first"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <xsimd/xsimd.hpp>

#include "scholar/kernels/kernels.hpp"
#include "scholar/kernels/reference.hpp"

namespace scholar::kernels::SCHOLAR_KERNEL_NS {
namespace {

using A = SCHOLAR_KERNEL_ARCH;
using B = xsimd::batch<float, A>;
using I = xsimd::batch<int32_t, A>;
using U = xsimd::batch<uint32_t, A>;
constexpr size_t W = B::size;  // floats per register
constexpr bool kAvx512 = SCHOLAR_KERNEL_AVX512;
static_assert(kAvx512 == (W == 16), "SCHOLAR_KERNEL_AVX512 must match the architecture");

inline B load(const float* p) {
  return B::load_unaligned(p);
}
inline void store(float* p, B v) {
  v.store_unaligned(p);
}
// The first n (< W) lanes, the rest zero: lets a tail run the same vector arithmetic as the body,
// so an element's result never depends on where it sits in the array.
inline B load_n(const float* p, size_t n) {
  alignas(64) float t[W] = {};
  std::memcpy(t, p, n * sizeof(float));
  return B::load_aligned(t);
}
inline void store_n(float* p, B v, size_t n) {
  alignas(64) float t[W];
  v.store_aligned(t);
  std::memcpy(p, t, n * sizeof(float));
}

// exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2; e^r by a degree-6 polynomial
// (Cephes' coefficients; about 1 ulp). 2^n is applied in two halves so that n in [-159, 128] needs
// no special cases: results below FLT_MIN come out subnormal or zero, as they should. NaN stays NaN
// because the clamps keep their NaN operand; x above the overflow threshold gives +inf.
inline B exp(B x) {
  const B overflow(88.72283935546875f);
  const B xc = xsimd::max(B(-110.0f), xsimd::min(overflow, x));
  const B n = xsimd::nearbyint(xc * B(1.44269504088896341f));
  B r = xsimd::fma(n, B(-0.693359375f), xc);  // ln 2 split in a short high part and the rest
  r = xsimd::fma(n, B(2.12194440e-4f), r);
  B p(1.9875691500E-4f);
  p = xsimd::fma(p, r, B(1.3981999507E-3f));
  p = xsimd::fma(p, r, B(8.3334519073E-3f));
  p = xsimd::fma(p, r, B(4.1665795894E-2f));
  p = xsimd::fma(p, r, B(1.6666665459E-1f));
  p = xsimd::fma(p, r, B(5.0000001201E-1f));
  p = xsimd::fma(p, r * r, r + B(1.0f));
  const I ni = xsimd::to_int(n);
  const I n1 = ni >> 1;
  const I n2 = ni - n1;
  const B s1 = xsimd::bitwise_cast<B>((n1 + I(127)) << 23);
  const B s2 = xsimd::bitwise_cast<B>((n2 + I(127)) << 23);
  const B y = p * s1 * s2;
  return xsimd::select(x > overflow, B(std::numeric_limits<float>::infinity()), y);
}

// 1 / (1 + exp(-x)): exact limits 0 and 1 at -inf and +inf.
inline B sigmoid(B x) {
  return B(1.0f) / (B(1.0f) + exp(-x));
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

// --- reductions: four independent accumulators hide the FMA latency ----------------------------

float dot(const float* a, const float* b, size_t n) {
  B s0(0.f), s1(0.f), s2(0.f), s3(0.f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = xsimd::fma(load(a + i), load(b + i), s0);
    s1 = xsimd::fma(load(a + i + W), load(b + i + W), s1);
    s2 = xsimd::fma(load(a + i + 2 * W), load(b + i + 2 * W), s2);
    s3 = xsimd::fma(load(a + i + 3 * W), load(b + i + 3 * W), s3);
  }
  for (; i + W <= n; i += W) s0 = xsimd::fma(load(a + i), load(b + i), s0);
  float s = xsimd::hadd((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float l2_squared(const float* a, const float* b, size_t n) {
  B s0(0.f), s1(0.f), s2(0.f), s3(0.f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const B d0 = load(a + i) - load(b + i);
    const B d1 = load(a + i + W) - load(b + i + W);
    const B d2 = load(a + i + 2 * W) - load(b + i + 2 * W);
    const B d3 = load(a + i + 3 * W) - load(b + i + 3 * W);
    s0 = xsimd::fma(d0, d0, s0);
    s1 = xsimd::fma(d1, d1, s1);
    s2 = xsimd::fma(d2, d2, s2);
    s3 = xsimd::fma(d3, d3, s3);
  }
  for (; i + W <= n; i += W) {
    const B d = load(a + i) - load(b + i);
    s0 = xsimd::fma(d, d, s0);
  }
  float s = xsimd::hadd((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

float sum(const float* x, size_t n) {
  B s0(0.f), s1(0.f), s2(0.f), s3(0.f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 += load(x + i);
    s1 += load(x + i + W);
    s2 += load(x + i + 2 * W);
    s3 += load(x + i + 3 * W);
  }
  for (; i + W <= n; i += W) s0 += load(x + i);
  float s = xsimd::hadd((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += x[i];
  return s;
}

// Horizontal max of one register.
inline float hmax(B v) {
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
  size_t i = 0;
  float m = -std::numeric_limits<float>::infinity();
  if (n >= W) {
    // NaNs are tracked in a float register (1 where a NaN was seen): hardware max would drop them.
    const B one(1.0f), zero(0.0f);
    B m0 = load(x), m1 = m0, seen = zero;
    for (; i + 2 * W <= n; i += 2 * W) {
      const B v0 = load(x + i), v1 = load(x + i + W);
      seen = seen + xsimd::select(xsimd::isnan(v0), one, zero) +
             xsimd::select(xsimd::isnan(v1), one, zero);
      m0 = xsimd::max(m0, v0);
      m1 = xsimd::max(m1, v1);
    }
    for (; i + W <= n; i += W) {
      const B v = load(x + i);
      seen = seen + xsimd::select(xsimd::isnan(v), one, zero);
      m0 = xsimd::max(m0, v);
    }
    if (xsimd::hadd(seen) > 0.0f) return std::numeric_limits<float>::quiet_NaN();
    m = hmax(xsimd::max(m0, m1));
  }
  for (; i < n; ++i) {
    if (x[i] != x[i]) return x[i];
    m = x[i] > m ? x[i] : m;
  }
  return m;
}

// --- rows ----------------------------------------------------------------------------------------

// Scalar e^x for tails, identical in formula to the vector exp above (one lane).
inline float exp1(float x) {
  using S = xsimd::batch<float, A>;
  alignas(64) float t[W];
  exp(S(x)).store_aligned(t);
  return t[0];
}

void softmax(float* out, const float* x, size_t n) {
  if (n == 0) return;
  const float mf = max_fast(x, n);
  const B m(mf);
  B s0(0.f), s1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const B e0 = exp(load(x + i) - m), e1 = exp(load(x + i + W) - m);
    store(out + i, e0);
    store(out + i + W, e1);
    s0 += e0;
    s1 += e1;
  }
  for (; i + W <= n; i += W) {
    const B e = exp(load(x + i) - m);
    store(out + i, e);
    s0 += e;
  }
  float s = xsimd::hadd(s0 + s1);
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
    s0 += exp(load(x + i) - m);
    s1 += exp(load(x + i + W) - m);
  }
  for (; i + W <= n; i += W) s0 += exp(load(x + i) - m);
  float s = xsimd::hadd(s0 + s1);
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
  float v = xsimd::hadd(v0 + v1);
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
  B g0(0.f), gn0(0.f);
  size_t i = 0;
  for (; i + W <= C; i += W) {
    const B nrm = (load(x + i) - vm) * vr;
    const B g = load(weight + i) * load(dout + i);
    g0 += g;
    gn0 = xsimd::fma(g, nrm, gn0);
  }
  float g_sum = xsimd::hadd(g0), gn_sum = xsimd::hadd(gn0);
  for (; i < C; ++i) {
    const float nrm = (x[i] - mean) * rstd;
    const float g = weight[i] * dout[i];
    g_sum += g;
    gn_sum += g * nrm;
  }
  const float g_mean = g_sum / static_cast<float>(C), gn_mean = gn_sum / static_cast<float>(C);
  const B vg(g_mean), vgn(gn_mean);
  i = 0;
  for (; i + W <= C; i += W) {
    const B nrm = (load(x + i) - vm) * vr;
    const B d = load(dout + i);
    if (dx) {
      const B g = load(weight + i) * d;
      store(dx + i, xsimd::fma(vr, g - vg - nrm * vgn, load(dx + i)));
    }
    if (dweight) store(dweight + i, xsimd::fma(d, nrm, load(dweight + i)));
    if (dbias) store(dbias + i, load(dbias + i) + d);
  }
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
  B acc(0.f);
  size_t i = 0;
  for (; i + W <= C; i += W) acc = xsimd::fma(load(weight + i) * load(dout + i), load(x + i), acc);
  float gx = xsimd::hadd(acc);
  for (; i < C; ++i) gx += weight[i] * dout[i] * x[i];
  gx /= static_cast<float>(C);
  const float c = rstd * rstd * rstd * gx;
  const B vr(rstd), vc(c);
  i = 0;
  for (; i + W <= C; i += W) {
    const B d = load(dout + i), xv = load(x + i);
    if (dx) store(dx + i, load(dx + i) + (vr * load(weight + i) * d - xv * vc));
    if (dweight) store(dweight + i, xsimd::fma(xv * vr, d, load(dweight + i)));
  }
  for (; i < C; ++i) {
    if (dx) dx[i] += rstd * weight[i] * dout[i] - x[i] * c;
    if (dweight) dweight[i] += x[i] * rstd * dout[i];
  }
}

// --- activations ---------------------------------------------------------------------------------

// GELU (tanh form) via 0.5 (1 + tanh(u)) = sigmoid(2u): no tanh, no cancellation near zero.
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

inline B gelu_sig(B xv) {
  const B x2 = xv * xv;
  const B two_u = B(2.0f * kSqrt2OverPi) * xv * xsimd::fma(B(kGeluCubic), x2, B(1.0f));
  return sigmoid(two_u);
}

void gelu_forward(float* out, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const B xv = load(x + i);
    store(out + i, xv * gelu_sig(xv));
  }
  if (i < n) {
    const B xv = load_n(x + i, n - i);
    store_n(out + i, xv * gelu_sig(xv), n - i);
  }
}

// sigmoid(z) and 1 - sigmoid(z), both without cancellation: with e = exp(-z), s = 1 / (1 + e) and
// 1 - s = e s. (z is kept above -80 so e stays finite; below that s is 0 to float precision
// anyway.)
inline void sigmoid_parts(B z, B& s, B& one_minus_s) {
  const B e = exp(-xsimd::max(z, B(-80.0f)));
  s = B(1.0f) / (B(1.0f) + e);
  one_minus_s = e * s;
}

inline B gelu_grad(B xv) {
  const B x2 = xv * xv;
  B s, t;
  sigmoid_parts(B(2.0f * kSqrt2OverPi) * xv * xsimd::fma(B(kGeluCubic), x2, B(1.0f)), s, t);
  const B du = B(kSqrt2OverPi) * xsimd::fma(B(3.0f * kGeluCubic), x2, B(1.0f));
  return xsimd::fma(B(2.0f) * xv * s * t, du, s);  // d/dx [x s(2u)] = s + 2 x s (1 - s) u'
}

void gelu_backward(float* dx, const float* dout, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W)
    store(dx + i, xsimd::fma(load(dout + i), gelu_grad(load(x + i)), load(dx + i)));
  if (i < n) {
    const size_t r = n - i;
    store_n(dx + i, xsimd::fma(load_n(dout + i, r), gelu_grad(load_n(x + i, r)), load_n(dx + i, r)),
            r);
  }
}

void silu_forward(float* out, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const B xv = load(x + i);
    store(out + i, xv * sigmoid(xv));
  }
  if (i < n) {
    const B xv = load_n(x + i, n - i);
    store_n(out + i, xv * sigmoid(xv), n - i);
  }
}

inline B silu_grad(B xv) {
  B s, t;
  sigmoid_parts(xv, s, t);
  return s * xsimd::fma(xv, t, B(1.0f));  // s (1 + x (1 - s))
}

void silu_backward(float* dx, const float* dout, const float* x, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W)
    store(dx + i, xsimd::fma(load(dout + i), silu_grad(load(x + i)), load(dx + i)));
  if (i < n) {
    const size_t r = n - i;
    store_n(dx + i, xsimd::fma(load_n(dout + i, r), silu_grad(load_n(x + i, r)), load_n(dx + i, r)),
            r);
  }
}

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const B g = load(gate + i);
    store(out + i, g * sigmoid(g) * load(up + i));
  }
  if (i < n) {
    const size_t r = n - i;
    const B g = load_n(gate + i, r);
    store_n(out + i, g * sigmoid(g) * load_n(up + i, r), r);
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n) {
  auto step = [&](size_t i, size_t r) {
    const bool full = r == W;
    const B g = full ? load(gate + i) : load_n(gate + i, r);
    const B u = full ? load(up + i) : load_n(up + i, r);
    const B d = full ? load(dout + i) : load_n(dout + i, r);
    B s, t;
    sigmoid_parts(g, s, t);
    if (dgate) {
      const B acc = full ? load(dgate + i) : load_n(dgate + i, r);
      const B v = xsimd::fma(d * u, s * xsimd::fma(g, t, B(1.0f)), acc);
      full ? store(dgate + i, v) : store_n(dgate + i, v, r);
    }
    if (dup) {
      const B acc = full ? load(dup + i) : load_n(dup + i, r);
      const B v = xsimd::fma(d, g * s, acc);
      full ? store(dup + i, v) : store_n(dup + i, v, r);
    }
  };
  size_t i = 0;
  for (; i + W <= n; i += W) step(i, W);
  if (i < n) step(i, n - i);
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

// --- conversions ---------------------------------------------------------------------------------

// Round-to-nearest-even f32 -> bf16 on the bit patterns; NaN becomes a quiet NaN.
inline U bf16_round(B v) {
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

}  // namespace

/// This instruction set's table.
const KernelTable& table() {
  static const KernelTable t{
      .isa = kAvx512 ? Isa::avx512 : Isa::avx2,
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
      .max = max,
      .softmax = softmax,
      .log_softmax = log_softmax,
      .layernorm_forward = layernorm_forward,
      .layernorm_backward = layernorm_backward,
      .rmsnorm_forward = rmsnorm_forward,
      .rmsnorm_backward = rmsnorm_backward,
      .gelu_forward = gelu_forward,
      .gelu_backward = gelu_backward,
      .silu_forward = silu_forward,
      .silu_backward = silu_backward,
      .swiglu_forward = swiglu_forward,
      .swiglu_backward = swiglu_backward,
      .rope = rope,
      .f32_to_bf16 = f32_to_bf16,
      .bf16_to_f32 = bf16_to_f32,
      .f32_to_f16 = f32_to_f16,
      .f16_to_f32 = f16_to_f32,
  };
  return t;
}

}  // namespace scholar::kernels::SCHOLAR_KERNEL_NS
