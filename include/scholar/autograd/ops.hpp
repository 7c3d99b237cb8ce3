// scholar/autograd/ops.hpp: differentiable operations on Vars.
//
// Each operation is coarse (a layer-sized piece of work), so the graph's bookkeeping stays small
// beside the arithmetic. Forward and backward of an operation are written side by side in one
// source file (src/autograd/). Shapes use the legend B batch, T time, C channels, V vocabulary,
// H heads, D head dimension, N rows. Shape errors name the operation and the shapes involved.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "scholar/autograd/var.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/tensor/random.hpp"

namespace scholar::autograd {

// --- products ------------------------------------------------------------------------------------

/// Matrix product with tensor matmul's rules: [M, K] x [K, N], or batched [B, M, K] x [B, K, N]
/// with a batch of 1 (or a 2-D operand) broadcast. Gradients of broadcast operands are summed.
Var matmul(const Var& a, const Var& b);

/// Weight layouts for linear(): Hugging Face's nn.Linear stores [out, in]; GPT-2's Conv1D stores
/// [in, out].
enum class WeightLayout : uint8_t { out_in, in_out };

/// y = x W^T + b for x [..., in], W [out, in] (or [in, out] with WeightLayout::in_out), b [out]
/// (an undefined Var for none) -> y [..., out].
Var linear(const Var& x, const Var& weight, const Var& bias = {},
           WeightLayout layout = WeightLayout::out_in);

/// A frozen weight matrix kept in a compact storage type (f16, bf16, Q8_0, Q4_0; scholar/tensor/
/// quant.hpp) as rows of `cols` values, one row per output ([out, in], whatever the layout it came
/// from). Products with it convert a panel of rows at a time to f32, so no f32 copy of the whole
/// matrix exists. Immutable once built; share it with std::shared_ptr.
struct QuantizedWeight {
  WeightType type = WeightType::q8_0;
  int64_t rows = 0;  ///< out
  int64_t cols = 0;  ///< in (a multiple of the type's block length)
  std::vector<uint8_t> bytes;

