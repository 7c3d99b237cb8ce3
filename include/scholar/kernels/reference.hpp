// scholar/kernels/reference.hpp: the scalar reference twin of every kernel.
//
// Plain loops, written for clarity: reductions and transcendental functions are computed in double
// and rounded once. They are the oracle the SIMD paths are tested against, and the "scalar" path on
// CPUs without AVX2. Signatures match the entries of KernelTable (scholar/kernels/kernels.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "scholar/kernels/kernels.hpp"

namespace scholar::kernels::ref {

void add(float* out, const float* a, const float* b, size_t n);
void sub(float* out, const float* a, const float* b, size_t n);
void mul(float* out, const float* a, const float* b, size_t n);
void div(float* out, const float* a, const float* b, size_t n);
void maximum(float* out, const float* a, const float* b, size_t n);
void add_scalar(float* out, const float* a, float s, size_t n);
void scale(float* out, const float* a, float s, size_t n);
void axpy(float* y, float alpha, const float* x, size_t n);

float dot(const float* a, const float* b, size_t n);
void dot_rows(float* out, const float* A, size_t lda, const float* x, size_t rows, size_t n,
              float scale);
void axpy_rows(float* y, const float* p, const float* A, size_t lda, size_t rows, size_t n);
float l2_squared(const float* a, const float* b, size_t n);
float sum(const float* x, size_t n);
float dot_bf16(const float* a, const uint16_t* b, size_t n);
float l2_squared_bf16(const float* a, const uint16_t* b, size_t n);
float dot_u8(const float* a, const uint8_t* c, float lo, float step, size_t n);
float l2_squared_u8(const float* a, const uint8_t* c, float lo, float step, size_t n);
float max(const float* x, size_t n);

void softmax(float* out, const float* x, size_t n);
void log_softmax(float* out, const float* x, size_t n);
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                       const float* bias, size_t C, float eps);
void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x,
                        const float* weight, float mean, float rstd, size_t C);
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, size_t C,
                     float eps);
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                      const float* weight, float rstd, size_t C);

void gelu_forward(float* out, const float* x, size_t n);
void gelu_backward(float* dx, const float* dout, const float* x, size_t n);
void gelu_erf_forward(float* out, const float* x, size_t n);
void gelu_erf_backward(float* dx, const float* dout, const float* x, size_t n);
void silu_forward(float* out, const float* x, size_t n);
void silu_backward(float* dx, const float* dout, const float* x, size_t n);
void swiglu_forward(float* out, const float* gate, const float* up, size_t n);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n);

void rope(float* out, const float* x, const float* cos, const float* sin, size_t n_pairs,
          RopeStyle style, bool inverse);

void adamw(float* param, float* m, float* v, const float* grad, size_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float bc1, float bc2);

void f32_to_bf16(uint16_t* out, const float* x, size_t n);
void bf16_to_f32(float* out, const uint16_t* x, size_t n);
void f32_to_f16(uint16_t* out, const float* x, size_t n);
void f16_to_f32(float* out, const uint16_t* x, size_t n);

void quantize_q8_0(BlockQ8_0* out, const float* x, size_t n);
void quantize_q4_0(BlockQ4_0* out, const float* x, size_t n);
void dequantize_q8_0(float* out, const BlockQ8_0* x, size_t n);
void dequantize_q4_0(float* out, const BlockQ4_0* x, size_t n);
void gemv_f32(float* y, const float* W, const float* x, size_t rows, size_t n);
void gemv_f16(float* y, const uint16_t* W, const float* x, size_t rows, size_t n);
void gemv_bf16(float* y, const uint16_t* W, const float* x, size_t rows, size_t n);
void gemv_q8_0(float* y, const BlockQ8_0* W, const BlockQ8_0* x, size_t rows, size_t n);
void gemv_q4_0(float* y, const BlockQ4_0* W, const BlockQ8_0* x, size_t rows, size_t n);
void gemm_q8_0(float* Y, size_t ldy, const BlockQ8_0* W, const BlockQ8_0* X, size_t rows, size_t T,
               size_t n);
void gemm_q4_0(float* Y, size_t ldy, const BlockQ4_0* W, const BlockQ8_0* X, size_t rows, size_t T,
               size_t n);
void gemm_q8_0_x8(float* Y, size_t ldy, const BlockQ8_0x8* W, const BlockQ8_0* X, size_t rows,
                  size_t T, size_t n);
void gemm_q4_0_x8(float* Y, size_t ldy, const BlockQ4_0x8* W, const BlockQ8_0* X, size_t rows,
                  size_t T, size_t n);
/// Depth of the blocks into which scholar's own f32 GEMMs (and gemm_f32 below) cut K.
inline constexpr int64_t kOwnGemmDepth = 384;
/// The twin of scholar's own f32 GEMMs (the AVX-512 and AVX2 micro-kernels behind kernels::gemm):
/// the same arithmetic in scalar code, so equal to them bit for bit. K is cut into equal blocks of
/// at most kOwnGemmDepth; each block's products are accumulated in order with fused multiply-adds
/// from zero, then C = alpha * block + beta * C for the first block (beta = 0 ignores C) and
/// C = alpha * block + C for the others. K = 0 gives C = beta * C. Slow (std::fma): for tests.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);
/// kernels::gemm_bf16's twin: each operand rounded to bf16 (nearest even), products summed in
/// double, then C = alpha * sum + beta * C (beta = 0 ignores C).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc);

/// The scalar table: these functions, gathered.
const KernelTable& table();

}  // namespace scholar::kernels::ref
