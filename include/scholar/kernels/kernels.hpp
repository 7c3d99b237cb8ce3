// scholar/kernels/kernels.hpp: SIMD loops on raw spans, chosen once per process.
//
// Each kernel exists three times: an AVX-512 and an AVX2 build of one xsimd source, and a plain
// scalar reference twin (scholar/kernels/reference.hpp) that is also the fallback on CPUs without
// AVX2. The first call picks the best instruction set the CPU and OS support, or the one named by
// the environment variable SCHOLAR_ISA (scalar, avx2 or avx512); system_info() says which.
//
// Calling convention (as in llm.c): outputs first, then saved statistics, then inputs, then sizes.
// Pointers need no alignment. An elementwise output may be the same array as an input (in place),
// but must not partially overlap one. Backward kernels ACCUMULATE (+=) into their gradient outputs,
// so gradients of reused values add up. Reductions accumulate in float with several independent
// partial sums; the reference twins accumulate in double.
//
// Shape legend used across scholar: B batch, T time (sequence), C channels, V vocabulary, H heads,
// D head dimension, N a generic length.
//
// Thread-safety: every kernel is a pure function of its arguments and may run concurrently.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "scholar/error.hpp"
#include "scholar/tensor/quant.hpp"

namespace scholar::kernels {

/// Instruction sets the kernels are compiled for. avx512_vnni is avx512 plus AVX512_VNNI, which
/// only the quantized products use.
enum class Isa : uint8_t { scalar, avx2, avx512, avx512_vnni };

/// "scalar", "avx2", "avx512" or "avx512_vnni".
std::string_view isa_name(Isa isa);

/// Parses an ISA name (as accepted in SCHOLAR_ISA); throws ValueError for anything else.
Isa parse_isa(std::string_view name);

/// How rotary position embeddings pair the D dimensions of a head.
enum class RopeStyle : uint8_t {
  half,        ///< (x[i], x[i + D/2]): Hugging Face "rotate_half", GPT-NeoX, Qwen2
  interleaved  ///< (x[2i], x[2i+1]): GPT-J, Meta's original Llama, llama.cpp's default layout
};

/// The kernels of one weight storage type: a row per WeightType, as ggml's type_traits_cpu. W
/// points at `rows` stored rows of n values (n a multiple of the type's block length); the
/// products compute Y[t * ldy + r] = W[r, :] . X[t]. They read their input as `input_type`: f32
/// (x as given) or q8_0 (xq, x quantized with quantize_q8_0, as llama.cpp does).
struct WeightKernels {
  WeightType type;
  WeightType input_type;
  /// Converts one row (n values) to f32.
  void (*to_f32)(float* out, const void* row, size_t n);
  /// Stores n floats as this type (quantizes), ggml's reference rounding for the block formats.
  void (*from_f32)(void* out, const float* x, size_t n);
  /// y[r] = W[r, :] . x for `rows` rows: one input (decoding).
  void (*gemv)(float* y, const void* W, const float* x, const void* xq, size_t rows, size_t n);
  /// T inputs at once on the stored layout; null: the caller converts row panels with to_f32 and
  /// uses kernels::gemm.
  void (*gemm)(float* Y, size_t ldy, const void* W, const void* XQ, size_t rows, size_t T,
               size_t n);
  /// Interleaves `rows` rows (a multiple of 8) for gemm_packed; null: the type has no such form.
  void (*repack)(void* out, const void* W, size_t rows, size_t n);
  /// gemm on weights interleaved by repack.
  void (*gemm_packed)(float* Y, size_t ldy, const void* W, const void* XQ, size_t rows, size_t T,
                      size_t n);
};

/// One implementation of every kernel. All tables have the same entries; only speed differs.
struct KernelTable {
  Isa isa;

  // --- elementwise, N elements: out[i] = a[i] op b[i] -------------------------------------------
  void (*add)(float* out, const float* a, const float* b, size_t n);
  void (*sub)(float* out, const float* a, const float* b, size_t n);
  void (*mul)(float* out, const float* a, const float* b, size_t n);
  void (*div)(float* out, const float* a, const float* b, size_t n);
  void (*maximum)(float* out, const float* a, const float* b, size_t n);
  /// out[i] = a[i] + s
  void (*add_scalar)(float* out, const float* a, float s, size_t n);
  /// out[i] = a[i] * s
  void (*scale)(float* out, const float* a, float s, size_t n);
  /// y[i] += alpha * x[i]
  void (*axpy)(float* y, float alpha, const float* x, size_t n);

