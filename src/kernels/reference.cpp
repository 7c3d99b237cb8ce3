// Scalar reference twins of the SIMD kernels: clear loops, double-precision arithmetic where it
// matters, rounded to float once. See scholar/kernels/reference.hpp.
#include "scholar/kernels/reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "scholar/tensor/dtype.hpp"

namespace scholar::kernels::ref {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
}  // namespace

void add(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
void sub(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}
void mul(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
void div(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] / b[i];
}
void maximum(float* out, const float* a, const float* b, size_t n) {
  // NaN propagates, as in torch.maximum.
  for (size_t i = 0; i < n; ++i) out[i] = (a[i] != a[i] || a[i] > b[i]) ? a[i] : b[i];
}
void add_scalar(float* out, const float* a, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + s;
}
void scale(float* out, const float* a, float s, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] * s;
}
void axpy(float* y, float alpha, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

float dot(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double{a[i]} * double{b[i]};
  return static_cast<float>(s);
}
void dot_rows(float* out, const float* A, size_t lda, const float* x, size_t rows, size_t n,
              float scale) {
  for (size_t r = 0; r < rows; ++r) out[r] = scale * dot(A + r * lda, x, n);
}
void axpy_rows(float* y, const float* p, const float* A, size_t lda, size_t rows, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double s = y[i];
    for (size_t r = 0; r < rows; ++r) s += double{p[r]} * double{A[r * lda + i]};
    y[i] = static_cast<float>(s);
  }
}
float l2_squared(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double{a[i]} - double{b[i]};
    s += d * d;
  }
  return static_cast<float>(s);
}
float dot_bf16(const float* a, const uint16_t* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i)
    s += double{a[i]} * double{static_cast<float>(bf16::from_bits(b[i]))};
  return static_cast<float>(s);
}
float l2_squared_bf16(const float* a, const uint16_t* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double{a[i]} - double{static_cast<float>(bf16::from_bits(b[i]))};
    s += d * d;
  }
  return static_cast<float>(s);
}
// The dequantized value lo + step * c is rounded to float first, as the SIMD paths compute it
// (one fma), so both measure the distance to the same stored vector.
float dot_u8(const float* a, const uint8_t* c, float lo, float step, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double{a[i]} * double{std::fma(step, float(c[i]), lo)};
  return static_cast<float>(s);
}
float l2_squared_u8(const float* a, const uint8_t* c, float lo, float step, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double{a[i]} - double{std::fma(step, float(c[i]), lo)};
    s += d * d;
  }
  return static_cast<float>(s);
}
float sum(const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += x[i];
  return static_cast<float>(s);
}
float max(const float* x, size_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != x[i]) return x[i];
    if (x[i] > m) m = x[i];
  }
  return m;
}

void softmax(float* out, const float* x, size_t n) {
  if (n == 0) return;
  const double m = max(x, n);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(double{x[i]} - m);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(std::exp(double{x[i]} - m) / s);
}
void log_softmax(float* out, const float* x, size_t n) {
  if (n == 0) return;
  const double m = max(x, n);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(double{x[i]} - m);
  const double lse = m + std::log(s);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(double{x[i]} - lse);
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                       const float* bias, size_t C, float eps) {
  double m = 0;
  for (size_t i = 0; i < C; ++i) m += x[i];
  m /= static_cast<double>(C);
  double v = 0;
  for (size_t i = 0; i < C; ++i) v += (x[i] - m) * (x[i] - m);
  v /= static_cast<double>(C);
  const double r = 1.0 / std::sqrt(v + eps);
  for (size_t i = 0; i < C; ++i) {
    const double y = (x[i] - m) * r * weight[i] + (bias ? bias[i] : 0.0);
    out[i] = static_cast<float>(y);
  }
  if (mean) *mean = static_cast<float>(m);
  if (rstd) *rstd = static_cast<float>(r);
}

