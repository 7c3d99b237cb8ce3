// scholar/infer/teacher.hpp: an inference model as a distillation teacher.
//
//   auto big = infer::Model::load("teacher.gguf");     // any file Model::load reads, quantized too
//   infer::ModelTeacher teacher(big);
//   Tensor<float> logits = teacher.logits(windows);     // [B, T] -> [B, T, V]
//
// Each call runs the windows as independent sequences of one batched decode (every token's logits
// flagged), never token by token, on the inference engine's kernels.
#pragma once

#include <memory>
#include <string>

#include "scholar/infer/model.hpp"
#include "scholar/train/objective.hpp"

namespace scholar::infer {

/// train::Teacher over an infer::Model.
///
/// Thread-safety: one thread at a time (it owns a Session); the Model may be shared.
class ModelTeacher final : public train::Teacher {
 public:
  /// `max_tokens`: most tokens per batched decode (windows are grouped up to it; a window longer
  /// than it is a ValueError). `pool`: the pool to run on (null: the caller's current pool).
  explicit ModelTeacher(std::shared_ptr<const Model> model, int64_t max_tokens = 2048,
                        ThreadPool* pool = nullptr);
  ~ModelTeacher() override;

  Tensor<float> logits(const Tensor<int32_t>& windows) override;
  int64_t vocab_size() const override { return model_->arch().vocab_size; }
  int64_t context_length() const override { return model_->arch().context_length; }
  const text::Tokenizer* tokenizer() const override { return model_->tokenizer_ptr().get(); }
  /// Computed on first use from the config and every weight's type, shape and bytes.
  std::string fingerprint() const override;
  std::string describe() const override { return model_->source(); }

 private:
  std::shared_ptr<const Model> model_;
  int64_t max_tokens_;
  ThreadPool* pool_;
  std::unique_ptr<Session> session_;
  int64_t session_tokens_ = 0;
  mutable std::string fingerprint_;
};

/// A fingerprint of a Model's weights: config, rope layout, and each weight's name, type, shape
/// and bytes (16 hex digits; not cryptographic).
std::string model_fingerprint(const Model& model);

}  // namespace scholar::infer