  /// Stores w ([out, in]; pass the transpose of an [in, out] weight) as `type`, with ggml's
  /// reference rounding for the block formats. ShapeError if w is not 2-D or its rows are not a
  /// whole number of blocks.
  static QuantizedWeight quantize(const Tensor<float>& w, WeightType type);
  /// The matrix back in f32, [rows, cols].
  Tensor<float> dequantize() const;
};

/// y = x W^T + b with a frozen W stored compactly (QuantizedWeight): gradients flow to x and b
/// only. The input gradient dy W is computed panel by panel as the forward product is.
Var linear(const Var& x, const std::shared_ptr<const QuantizedWeight>& weight,
           const Var& bias = {});

/// The low-rank branch of a LoRA layer (Hu et al. 2021, PEFT's lora.Linear): A [r, in] and B
/// [out, r] (PEFT's lora_A.weight and lora_B.weight), scale = lora_alpha / r (or / sqrt(r) with
/// rsLoRA), and dropout on the branch's input with probability `dropout` in training.
struct LoraBranch {
  Var a, b;
  float scale = 1.0f;
  float dropout = 0.0f;
  Generator* gen = nullptr;  ///< dropout masks (required when dropout > 0 and training)
  bool training = true;
};

/// y = x W^T + b + scale * dropout(x) A^T B^T, fused: the branch adds into the base product in
/// place and backward forms dy B once for the input gradient and both adapter gradients. W is a
/// Var (layout as linear()) or a frozen QuantizedWeight (QLoRA).
Var lora_linear(const Var& x, const Var& weight, const Var& bias, WeightLayout layout,
                const LoraBranch& lora);
Var lora_linear(const Var& x, const std::shared_ptr<const QuantizedWeight>& weight, const Var& bias,
                const LoraBranch& lora);

// --- elementwise (NumPy broadcasting; gradients are summed back to each input's shape) -----------

Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
/// a * s
Var scale(const Var& a, float s);
inline Var operator+(const Var& a, const Var& b) {
  return add(a, b);
}
inline Var operator-(const Var& a, const Var& b) {
  return sub(a, b);
}
inline Var operator*(const Var& a, const Var& b) {
  return mul(a, b);
}
inline Var operator*(const Var& a, float s) {
  return scale(a, s);
}

/// Sum of all elements (a scalar).
Var sum(const Var& a);
/// Mean of all elements (a scalar).
Var mean(const Var& a);

// --- activations ---------------------------------------------------------------------------------

/// GELU, tanh form (GPT-2).
Var gelu(const Var& x);
/// GELU, exact form x Phi(x) (BERT; PyTorch's F.gelu default).
Var gelu_erf(const Var& x);
/// SiLU: x sigmoid(x).
Var silu(const Var& x);
/// SwiGLU: silu(gate) * up, same shapes.
Var swiglu(const Var& gate, const Var& up);
/// Each row over the last dimension divided by its Euclidean length (at least 1e-12, as
/// torch.nn.functional.normalize): unit vectors for cosine similarities.
Var l2_normalize(const Var& x);
/// Softmax along the last dimension.
Var softmax(const Var& x);
/// Log-softmax along the last dimension.
Var log_softmax(const Var& x);
/// Inverted dropout: zeroes each element with probability p and scales the rest by 1 / (1 - p).
/// Identity when !training or p == 0. The mask comes from gen (seeded, reproducible).
Var dropout(const Var& x, float p, Generator& gen, bool training = true);

// --- normalization -------------------------------------------------------------------------------

/// LayerNorm over the last dimension: x [..., C], weight [C], bias [C] (undefined for none).
Var layernorm(const Var& x, const Var& weight, const Var& bias, float eps = 1e-5f);
/// RMSNorm over the last dimension: x [..., C], weight [C].
Var rmsnorm(const Var& x, const Var& weight, float eps = 1e-6f);

// --- embedding, shapes ---------------------------------------------------------------------------

/// Rows of table [V, C] for ids of any shape -> [ids..., C]. IndexError for an id outside [0, V).
Var embedding(const Tensor<int32_t>& ids, const Var& table);
/// A view of x with a new shape (one entry may be -1); copies if the strides need it.
Var reshape(const Var& x, const Shape& shape);
/// Swaps two dimensions (the result is made contiguous).
Var transpose(const Var& x, int d0, int d1);
/// Elements [start, stop) along dim (negative values count from the end).
Var slice(const Var& x, int dim, int64_t start, int64_t stop);
/// Joins Vars along dim; all other dimensions must agree.
Var concat(const std::vector<Var>& parts, int dim);

// --- attention -----------------------------------------------------------------------------------

/// Rotary position embedding applied inside attention().
struct Rope {
  bool enabled = false;
  double theta = 10000.0;  ///< base: 10000 (GPT-NeoX, Llama 2), 500000 (Llama 3), 1e6 (Qwen2)
  kernels::RopeStyle style = kernels::RopeStyle::half;
  int64_t position_offset = 0;  ///< position of the first time step
  /// RoPE scaling: each pair's frequency is divided by its factor (head_dim / 2 positive values,
  /// TransformerConfig::rope_freq_factors()); empty: unscaled.
  std::vector<float> freq_factors;
};

/// Options for attention().
struct AttentionOptions {
  int64_t n_heads = 1;
  int64_t n_kv_heads = 0;  ///< grouped-query attention; 0 means n_heads
  bool causal = true;
  Rope rope;
  /// Optional additive mask, [T, T] or [B, T, T] (0 to keep, -inf to block), applied after scaling.
  const Tensor<float>* mask = nullptr;
};

/// Multi-head self-attention core: q [B, T, H*D], k and v [B, T, Hkv*D] -> [B, T, H*D], with
/// softmax(q k^T / sqrt(D) + mask) v per head (each group of H/Hkv query heads shares a key/value
/// head), rotary embeddings on q and k when enabled, and a causal mask when asked.
Var attention(const Var& q, const Var& k, const Var& v, const AttentionOptions& options);

// --- losses --------------------------------------------------------------------------------------

/// Mean cross-entropy of logits [N, V] (or [B, T, V]) against targets [N] (or [B, T]), over the
/// targets that are not ignore_index. Fused: the softmax gradient is formed during the forward
/// pass. IndexError for a target outside [0, V) other than ignore_index; ValueError if all are
/// ignored.
Var cross_entropy(const Var& logits, const Tensor<int32_t>& targets, int32_t ignore_index = -100);

/// The divergence distill_loss measures between the teacher's softened distribution p and the
/// student's q (both at the temperature).
enum class Divergence : uint8_t {
  forward_kl,  ///< KL(p || q) = sum p (log p - log q): Hinton's loss (mass-covering)
  reverse_kl,  ///< KL(q || p) = sum q (log q - log p): mode-seeking (MiniLLM)
  /// Generalized Jensen-Shannon as Hugging Face TRL's GKD trainer defines it:
  /// beta KL(p || m) + (1 - beta) KL(q || m) with m = beta p + (1 - beta) q; beta = 0 is taken as
  /// forward KL and beta = 1 as reverse KL (TRL's special cases).
  jsd,
};

/// "forward_kl", "reverse_kl", "jsd"
std::string_view divergence_name(Divergence d) noexcept;
/// The inverse of divergence_name; ValueError naming the choices otherwise.
Divergence parse_divergence(std::string_view name);

/// Settings of distill_loss.
struct DistillOptions {
  float temperature = 2.0f;  ///< T > 0: both sides' logits are divided by it
  float alpha = 0.5f;        ///< weight of the soft term, in [0, 1]; 1 - alpha weighs the hard term
  Divergence divergence = Divergence::forward_kl;
  float beta = 0.5f;  ///< for Divergence::jsd, in [0, 1]
  int32_t ignore_index = -100;

