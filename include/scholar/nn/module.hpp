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

 private:
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const;
  int64_t set_trainable(const std::string& pattern, bool on, const char* what);
  std::vector<NamedParameter> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

/// y = x W^T + b. Weight [out, in] (Hugging Face nn.Linear) or [in, out] (GPT-2's Conv1D).
class Linear : public Module {
 public:
  /// Weight and bias start at zero; models initialize them (see TransformerLM).
  Linear(int64_t in, int64_t out, bool bias = true,
         autograd::WeightLayout layout = autograd::WeightLayout::out_in);
  Var forward(const Var& x) const;
  const Var& weight() const noexcept { return weight_; }
  const Var& bias() const noexcept { return bias_; }
  int64_t in_features() const noexcept { return in_; }
  int64_t out_features() const noexcept { return out_; }
  autograd::WeightLayout layout() const noexcept { return layout_; }

 private:
  int64_t in_, out_;
  autograd::WeightLayout layout_;
  Var weight_, bias_;
};

/// Rows of a [V, C] table by token id.
class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim);
  Var forward(const Tensor<int32_t>& ids) const;
  const Var& weight() const noexcept { return weight_; }

 private:
  Var weight_;
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
