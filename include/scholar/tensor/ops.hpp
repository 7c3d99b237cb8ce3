// scholar/tensor/ops.hpp: arithmetic on float tensors.
//
// Binary operations broadcast with NumPy's rules (align shapes at the right; a size-1 or missing
// dimension stretches) and return a fresh contiguous tensor. Contiguous rows go through the SIMD
// kernels; large operations are split over the thread pool. Shape errors name the operation and
// both shapes: "add: shapes [2, 3] and [4] cannot be broadcast (3 vs 4 in dimension 1 of the
// result)".
//
//   auto y = matmul(x, w.t()) + b;     // [B, C] x [C, O]^T + [O]
//   auto p = softmax(y, -1);           // rows sum to 1
//   auto m = mean(p, 0, true);         // [1, O]
#pragma once

#include "scholar/tensor/tensor.hpp"

namespace scholar {

using FloatTensor = Tensor<float>;

// --- elementwise, broadcasting
// ---------------------------------------------------------------------

FloatTensor add(const FloatTensor& a, const FloatTensor& b);
FloatTensor sub(const FloatTensor& a, const FloatTensor& b);
FloatTensor mul(const FloatTensor& a, const FloatTensor& b);
FloatTensor div(const FloatTensor& a, const FloatTensor& b);
/// Elementwise max; NaN propagates.
FloatTensor maximum(const FloatTensor& a, const FloatTensor& b);
FloatTensor add(const FloatTensor& a, float s);
FloatTensor sub(const FloatTensor& a, float s);
FloatTensor mul(const FloatTensor& a, float s);
FloatTensor div(const FloatTensor& a, float s);

inline FloatTensor operator+(const FloatTensor& a, const FloatTensor& b) {
  return add(a, b);
}
inline FloatTensor operator-(const FloatTensor& a, const FloatTensor& b) {
  return sub(a, b);
}
inline FloatTensor operator*(const FloatTensor& a, const FloatTensor& b) {
  return mul(a, b);
}
inline FloatTensor operator/(const FloatTensor& a, const FloatTensor& b) {
  return div(a, b);
}
inline FloatTensor operator+(const FloatTensor& a, float s) {
  return add(a, s);
}
inline FloatTensor operator-(const FloatTensor& a, float s) {
  return sub(a, s);
}
inline FloatTensor operator*(const FloatTensor& a, float s) {
  return mul(a, s);
}
inline FloatTensor operator/(const FloatTensor& a, float s) {
  return div(a, s);
}
inline FloatTensor operator+(float s, const FloatTensor& a) {
  return add(a, s);
}
inline FloatTensor operator*(float s, const FloatTensor& a) {
  return mul(a, s);
}
FloatTensor operator-(float s, const FloatTensor& a);
FloatTensor operator/(float s, const FloatTensor& a);
FloatTensor operator-(const FloatTensor& a);

// In place: `a` keeps its shape and storage; `b` must broadcast to a's shape.
void add_(const FloatTensor& a, const FloatTensor& b);
void sub_(const FloatTensor& a, const FloatTensor& b);
void mul_(const FloatTensor& a, const FloatTensor& b);
void div_(const FloatTensor& a, const FloatTensor& b);
void add_(const FloatTensor& a, float s);
void mul_(const FloatTensor& a, float s);
/// a += alpha * b
void axpy_(const FloatTensor& a, float alpha, const FloatTensor& b);

// --- unary math --------------------------------------------------------------------------------

FloatTensor neg(const FloatTensor& x);
FloatTensor abs(const FloatTensor& x);
FloatTensor exp(const FloatTensor& x);
FloatTensor log(const FloatTensor& x);
FloatTensor sqrt(const FloatTensor& x);
FloatTensor rsqrt(const FloatTensor& x);
FloatTensor square(const FloatTensor& x);
FloatTensor sin(const FloatTensor& x);
FloatTensor cos(const FloatTensor& x);
FloatTensor tanh(const FloatTensor& x);
FloatTensor sigmoid(const FloatTensor& x);
FloatTensor relu(const FloatTensor& x);
/// GELU, tanh approximation (as GPT-2 uses it).
FloatTensor gelu(const FloatTensor& x);
/// SiLU (swish): x * sigmoid(x).
FloatTensor silu(const FloatTensor& x);
FloatTensor pow(const FloatTensor& x, float p);
/// Limits every element to [lo, hi] (ValueError if lo > hi); NaN stays NaN.
FloatTensor clamp(const FloatTensor& x, float lo, float hi);

// --- reductions along one dimension (negative dims count from the end) -------------------------

FloatTensor sum(const FloatTensor& x, int dim, bool keepdim = false);
FloatTensor mean(const FloatTensor& x, int dim, bool keepdim = false);
/// Largest value along dim (NaN if the slice holds one). Empty slices are a ShapeError.
FloatTensor max(const FloatTensor& x, int dim, bool keepdim = false);
/// Index of the first largest value along dim.
Tensor<int32_t> argmax(const FloatTensor& x, int dim, bool keepdim = false);
/// Sum of all elements, accumulated in double.
double sum_all(const FloatTensor& x);
/// Mean of all elements (ShapeError for an empty tensor).
double mean_all(const FloatTensor& x);

// --- rows --------------------------------------------------------------------------------------

/// exp(x) / sum exp(x) along dim, computed stably (max subtracted first).
FloatTensor softmax(const FloatTensor& x, int dim = -1);
/// x - logsumexp(x) along dim.
FloatTensor log_softmax(const FloatTensor& x, int dim = -1);

// --- matrix products ---------------------------------------------------------------------------

/// Matrix product. 2-D: [M, K] x [K, N] -> [M, N]. 3-D (batched): [B, M, K] x [B, K, N] -> [B, M,
/// N], where either batch may be 1 (or the operand 2-D) and broadcasts. Transposed and strided
/// operands (views whose rows or columns are contiguous) go to GEMM without a copy; others are
/// copied.
FloatTensor matmul(const FloatTensor& a, const FloatTensor& b);
/// out = alpha * a x b + beta * out, into an existing tensor of the result's shape (not aliasing a
/// or b). With beta = 0 the old contents of out are ignored.
void matmul_into(const FloatTensor& out, const FloatTensor& a, const FloatTensor& b,
                 float alpha = 1.0f, float beta = 0.0f);

// --- comparison --------------------------------------------------------------------------------

/// Largest |a - b| over broadcast elements (NaN if either side has a NaN where the other does not).
double max_abs_diff(const FloatTensor& a, const FloatTensor& b);
/// True if |a - b| <= atol + rtol * |b| everywhere (NumPy's allclose; NaNs never equal).
bool allclose(const FloatTensor& a, const FloatTensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace scholar
