// The default objective, and a TransformerLM as a teacher.
#include "scholar/train/objective.hpp"

#include "core/digest.hpp"
#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "train/data_parallel.hpp"

namespace scholar::train {

autograd::Var LmObjective::loss(nn::TransformerLM& model, const Batch& batch, Generator* dropout,
                                LossParts& /*parts*/) {
  return model.loss(batch.inputs, batch.targets, dropout,
                    batch.segments.defined() ? &batch.segments : nullptr);
}

std::string module_fingerprint(const nn::TransformerLM& model) {
  scholar::detail::Digest d;
  d.text(model.config().to_json().dump());
  for (const auto& p : model.named_parameters()) {
    d.text(p.name);
    const Tensor<float> v = p.var.value().contiguous();
    d.bytes(v.data(), static_cast<size_t>(v.numel()) * sizeof(float));
  }
  detail::digest_compact_weights(d, model);  // a quantized base is not a parameter
  return d.hex();
}

ModuleTeacher::ModuleTeacher(nn::TransformerLM& model, const text::Tokenizer* tokenizer)
    : model_(model), tokenizer_(tokenizer), fingerprint_(module_fingerprint(model)) {}

Tensor<float> ModuleTeacher::logits(const Tensor<int32_t>& windows) {
  if (windows.rank() != 2)
    fail<ShapeError>("ModuleTeacher: windows must be [B, T], got ", windows.shape().str());
  if (windows.size(1) > context_length())
    fail<ValueError>("ModuleTeacher: windows of ", windows.size(1),
                     " tokens exceed the teacher's context length ", context_length());
  autograd::NoGradGuard no_grad;
  const bool was_training = model_.training();
  model_.eval();
  struct Restore {
    nn::TransformerLM& m;
    bool on;
    ~Restore() { m.train(on); }
  } restore{model_, was_training};
  return model_.forward(windows).value();
}

std::string ModuleTeacher::describe() const {
  const auto& c = model_.config();
  return std::string("nn::TransformerLM (") +
         (c.family == nn::TransformerConfig::Family::gpt2 ? "gpt2" : "llama") + ", " +
         std::to_string(c.n_layers) + " layers x " + std::to_string(c.n_embd) + ")";
}

}  // namespace scholar::train