  // --- reductions -------------------------------------------------------------------------------
  /// sum a[i] * b[i] (the inner product)
  float (*dot)(const float* a, const float* b, size_t n);
  /// sum (a[i] - b[i])^2
  float (*l2_squared)(const float* a, const float* b, size_t n);
  float (*sum)(const float* x, size_t n);
  // Distances from an f32 query a to a stored vector in a compact form (vector search):
  /// sum a[i] * bf16(b[i])
  float (*dot_bf16)(const float* a, const uint16_t* b, size_t n);
  /// sum (a[i] - bf16(b[i]))^2
  float (*l2_squared_bf16)(const float* a, const uint16_t* b, size_t n);
  /// sum a[i] * (lo + step * c[i]): the inner product with a vector scalar-quantized to bytes
  float (*dot_u8)(const float* a, const uint8_t* c, float lo, float step, size_t n);
  /// sum (a[i] - (lo + step * c[i]))^2
  float (*l2_squared_u8)(const float* a, const uint8_t* c, float lo, float step, size_t n);
  /// max x[i]; -inf for n == 0; NaN if any x[i] is NaN
  float (*max)(const float* x, size_t n);

  // --- blocks of strided rows (attention over a KV cache) ----------------------------------------
  /// out[r] = scale * sum_i A[r * lda + i] * x[i] for r < rows: one query against `rows` keys.
  void (*dot_rows)(float* out, const float* A, size_t lda, const float* x, size_t rows, size_t n,
                   float scale);
  /// y[i] += sum_r p[r] * A[r * lda + i] for i < n: attention weights times `rows` values.
  void (*axpy_rows)(float* y, const float* p, const float* A, size_t lda, size_t rows, size_t n);

  // --- rows -------------------------------------------------------------------------------------
  /// out = exp(x - max x) / sum exp(x - max x), over one row of n values
  void (*softmax)(float* out, const float* x, size_t n);
  /// out = x - max x - log sum exp(x - max x)
  void (*log_softmax)(float* out, const float* x, size_t n);
  /// One row of C: out = (x - mean) * rstd * weight + bias; writes the row's mean and
  /// rstd = 1 / sqrt(var + eps) (biased variance) when those pointers are not null. bias may be
  /// null.
  void (*layernorm_forward)(float* out, float* mean, float* rstd, const float* x,
                            const float* weight, const float* bias, size_t C, float eps);
  /// Accumulates dx, dweight and dbias (each may be null) for one row, given its saved mean, rstd.
  void (*layernorm_backward)(float* dx, float* dweight, float* dbias, const float* dout,
                             const float* x, const float* weight, float mean, float rstd, size_t C);
  /// One row of C: out = x * rstd * weight with rstd = 1 / sqrt(mean(x^2) + eps) (written if not
  /// null).
  void (*rmsnorm_forward)(float* out, float* rstd, const float* x, const float* weight, size_t C,
                          float eps);
  /// Accumulates dx and dweight (each may be null) for one row, given its saved rstd.
  void (*rmsnorm_backward)(float* dx, float* dweight, const float* dout, const float* x,
                           const float* weight, float rstd, size_t C);

  // --- activations (N elements) -----------------------------------------------------------------
  /// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  void (*gelu_forward)(float* out, const float* x, size_t n);
  /// dx += dout * GELU'(x)
  void (*gelu_backward)(float* dx, const float* dout, const float* x, size_t n);
  /// GELU, exact form (BERT's): x Phi(x) = 0.5 x erfc(-x / sqrt(2))
  void (*gelu_erf_forward)(float* out, const float* x, size_t n);
  /// dx += dout * (Phi(x) + x phi(x))
  void (*gelu_erf_backward)(float* dx, const float* dout, const float* x, size_t n);
  /// SiLU: x * sigmoid(x)
  void (*silu_forward)(float* out, const float* x, size_t n);
  /// dx += dout * SiLU'(x)
  void (*silu_backward)(float* dx, const float* dout, const float* x, size_t n);
  /// SwiGLU: out = silu(gate) * up
  void (*swiglu_forward)(float* out, const float* gate, const float* up, size_t n);
  /// dgate += dout * up * SiLU'(gate); dup += dout * silu(gate)
  void (*swiglu_backward)(float* dgate, float* dup, const float* dout, const float* gate,
                          const float* up, size_t n);