void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x,
                        const float* weight, float mean, float rstd, size_t C) {
  // With n = (x - mean) * rstd and g = weight * dout:
  // dx = rstd * (g - mean(g) - n * mean(g * n)), dweight = dout * n, dbias = dout.
  double g_mean = 0, gn_mean = 0;
  for (size_t i = 0; i < C; ++i) {
    const double n = (double{x[i]} - mean) * rstd;
    const double g = double{weight[i]} * dout[i];
    g_mean += g;
    gn_mean += g * n;
  }
  g_mean /= static_cast<double>(C);
  gn_mean /= static_cast<double>(C);
  for (size_t i = 0; i < C; ++i) {
    const double n = (double{x[i]} - mean) * rstd;
    const double g = double{weight[i]} * dout[i];
    if (dx) dx[i] += static_cast<float>(rstd * (g - g_mean - n * gn_mean));
    if (dweight) dweight[i] += static_cast<float>(dout[i] * n);
    if (dbias) dbias[i] += dout[i];
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, size_t C,
                     float eps) {
  double ms = 0;
  for (size_t i = 0; i < C; ++i) ms += double{x[i]} * x[i];
  ms /= static_cast<double>(C);
  const double r = 1.0 / std::sqrt(ms + eps);
  for (size_t i = 0; i < C; ++i) out[i] = static_cast<float>(x[i] * r * weight[i]);
  if (rstd) *rstd = static_cast<float>(r);
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                      const float* weight, float rstd, size_t C) {
  // y = x * r * w with r = (mean(x^2) + eps)^-1/2, so dy/dx_j = r w_j - x_j r^3 mean(w dout x).
  double gx = 0;
  for (size_t i = 0; i < C; ++i) gx += double{weight[i]} * dout[i] * x[i];
  gx /= static_cast<double>(C);
  const double r = rstd;
  for (size_t i = 0; i < C; ++i) {
    if (dx) dx[i] += static_cast<float>(r * weight[i] * dout[i] - x[i] * r * r * r * gx);
    if (dweight) dweight[i] += static_cast<float>(double{x[i]} * r * dout[i]);
  }
}

void gelu_forward(float* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    out[i] = static_cast<float>(0.5 * v *
                                (1.0 + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v))));
  }
}
void gelu_backward(float* dx, const float* dout, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
    const double du = kSqrt2OverPi * (1.0 + 3.0 * kGeluCubic * v * v);
    dx[i] += static_cast<float>(dout[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du));
  }
}
// The normal CDF through erfc, which keeps its relative accuracy in the far negative tail (1 +
// erf(x) would cancel to 0 there).
void gelu_erf_forward(float* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    out[i] = static_cast<float>(0.5 * v * std::erfc(-v * 0.70710678118654752440));
  }
}
void gelu_erf_backward(float* dx, const float* dout, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double cdf = 0.5 * std::erfc(-v * 0.70710678118654752440);
    const double pdf = 0.39894228040143267794 * std::exp(-0.5 * v * v);
    dx[i] += static_cast<float>(dout[i] * (cdf + v * pdf));
  }
}
void silu_forward(float* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * sigmoid(x[i]));
}
void silu_backward(float* dx, const float* dout, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double s = sigmoid(x[i]);
    dx[i] += static_cast<float>(dout[i] * s * (1.0 + x[i] * (1.0 - s)));
  }
}
void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(gate[i] * sigmoid(gate[i]) * up[i]);
}
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double s = sigmoid(gate[i]);
    if (dgate)
      dgate[i] += static_cast<float>(double{dout[i]} * up[i] * s * (1.0 + gate[i] * (1.0 - s)));
    if (dup) dup[i] += static_cast<float>(double{dout[i]} * gate[i] * s);
  }
}

void rope(float* out, const float* x, const float* cos, const float* sin, size_t n_pairs,
          RopeStyle style, bool inverse) {
  for (size_t p = 0; p < n_pairs; ++p) {
    const size_t ia = style == RopeStyle::half ? p : 2 * p;
    const size_t ib = style == RopeStyle::half ? p + n_pairs : 2 * p + 1;
    const double a = x[ia], b = x[ib];
    const double c = cos[p], s = inverse ? -double{sin[p]} : double{sin[p]};
    out[ia] = static_cast<float>(a * c - b * s);
    out[ib] = static_cast<float>(a * s + b * c);
  }
}

void adamw(float* param, float* m, float* v, const float* grad, size_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float bc1, float bc2) {
  const double step = double{lr} / bc1, bc2_sqrt = std::sqrt(double{bc2});
  for (size_t i = 0; i < n; ++i) {
    double p = param[i] * (1.0 - double{lr} * weight_decay);
    const double g = grad[i];
    const double mi = m[i] + (1.0 - beta1) * (g - m[i]);
    const double vi = beta2 * double{v[i]} + (1.0 - beta2) * g * g;
    p -= step * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    param[i] = static_cast<float>(p);
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
  }
}

