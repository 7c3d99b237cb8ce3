// scholar/nn/module.hpp: modules with named parameters, and the basic layers.
//
// A Module owns parameters (autograd Vars that require gradients) under names, and child modules
// under names; named_parameters() joins them with dots, so a GPT-2 block's query/key/value weight
// is "transformer.h.0.attn.c_attn.weight", exactly as in Hugging Face checkpoints. Modules are
// neither copyable nor movable (children are registered by address); create them in place or with
// std::make_unique.
//
// Thread-safety: a module may run forward passes from one thread at a time (training), or from many
// under NoGradGuard once its parameters stop changing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "scholar/autograd/ops.hpp"
#include "scholar/tensor/random.hpp"

namespace scholar::nn {

using autograd::Var;

/// A named parameter.
struct NamedParameter {
  std::string name;
  Var var;
};

/// Base of every layer and model.
class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Every parameter, depth first in registration order, with its full dotted name.
  std::vector<NamedParameter> named_parameters() const;
  /// The parameters alone, in the same order.
  std::vector<Var> parameters() const;
  /// The parameter with this full name; ValueError listing a few names if there is none.
  Var parameter(const std::string& name) const;
  /// Number of scalar parameters (shared parameters counted once).
  int64_t parameter_count() const;
  /// Number of scalar parameters that are trainable (not frozen), shared ones counted once.
  int64_t trainable_parameter_count() const;

  /// This module ("") and every descendant, depth first in registration order, with dotted names
  /// ("transformer", "transformer.h", "transformer.h.0", ...).
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

  /// Freezes the parameters whose full names match `pattern` (an ECMAScript regular expression
  /// matched against the whole name, e.g. "transformer\\.h\\.[0-5]\\..*" for GPT-2's first six
  /// blocks): they get no gradient and optimizers keep no state for them. Returns how many
  /// parameters matched; ValueError if the pattern is not a valid expression or matches nothing
  /// (a typo should not silently train everything).
  int64_t freeze(const std::string& pattern = ".*");
  /// Makes the matching parameters trainable again (same rules as freeze).
  int64_t unfreeze(const std::string& pattern = ".*");
  /// Training mode (dropout active) or evaluation mode; applies to all children.
  void train(bool on = true);
  void eval() { train(false); }
  bool training() const noexcept { return training_; }
  /// Drops every parameter's gradient.
  void zero_grad();

 protected:
  /// Creates a parameter holding `init` (requires a gradient) and returns it.
  Var register_parameter(const std::string& name, Tensor<float> init);
  /// Registers an existing Var (to share one parameter between modules, as tied embeddings do).
  void register_shared(const std::string& name, const Var& var);
  /// Registers a child whose lifetime the derived class manages (a member or a unique_ptr).
  void register_module(const std::string& name, Module& child);
  /// Removes a parameter or a child registered under `name` (ValueError if there is none).
  void unregister_parameter(const std::string& name);
  void unregister_module(const std::string& name);

 private:
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const;
  int64_t set_trainable(const std::string& pattern, bool on, const char* what);
  std::vector<NamedParameter> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

/// The LoRA settings of one layer (nn/lora.hpp's LoraConfig holds them for a whole model).
struct LoraSpec {
  int64_t rank = 8;      ///< r
  double alpha = 8.0;    ///< lora_alpha
  double dropout = 0.0;  ///< on the branch's input, in training
  bool rslora = false;   ///< scale alpha / sqrt(r) (rank-stabilized LoRA) instead of alpha / r
  /// The factor the branch's output is multiplied by.
  double scale() const;
};

/// y = x W^T + b. Weight [out, in] (Hugging Face nn.Linear) or [in, out] (GPT-2's Conv1D).
///
/// A Linear may carry a LoRA adapter (add_lora): children lora_A ([r, in], no bias) and lora_B
/// ([out, r]), so their parameters are named "<layer>.lora_A.weight" and "<layer>.lora_B.weight"
/// as in PEFT's files, and y gains scale * B A dropout(x). Its frozen weight may be kept compact
/// (quantize: f16, bf16, Q8_0 or Q4_0), which is how LoRA trains over a quantized base.
class Linear : public Module {
 public:
  /// Weight and bias start at zero; models initialize them (see TransformerLM).
  Linear(int64_t in, int64_t out, bool bias = true,
         autograd::WeightLayout layout = autograd::WeightLayout::out_in);
  ~Linear() override;
  Var forward(const Var& x) const;
  /// The f32 weight parameter (undefined while quantized).
  const Var& weight() const noexcept { return weight_; }
  const Var& bias() const noexcept { return bias_; }
  int64_t in_features() const noexcept { return in_; }
  int64_t out_features() const noexcept { return out_; }
  autograd::WeightLayout layout() const noexcept { return layout_; }
  /// The weight as f32 in this layer's layout (a conversion when quantized; the parameter's value
  /// otherwise), without any unmerged adapter.
  Tensor<float> dense_weight() const;

