// scholar/train/objective.hpp: what the Trainer minimises, and teachers for distillation.
//
// The Trainer draws micro-batches and hands each to an Objective, which returns the loss to
// differentiate and, for logs, its named parts. The default is the language-model cross-entropy;
// scholar::distill provides the distillation objectives. A Teacher is anything that gives logits
// for a batch of windows: an nn::TransformerLM (ModuleTeacher, here) or an infer::Model
// (infer::ModelTeacher, which train cannot name, hence the interface).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scholar/autograd/var.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/tensor/random.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/train/data.hpp"

namespace scholar::train {

/// Named parts of a loss (for example {"kd", 1.2}, {"ce", 3.4}), each a mean over the micro-batch.
using LossParts = std::vector<std::pair<std::string, double>>;

/// What the Trainer minimises. Implementations may keep state (a teacher, a cache); the Trainer
/// calls them from the thread that runs fit(), one micro-batch at a time.
class Objective {
 public:
  virtual ~Objective() = default;
  /// The loss of one micro-batch to differentiate. `model` is in training mode; dropout masks
  /// come from `dropout`. Named parts go to `parts` (the Trainer averages them over the step).
  virtual autograd::Var loss(nn::TransformerLM& model, const Batch& batch, Generator* dropout,
                             LossParts& parts) = 0;
  /// True if batches must be whole fixed windows (TokenDataset::window_batch), as per-window data
  /// such as a soft-label cache needs.
  virtual bool fixed_windows() const { return false; }
  /// A short name for logs ("lm", "distill").
  virtual std::string name() const = 0;
  /// Identifies what this objective computes (its settings and any teacher), so the ranks of a
  /// data-parallel run can check that they agree. Default: name().
  virtual std::string fingerprint() const { return name(); }
};

/// The default objective: mean cross-entropy of the model's logits against the targets.
class LmObjective final : public Objective {
 public:
  autograd::Var loss(nn::TransformerLM& model, const Batch& batch, Generator* dropout,
                     LossParts& parts) override;
  std::string name() const override { return "lm"; }
};

/// Gives a teacher's logits for batches of token windows, for distillation. Not differentiated.
class Teacher {
 public:
  virtual ~Teacher() = default;
  /// Logits [B, T, vocab_size()] for windows [B, T] (each window is an independent sequence
  /// starting at position 0).
  virtual Tensor<float> logits(const Tensor<int32_t>& windows) = 0;
  /// The logits' last dimension (may exceed the tokenizer's token count: a padded vocabulary).
  virtual int64_t vocab_size() const = 0;
  /// The longest window the teacher takes.
  virtual int64_t context_length() const = 0;
  /// The teacher's tokenizer, if it has one (for the vocabulary check); not owned.
  virtual const text::Tokenizer* tokenizer() const = 0;
  /// Identifies the teacher's weights and configuration (for soft-label caches): equal
  /// fingerprints mean equal logits.
  virtual std::string fingerprint() const = 0;
  /// For messages: "nn::TransformerLM (llama, 6 layers x 384)", a file path, ...
  virtual std::string describe() const = 0;
};

/// A TransformerLM as a teacher: its forward pass without a graph, in evaluation mode (logits()
/// switches the model to evaluation mode and back). The model (and tokenizer) must outlive the
/// teacher and must not change while it is used: its fingerprint is computed once, from the
/// weights, at construction. Thread-safety: one thread at a time (logits() flips the model's mode).
class ModuleTeacher final : public Teacher {
 public:
  explicit ModuleTeacher(nn::TransformerLM& model, const text::Tokenizer* tokenizer = nullptr);
  Tensor<float> logits(const Tensor<int32_t>& windows) override;
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t context_length() const override { return model_.config().context_length; }
  const text::Tokenizer* tokenizer() const override { return tokenizer_; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override;

 private:
  nn::TransformerLM& model_;
  const text::Tokenizer* tokenizer_;
  std::string fingerprint_;
};

/// A fingerprint of a TransformerLM: its config, every parameter's name and bytes, and its
/// quantized frozen weights (a 64-bit FNV-1a-style hash over 8-byte words, 16 hex digits; not
/// cryptographic).
std::string module_fingerprint(const nn::TransformerLM& model);

}  // namespace scholar::train