void f32_to_bf16(uint16_t* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16::from_float(x[i]);
}
void bf16_to_f32(float* out, const uint16_t* x, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(bf16::from_bits(x[i]));
}
void f32_to_f16(uint16_t* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = f16::from_float(x[i]);
}
void f16_to_f32(float* out, const uint16_t* x, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = f16::to_float(x[i]);
}

// --- quantized blocks
// ------------------------------------------------------------------------------

namespace {
float half_to_float(uint16_t h) {
  return f16::to_float(h);
}
uint16_t float_to_half(float x) {
  return f16::from_float(x);
}
// Rounds half away from zero, like C's roundf, for |v| well inside the int range.
float round_half_away(float v) {
  return std::round(v);
}
}  // namespace

void quantize_q8_0(BlockQ8_0* out, const float* x, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float amax = 0.0f;
    for (int j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = float_to_half(d);
    for (int j = 0; j < kQuantBlock; ++j) {
      const float v = xb[j] * id;
      out[b].qs[j] = v == v ? static_cast<int8_t>(round_half_away(v)) : 0;
    }
  }
}

void quantize_q4_0(BlockQ4_0* out, const float* x, size_t n) {
  constexpr int half = kQuantBlock / 2;
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const float* xb = x + b * kQuantBlock;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQuantBlock; ++j)
      if (amax < std::fabs(xb[j])) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = float_to_half(d);
    auto code = [&](float v) {
      const float t = v * id + 8.5f;  // in [0.5, 16.5] for finite inputs
      return t >= 0.0f ? static_cast<uint8_t>(std::min(15.0f, std::trunc(t))) : uint8_t{0};
    };
    for (int j = 0; j < half; ++j)
      out[b].qs[j] = static_cast<uint8_t>(code(xb[j]) | (code(xb[j + half]) << 4));
  }
}

void dequantize_q8_0(float* out, const BlockQ8_0* x, size_t n) {
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const float d = half_to_float(x[b].d);
    for (int j = 0; j < kQuantBlock; ++j) out[b * kQuantBlock + j] = d * x[b].qs[j];
  }
}

void dequantize_q4_0(float* out, const BlockQ4_0* x, size_t n) {
  constexpr int half = kQuantBlock / 2;
  for (size_t b = 0; b < n / kQuantBlock; ++b) {
    const float d = half_to_float(x[b].d);
    for (int j = 0; j < half; ++j) {
      out[b * kQuantBlock + j] = d * static_cast<float>((x[b].qs[j] & 0xF) - 8);
      out[b * kQuantBlock + j + half] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}

void gemv_f32(float* y, const float* W, const float* x, size_t rows, size_t n) {
  for (size_t r = 0; r < rows; ++r) y[r] = dot(W + r * n, x, n);
}

void gemv_f16(float* y, const uint16_t* W, const float* x, size_t rows, size_t n) {
  for (size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += double{half_to_float(W[r * n + i])} * double{x[i]};
    y[r] = static_cast<float>(s);
  }
}

void gemv_bf16(float* y, const uint16_t* W, const float* x, size_t rows, size_t n) {
  for (size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (size_t i = 0; i < n; ++i)
      s += double{static_cast<float>(bf16::from_bits(W[r * n + i]))} * double{x[i]};
    y[r] = static_cast<float>(s);
  }
}

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc) {
  const int64_t blocks = (K + kOwnGemmDepth - 1) / kOwnGemmDepth;
  const int64_t step = blocks == 0 ? 0 : (K + blocks - 1) / blocks;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float& c = C[i * ldc + j];
      if (K == 0) c = beta == 0.0f ? 0.0f : beta * c;
      for (int64_t k0 = 0; k0 < K; k0 += step) {
        float acc = 0.0f;
        for (int64_t k = k0; k < std::min(K, k0 + step); ++k)
          acc = std::fma(trans_a ? A[k * lda + i] : A[i * lda + k],
                         trans_b ? B[j * ldb + k] : B[k * ldb + j], acc);
        const float y = alpha * acc;
        if (k0 > 0)
          c = y + c;
        else
          c = beta == 0.0f ? y : std::fma(beta, c, y);
      }
    }
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  auto r = [](float x) { return double{static_cast<float>(bf16(x))}; };
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += r(trans_a ? A[k * lda + i] : A[i * lda + k]) *
             r(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
      float& c = C[i * ldc + j];
      c = static_cast<float>(alpha * s) + (beta == 0.0f ? 0.0f : beta * c);
    }
}