  // --- LoRA -------------------------------------------------------------------------------------
  /// Adds an adapter: A drawn as PEFT draws it (kaiming_uniform with a = sqrt(5): U(-1/sqrt(in),
  /// 1/sqrt(in))) from `gen`, B zero, so the layer's output is unchanged until B trains. Dropout
  /// masks come from a generator seeded with `dropout_seed`. ValueError if the layer already has
  /// one, or the rank is < 1 or larger than min(in, out), or alpha <= 0, or dropout outside [0, 1).
  void add_lora(const LoraSpec& spec, Generator& gen, uint64_t dropout_seed = 0);
  /// Removes the adapter (unmerging it first if merged). ValueError if there is none.
  void remove_lora();
  bool has_lora() const noexcept { return lora_ != nullptr; }
  /// The adapter's settings (nullptr without one).
  const LoraSpec* lora_spec() const noexcept;
  /// The adapter's matrices: A [r, in] and B [out, r] (ValueError without an adapter).
  const Var& lora_a() const;
  const Var& lora_b() const;
  /// Adds scale * B A into the weight (re-quantizing a quantized weight), after which forward skips
  /// the branch; unmerge() subtracts it again. ValueError without an adapter, or if already merged
  /// (merge) or not merged (unmerge). With an f32 weight, unmerge restores it to rounding error.
  void merge();
  void unmerge();
  bool merged() const noexcept;

  // --- compact (quantized) frozen weight ---------------------------------------------------------
  /// Stores the weight as `type` and drops the f32 parameter: the weight is frozen from here on
  /// (gradients still flow to the input, the bias and an adapter). ShapeError if `in` is not a
  /// multiple of the type's block length; ValueError for f32 or if already quantized.
  void quantize(WeightType type);
  /// Converts a quantized weight back to an f32 parameter (frozen). ValueError if not quantized.
  void dequantize();
  bool quantized() const noexcept { return compact_ != nullptr; }
  /// The compact weight ([out, in] rows), or null.
  const std::shared_ptr<const autograd::QuantizedWeight>& compact_weight() const noexcept {
    return compact_;
  }

 private:
  struct Lora;
  void shift_by_delta(float sign);  // weight += sign * scale * B A (re-quantized if compact)
  int64_t in_, out_;
  autograd::WeightLayout layout_;
  Var weight_, bias_;
  std::shared_ptr<const autograd::QuantizedWeight> compact_;
  std::unique_ptr<Lora> lora_;
};

/// Rows of a [V, C] table by token id.
class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim);
  Var forward(const Tensor<int32_t>& ids) const;
  /// The f32 table parameter (undefined while quantized).
  const Var& weight() const noexcept { return weight_; }

  /// Stores the frozen table as `type` (Q8_0, Q4_0, f16, bf16) and drops the f32 parameter: rows
  /// are converted as they are looked up, and a tied output head multiplies by the compact table.
  /// ValueError if the table still trains, for f32, or if already quantized; ShapeError if the
  /// width is not a multiple of the type's block length.
  void quantize(WeightType type);
  bool quantized() const noexcept { return compact_ != nullptr; }
  /// The compact table ([V, C] rows), or null.
  const std::shared_ptr<const autograd::QuantizedWeight>& compact_weight() const noexcept {
    return compact_;
  }

 private:
  Var weight_;
  std::shared_ptr<const autograd::QuantizedWeight> compact_;
};

/// LayerNorm over the last dimension (weight 1, bias 0 at start).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, float eps = 1e-5f, bool bias = true);
  Var forward(const Var& x) const;

 private:
  float eps_;
  Var weight_, bias_;
};

/// RMSNorm over the last dimension (weight 1 at start).
class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, float eps = 1e-6f);
  Var forward(const Var& x) const;

 private:
  float eps_;
  Var weight_;
};

}  // namespace scholar::nn
