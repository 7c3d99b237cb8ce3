// An inference model as a distillation teacher: windows as sequences of one batched decode.
#include "scholar/infer/teacher.hpp"

#include <algorithm>
#include <cstring>

#include "core/digest.hpp"
#include "scholar/error.hpp"

namespace scholar::infer {

std::string model_fingerprint(const Model& model) {
  detail::Digest d;
  d.text(model.arch().to_json().dump());
  d.word(static_cast<uint64_t>(model.config().rope_style));
  for_each_weight(model.weights(), [&](const Weight& w) {
    d.text(w.name);
    d.word(static_cast<uint64_t>(w.type));
    d.word(static_cast<uint64_t>(w.rows));
    d.word(static_cast<uint64_t>(w.cols));
    if (!w.empty()) d.bytes(w.data, w.bytes());
  });
  return d.hex();
}

ModelTeacher::ModelTeacher(std::shared_ptr<const Model> model, int64_t max_tokens, ThreadPool* pool)
    : model_(std::move(model)), max_tokens_(max_tokens), pool_(pool) {
  if (!model_) fail<ValueError>("ModelTeacher: no model");
  if (max_tokens_ < 1)
    fail<ValueError>("ModelTeacher: max_tokens must be positive, got ", max_tokens_);
}

ModelTeacher::~ModelTeacher() = default;

std::string ModelTeacher::fingerprint() const {
  if (fingerprint_.empty()) fingerprint_ = model_fingerprint(*model_);
  return fingerprint_;
}

Tensor<float> ModelTeacher::logits(const Tensor<int32_t>& windows) {
  if (windows.rank() != 2)
    fail<ShapeError>("ModelTeacher: windows must be [B, T], got ", windows.shape().str());
  const Tensor<int32_t> w = windows.contiguous();
  const int64_t B = w.size(0), T = w.size(1), V = vocab_size();
  if (T > context_length())
    fail<ValueError>("ModelTeacher: windows of ", T, " tokens exceed the context length ",
                     context_length(), " of ", describe());
  if (T > max_tokens_)
    fail<ValueError>("ModelTeacher: a window of ", T, " tokens exceeds max_tokens ", max_tokens_);
  // Windows per decode: as many as fit max_tokens, at most 64 sequences.
  const int64_t group = std::min<int64_t>({B, max_tokens_ / T, 64});
  const int64_t tokens = group * T;
  if (!session_ || session_tokens_ < tokens) {
    session_ = std::make_unique<Session>(
        model_,
        SessionOptions{.n_ctx = tokens, .max_batch = tokens, .max_sequences = 64, .pool = pool_});
    session_tokens_ = tokens;
  }
  Tensor<float> out = Tensor<float>::empty({B, T, V});
  Batch batch;
  for (int64_t b0 = 0; b0 < B; b0 += group) {
    const int64_t n = std::min(group, B - b0);
    batch.clear();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t t = 0; t < T; ++t)
        batch.add(w.data()[(b0 + b) * T + t], t, static_cast<int32_t>(b), true);
    session_->clear();
    const std::span<const float> rows = session_->decode(batch);
    std::memcpy(out.data() + b0 * T * V, rows.data(),
                static_cast<size_t>(n * T * V) * sizeof(float));
  }
  return out;
}

}  // namespace scholar::infer