  // --- rotary position embedding ----------------------------------------------------------------
  /// Rotates one head vector of D = 2 * n_pairs values: pair p = (a, b) becomes
  /// (a cos[p] - b sin[p], a sin[p] + b cos[p]); with inverse, the rotation by -angle (the backward
  /// pass of the forward rotation). cos and sin hold n_pairs values for this position.
  void (*rope)(float* out, const float* x, const float* cos, const float* sin, size_t n_pairs,
               RopeStyle style, bool inverse);

  // --- optimizers --------------------------------------------------------------------------------
  /// One AdamW step on n parameters, in PyTorch's order of operations:
  ///   p *= 1 - lr * weight_decay;  m += (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2;
  ///   p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
  /// where bc1 = 1 - beta1^t and bc2 = 1 - beta2^t are the bias corrections of step t.
  void (*adamw)(float* param, float* m, float* v, const float* grad, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, float bc1, float bc2);

  // --- conversions (round to nearest even; NaN stays NaN) ---------------------------------------
  void (*f32_to_bf16)(uint16_t* out, const float* x, size_t n);
  void (*bf16_to_f32)(float* out, const uint16_t* x, size_t n);
  void (*f32_to_f16)(uint16_t* out, const float* x, size_t n);
  void (*f16_to_f32)(float* out, const uint16_t* x, size_t n);

  // --- ggml's quantized blocks (scholar/tensor/quant.hpp); n is a multiple of 32 ----------------
  /// ggml's reference quantizer bit for bit (quantize_row_q8_0_ref): per block d = max|x| / 127,
  /// q = x * (1 / d) rounded half away from zero, d stored as f16.
  void (*quantize_q8_0)(BlockQ8_0* out, const float* x, size_t n);
  /// ggml's quantize_row_q4_0_ref bit for bit: m = the value of largest magnitude (the first on
  /// ties), d = m / -8, q = min(15, trunc(x * (1 / d) + 8.5)). NaN inputs give q = 0.
  void (*quantize_q4_0)(BlockQ4_0* out, const float* x, size_t n);
  /// out[i] = d * q[i] (Q4_0: d * (q[i] - 8)).
  void (*dequantize_q8_0)(float* out, const BlockQ8_0* x, size_t n);
  void (*dequantize_q4_0)(float* out, const BlockQ4_0* x, size_t n);

  // --- products with stored weight matrices ------------------------------------------------------
  // W is `rows` rows of n values, stored contiguously in the given type; y[r] = W[r, :] . x.
  // The quantized forms take x quantized to Q8_0 (quantize_q8_0), as llama.cpp does: each block
  // contributes d_w * d_x * (the integer dot product of its q's).
  void (*gemv_f32)(float* y, const float* W, const float* x, size_t rows, size_t n);
  void (*gemv_f16)(float* y, const uint16_t* W, const float* x, size_t rows, size_t n);
  void (*gemv_bf16)(float* y, const uint16_t* W, const float* x, size_t rows, size_t n);
  void (*gemv_q8_0)(float* y, const BlockQ8_0* W, const BlockQ8_0* x, size_t rows, size_t n);
  void (*gemv_q4_0)(float* y, const BlockQ4_0* W, const BlockQ8_0* x, size_t rows, size_t n);
  /// The same for T inputs at once (prefill): Y[t * ldy + r] = W[r, :] . X[t], where X holds T
  /// rows of n / 32 blocks each.
  void (*gemm_q8_0)(float* Y, size_t ldy, const BlockQ8_0* W, const BlockQ8_0* X, size_t rows,
                    size_t T, size_t n);
  void (*gemm_q4_0)(float* Y, size_t ldy, const BlockQ4_0* W, const BlockQ8_0* X, size_t rows,
                    size_t T, size_t n);
  /// The same on weights interleaved by repack_x8 (rows a multiple of 8): eight rows advance
  /// together, so no horizontal sums are needed. The results equal gemm_q8_0/gemm_q4_0's up to
  /// float rounding (each block's integer dot product is exact in both).
  void (*gemm_q8_0_x8)(float* Y, size_t ldy, const BlockQ8_0x8* W, const BlockQ8_0* X, size_t rows,
                       size_t T, size_t n);
  void (*gemm_q4_0_x8)(float* Y, size_t ldy, const BlockQ4_0x8* W, const BlockQ8_0* X, size_t rows,
                       size_t T, size_t n);