  /// ValueError naming the bad field.
  void validate() const;
};

/// The teacher's side of distill_loss, for the same positions as the student's logits: either the
/// full logits, or the top K of its distribution (a soft-label cache).
///
/// Top K: the teacher's log-probabilities at the loss's temperature, log softmax(t / T), at K ids
/// per position (id -1 marks an unused slot). Everything outside the K ids is kept as one "tail"
/// bucket holding the rest of the mass, 1 - sum of the K probabilities, on both sides: the
/// divergence is then the one between these K + 1 bucket distributions, a lower bound of the
/// full-vocabulary divergence that equals it when the tail holds no mass. Tail masses are floored
/// at 1e-12 where their logarithm is taken.
struct SoftTargets {
  Tensor<float> logits;         ///< [..., V] full teacher logits (before the temperature), or
  Tensor<int32_t> top_ids;      ///< [..., K] ids in [0, V) or -1, distinct within a position
  Tensor<float> top_log_probs;  ///< [..., K] log softmax(teacher / T) at top_ids

  static SoftTargets full(Tensor<float> logits) { return {std::move(logits), {}, {}}; }
  static SoftTargets top_k(Tensor<int32_t> ids, Tensor<float> log_probs) {
    return {{}, std::move(ids), std::move(log_probs)};
  }
  bool is_top_k() const noexcept { return top_ids.defined(); }
};

/// The two parts of a distillation loss, means over the kept positions (for logs).
struct DistillTerms {
  double soft = 0;  ///< the divergence D at the temperature (before the T^2 factor)
  double hard = 0;  ///< cross-entropy of the student (at temperature 1) against the targets
};

/// Knowledge-distillation loss of student logits [N, V] (or [B, T, V]):
///   alpha * T^2 * D(teacher_T, student_T) + (1 - alpha) * cross_entropy(student, targets),
/// D and the cross-entropy each a mean over the positions whose target is not ignore_index
/// (targets [N] or [B, T]). The T^2 factor keeps the soft term's gradient scale independent of T
/// (Hinton et al. 2015). Fused and row by row: no [N, V] temporary besides the gradient itself.
/// Writes the two parts to `terms` when it is not null. ShapeError for mismatched shapes,
/// IndexError for an id or target outside [0, V), ValueError for bad options or if every target
/// is ignored.
Var distill_loss(const Var& student_logits, const SoftTargets& teacher,
                 const Tensor<int32_t>& targets, const DistillOptions& options = {},
                 DistillTerms* terms = nullptr);

}  // namespace scholar::autograd