void gemv_q8_0(float* y, const BlockQ8_0* W, const BlockQ8_0* x, size_t rows, size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (size_t b = 0; b < nb; ++b) {
      const BlockQ8_0& w = W[r * nb + b];
      int32_t isum = 0;
      for (int j = 0; j < kQuantBlock; ++j) isum += int32_t{w.qs[j]} * int32_t{x[b].qs[j]};
      s += double{half_to_float(w.d)} * double{half_to_float(x[b].d)} * isum;
    }
    y[r] = static_cast<float>(s);
  }
}

void gemv_q4_0(float* y, const BlockQ4_0* W, const BlockQ8_0* x, size_t rows, size_t n) {
  constexpr int half = kQuantBlock / 2;
  const size_t nb = n / kQuantBlock;
  for (size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (size_t b = 0; b < nb; ++b) {
      const BlockQ4_0& w = W[r * nb + b];
      int32_t isum = 0;
      for (int j = 0; j < half; ++j) {
        isum += ((w.qs[j] & 0xF) - 8) * int32_t{x[b].qs[j]};
        isum += ((w.qs[j] >> 4) - 8) * int32_t{x[b].qs[j + half]};
      }
      s += double{half_to_float(w.d)} * double{half_to_float(x[b].d)} * isum;
    }
    y[r] = static_cast<float>(s);
  }
}

void gemm_q8_0(float* Y, size_t ldy, const BlockQ8_0* W, const BlockQ8_0* X, size_t rows, size_t T,
               size_t n) {
  for (size_t t = 0; t < T; ++t) gemv_q8_0(Y + t * ldy, W, X + t * (n / kQuantBlock), rows, n);
}

void gemm_q4_0(float* Y, size_t ldy, const BlockQ4_0* W, const BlockQ8_0* X, size_t rows, size_t T,
               size_t n) {
  for (size_t t = 0; t < T; ++t) gemv_q4_0(Y + t * ldy, W, X + t * (n / kQuantBlock), rows, n);
}

void gemm_q8_0_x8(float* Y, size_t ldy, const BlockQ8_0x8* W, const BlockQ8_0* X, size_t rows,
                  size_t T, size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t t = 0; t < T; ++t)
    for (size_t r = 0; r < rows; ++r) {
      double s = 0;
      for (size_t b = 0; b < nb; ++b) {
        const BlockQ8_0x8& w = W[(r / 8) * nb + b];
        const BlockQ8_0& x = X[t * nb + b];
        int32_t isum = 0;
        for (size_t v = 0; v < 32; ++v)
          isum += int32_t{w.qs[32 * (v / 4) + 4 * (r % 8) + v % 4]} * int32_t{x.qs[v]};
        s += double{half_to_float(w.d[r % 8])} * double{half_to_float(x.d)} * isum;
      }
      Y[t * ldy + r] = static_cast<float>(s);
    }
}

void gemm_q4_0_x8(float* Y, size_t ldy, const BlockQ4_0x8* W, const BlockQ8_0* X, size_t rows,
                  size_t T, size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t t = 0; t < T; ++t)
    for (size_t r = 0; r < rows; ++r) {
      double s = 0;
      for (size_t b = 0; b < nb; ++b) {
        const BlockQ4_0x8& w = W[(r / 8) * nb + b];
        const BlockQ8_0& x = X[t * nb + b];
        int32_t isum = 0;
        for (size_t v = 0; v < 16; ++v) {
          const uint8_t byte = w.qs[32 * (v / 4) + 4 * (r % 8) + v % 4];
          isum += ((byte & 0xF) - 8) * int32_t{x.qs[v]};
          isum += ((byte >> 4) - 8) * int32_t{x.qs[v + 16]};
        }
        s += double{half_to_float(w.d[r % 8])} * double{half_to_float(x.d)} * isum;
      }
      Y[t * ldy + r] = static_cast<float>(s);
    }
}

#include "kernels/weight_rows.inc"

const KernelTable& table() {
  static const KernelTable t{
      .isa = Isa::scalar,
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

}  // namespace scholar::kernels::ref