  // --- per weight type (rows in kWeightTypes order; see weight()) ------------------------------
  std::array<WeightKernels, kWeightTypeCount> weights;

  /// The kernels for weight type t.
  const WeightKernels& weight(WeightType t) const { return weights[weight_type_index(t)]; }
};

/// The table every scholar operation uses. Chosen on first use: SCHOLAR_ISA if set (a ValueError if
/// the name is unknown or the CPU lacks that instruction set), else the best the CPU supports.
const KernelTable& active();

/// The table for one ISA, or nullptr if this build or this CPU cannot run it. Tests use this to
/// check every path in one run.
const KernelTable* table_for(Isa isa);

/// The best instruction set this build and CPU support.
Isa best_isa();

/// Makes `isa` the active table for the whole process (throws ValueError if unsupported). Not for
/// use while other threads are running kernels.
void set_isa(Isa isa);

/// CPU features that matter to scholar, as a space-separated list ("AVX2 FMA F16C AVX512F ...").
std::string_view cpu_features();

// --- Span wrappers: check sizes, then call the active table
// ---------------------------------------

namespace detail {
inline void check_same(const char* op, size_t a, size_t b) {
  if (a != b) fail<ShapeError>("kernels::", op, ": span sizes differ (", a, " vs ", b, ")");
}
}  // namespace detail

/// out = a + b
inline void add(std::span<float> out, std::span<const float> a, std::span<const float> b) {
  detail::check_same("add", out.size(), a.size());
  detail::check_same("add", a.size(), b.size());
  active().add(out.data(), a.data(), b.data(), out.size());
}
/// out = a * b
inline void mul(std::span<float> out, std::span<const float> a, std::span<const float> b) {
  detail::check_same("mul", out.size(), a.size());
  detail::check_same("mul", a.size(), b.size());
  active().mul(out.data(), a.data(), b.data(), out.size());
}
/// y += alpha * x
inline void axpy(std::span<float> y, float alpha, std::span<const float> x) {
  detail::check_same("axpy", y.size(), x.size());
  active().axpy(y.data(), alpha, x.data(), y.size());
}
/// out = s * x
inline void scale(std::span<float> out, std::span<const float> x, float s) {
  detail::check_same("scale", out.size(), x.size());
  active().scale(out.data(), x.data(), s, out.size());
}
/// sum a[i] * b[i]
inline float dot(std::span<const float> a, std::span<const float> b) {
  detail::check_same("dot", a.size(), b.size());
  return active().dot(a.data(), b.data(), a.size());
}
/// The inner product (same as dot): the similarity used by inner-product vector search.
inline float inner_product(std::span<const float> a, std::span<const float> b) {
  detail::check_same("inner_product", a.size(), b.size());
  return active().dot(a.data(), b.data(), a.size());
}
/// sum (a[i] - b[i])^2
inline float l2_squared(std::span<const float> a, std::span<const float> b) {
  detail::check_same("l2_squared", a.size(), b.size());
  return active().l2_squared(a.data(), b.data(), a.size());
}
inline float sum(std::span<const float> x) {
  return active().sum(x.data(), x.size());
}
inline float max(std::span<const float> x) {
  return active().max(x.data(), x.size());
}

/// Softmax over each row of a rows x cols row-major block.
void softmax_rows(float* out, const float* x, size_t rows, size_t cols);
/// Log-softmax over each row of a rows x cols row-major block.
void log_softmax_rows(float* out, const float* x, size_t rows, size_t cols);

/// Fills cos/sin (n_pairs each) for one position: angle[p] = pos * theta_base^(-2p / (2 n_pairs)),
/// divided by freq_factors[p] when freq_factors is not null (RoPE scaling, as llama.cpp's
/// rope_freqs: n_pairs positive values), computed in double and rounded once. theta_base is 10000
/// for GPT-NeoX/Llama 2, 500000 for Llama 3.
void rope_angles(float* cos, float* sin, double pos, size_t n_pairs, double theta_base,
                 const float* freq_factors = nullptr);

// --- GEMM (row-major: scholar's own kernels, or the BLAS chosen at build time)
// ----------------------------------------------

/// C = alpha * op(A) * op(B) + beta * C, all row-major: op(A) is M x K, op(B) is K x N, C is M x N;
/// op(X) = X or X^T as trans_x says; lda/ldb/ldc are row strides in elements. Large products are
/// split over the thread pool (BLAS itself runs one thread per task). beta = 0 ignores C's
/// contents. Multiplies in bf16 instead when set_matmul_precision() says so (see below).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/// What gemm() runs in f32: "scholar AVX-512 (8x48, 6x64 micro-tiles)" or "scholar AVX2 (6x16
/// micro-tile)" where has_own_f32_gemm(), else blas_name().
std::string gemm_backend();

/// The BLAS chosen at build time, which gemm() runs where has_own_f32_gemm() is false:
/// "OpenBLAS 0.3.21 (SkylakeX kernels), 1 thread per pool task" or "Eigen 3.4.0 (avx512 build)".
std::string blas_name();

/// True if gemm() runs f32 products on scholar's own kernels (BLIS-style packing; an 8 x 48 or 6 x
/// 64 tile of C in registers on AVX-512, 6 x 16 on AVX2). Measured on Sapphire Rapids
/// (docs/performance.md): with AVX-512 1.1-1.4x Eigen's GEMM, 1.07-1.13x OpenBLAS's and 0.99-1.04x
/// Intel MKL's on a training step's products; with AVX2 1.0-1.26x Eigen's and 0.93-1.00x
/// OpenBLAS's. So it runs where
/// the active kernel table is AVX-512, and AVX2 in Eigen builds (in OpenBLAS builds only when asked
/// for), unless switched off (environment variable SCHOLAR_F32_GEMM=blas or 0, or
/// set_own_f32_gemm(false); =own or 1, or set_own_f32_gemm(true), asks for it). Products thinner
/// than 16 rows or columns run on the BLAS either way. ref::gemm_f32 is their scalar twin.
bool has_own_f32_gemm();

/// Lets gemm() use scholar's own f32 kernels where the active kernel table is AVX-512 or AVX2, or
/// holds it to the build's BLAS (the defaults: has_own_f32_gemm()); for benchmarks and tests of
/// both paths.
/// Not for use while other threads run products.
void set_own_f32_gemm(bool enabled);

/// gemm() with the products in bf16: every element of op(A) and op(B) is rounded to bf16 (round to
/// nearest even), the products are summed in f32, and C = alpha * sum + beta * C in f32. Where
/// has_amx_bf16() is true it runs on AMX tiles (Sapphire Rapids and later: 3-9x the f32 gemm());
/// else where has_bf16_gemm() is true on AVX512_BF16's vdpbf16ps (1.3-2.6x the f32 gemm() on AMD
/// Zen 4, which runs it at twice its FMA rate; 0.6-0.9x on Intel cores, which run it at half); else
/// on the scalar reference (exact but slow: for tests). Only the order of the f32 sums differs
/// between them. Subnormal inputs and products may be flushed to zero, as AVX512_BF16 and AMX do.
/// Same arguments, checks and threading as gemm().
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc);

/// True if this CPU multiplies bf16 natively (AVX512_BF16) and the active kernel table is AVX-512,
/// so that gemm_bf16 runs at full speed.
bool has_bf16_gemm();

/// True if gemm_bf16 runs on AMX tiles: has_bf16_gemm(), the CPU has AMX_TILE and AMX_BF16, Linux
/// enables them and granted this process their state (asked once, at the first call), and AMX is
/// not switched off (SCHOLAR_AMX=off or set_amx_enabled(false)).
bool has_amx_bf16();

/// Lets gemm_bf16 use AMX tiles where the CPU has them (the default, unless the environment
/// variable SCHOLAR_AMX is off or 0) or holds it to vdpbf16ps: for benchmarks and tests of both
/// paths. Not for use while other threads run products.
void set_amx_enabled(bool enabled);

/// What gemm_bf16 runs on now: "AMX", "AVX512_BF16" or "reference".
std::string_view bf16_gemm_engine();

/// op(B) of a bf16 product packed once into AMX tiles' layout, for products that reuse it (a
/// model's weights during prompts or batches of texts: packing costs about as much as an AMX
/// product of 512 rows). Built by pack_bf16_b; owns its memory (K x N bf16 values, padded);
/// movable; read-only once built, so any number of threads may multiply with it at once.
class PackedBf16B {
 public:
  PackedBf16B() = default;
  /// Depth (rows of op(B)) and columns.
  int64_t rows() const { return K_; }
  int64_t cols() const { return N_; }
  bool empty() const { return words_ == nullptr; }
  /// Bytes held.
  size_t bytes() const { return static_cast<size_t>(words_count_) * sizeof(uint32_t); }

 private:
  friend PackedBf16B pack_bf16_b(bool, int64_t, int64_t, const float*, int64_t);
  friend void gemm_bf16_packed(bool, int64_t, float, const float*, int64_t, const PackedBf16B&,
                               float, float*, int64_t);
  struct Free {
    size_t bytes;  // as allocated
    void operator()(uint32_t* p) const;
  };
  std::unique_ptr<uint32_t[], Free> words_;
  int64_t K_ = 0, N_ = 0, words_count_ = 0;
};

/// Packs op(B), K x N (B[k * ldb + j], or B[j * ldb + k] when trans_b), rounded to bf16, for
/// gemm_bf16_packed. Only where has_amx_bf16() (a ValueError elsewhere: callers fall back to
/// gemm()); ShapeError for negative sizes or a small ldb.
PackedBf16B pack_bf16_b(bool trans_b, int64_t K, int64_t N, const float* B, int64_t ldb);

/// C = alpha op(A) B + beta C (op(A) M x K, C M x N row-major) with B packed by pack_bf16_b: equal
/// bit for bit to gemm_bf16 on AMX tiles with the unpacked operand. Large products are split over
/// the thread pool by rows. Needs has_amx_bf16() still true (ValueError otherwise).
void gemm_bf16_packed(bool trans_a, int64_t M, float alpha, const float* A, int64_t lda,
                      const PackedBf16B& B, float beta, float* C, int64_t ldc);

/// The arithmetic of f32 matrix products, as PyTorch's torch.set_float32_matmul_precision: f32
/// (PyTorch's "highest") or bf16 ("medium": operands rounded to bf16, sums in f32). It is mixed
/// precision training and inference without a second copy of the model: weights, gradients,
/// optimizer moments, norms and softmax stay f32; only the inputs of the products are rounded.
enum class MatmulPrecision : uint8_t { f32, bf16 };

/// "f32" or "bf16".
std::string_view matmul_precision_name(MatmulPrecision p);

/// Sets the precision of every later gemm() in this process, so of matmul, linear layers,
/// attention, training steps and the inference engine's f32 prompt products. bf16 applies only
/// where has_bf16_gemm() is true (elsewhere products stay f32: see effective_matmul_precision()),
/// and only to products with at least two rows and two columns (matrix-vector products are bound
/// by memory, not arithmetic, and stay f32). The initial value comes from the environment variable
/// SCHOLAR_MATMUL_PRECISION (f32 or bf16; a ValueError for anything else), else f32. Not for use
/// while other threads run products.
void set_matmul_precision(MatmulPrecision p);

/// The precision last set (by set_matmul_precision or SCHOLAR_MATMUL_PRECISION).
MatmulPrecision matmul_precision();

/// The precision gemm() actually uses: bf16 if it was set and has_bf16_gemm(), else f32.
MatmulPrecision effective_matmul_precision();

}  // namespace scholar::kernels
