// nn::Encoder: BERT on autograd (post-norm blocks, bidirectional attention with a padding mask).
#include "scholar/nn/encoder.hpp"

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/text/tokenizer.hpp"

namespace scholar::nn {

namespace ag = scholar::autograd;

// One post-norm block, with Hugging Face's module names.
struct Encoder::Layer : Module {
  struct Holder : Module {
    using Module::register_module;
  };
  Linear query, key, value, attn_out, intermediate, output;
  LayerNorm attn_norm, out_norm;
  Holder attention, self, attention_output, intermediate_holder, output_holder;
  const TransformerConfig& cfg;

  explicit Layer(const TransformerConfig& c)
      : query(c.n_embd, c.n_embd),
        key(c.n_embd, c.n_embd),
        value(c.n_embd, c.n_embd),
        attn_out(c.n_embd, c.n_embd),
        intermediate(c.n_embd, c.mlp_hidden()),
        output(c.mlp_hidden(), c.n_embd),
        attn_norm(c.n_embd, c.norm_eps),
        out_norm(c.n_embd, c.norm_eps),
        cfg(c) {
    self.register_module("query", query);
    self.register_module("key", key);
    self.register_module("value", value);
    attention_output.register_module("dense", attn_out);
    attention_output.register_module("LayerNorm", attn_norm);
    attention.register_module("self", self);
    attention.register_module("output", attention_output);
    intermediate_holder.register_module("dense", intermediate);
    output_holder.register_module("dense", output);
    output_holder.register_module("LayerNorm", out_norm);
    register_module("attention", attention);
    register_module("intermediate", intermediate_holder);
    register_module("output", output_holder);
  }

  Var forward(const Var& x, const Tensor<float>& mask, Generator* gen) const {
    auto drop = [&](const Var& v) {
      if (cfg.dropout == 0.0f || !training()) return v;
      return ag::dropout(v, cfg.dropout, *gen, true);
    };
    ag::AttentionOptions opt;
    opt.n_heads = cfg.n_heads;
    opt.causal = false;
    opt.mask = &mask;
    const Var a = ag::attention(query.forward(x), key.forward(x), value.forward(x), opt);
    const Var h = attn_norm.forward(ag::add(x, drop(attn_out.forward(a))));
    const Var f = output.forward(ag::gelu_erf(intermediate.forward(h)));
    return out_norm.forward(ag::add(h, drop(f)));
  }
};

Encoder::Encoder(const TransformerConfig& cfg, uint64_t seed) : cfg_(cfg) {
  cfg.validate();
  if (!cfg.is_encoder())
    fail<ValueError>("Encoder: the config is of a decoder family (model_type '", cfg.model_type,
                     "'); nn::Encoder runs the BERT family");
  const int64_t C = cfg.n_embd;
  word_ = std::make_unique<Embedding>(cfg.vocab_size, C);
  position_ = std::make_unique<Embedding>(cfg.context_length, C);
  token_type_ = std::make_unique<Embedding>(cfg.type_vocab_size, C);
  embd_norm_ = std::make_unique<LayerNorm>(C, cfg.norm_eps);
  embeddings_.register_module("word_embeddings", *word_);
  embeddings_.register_module("position_embeddings", *position_);
  embeddings_.register_module("token_type_embeddings", *token_type_);
  embeddings_.register_module("LayerNorm", *embd_norm_);
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    layers_.push_back(std::make_unique<Layer>(cfg_));
    layer_list_.register_module(std::to_string(i), *layers_.back());
  }
  encoder_.register_module("layer", layer_list_);
  register_module("embeddings", embeddings_);
  register_module("encoder", encoder_);
  // BERT's initialization (BertPreTrainedModel._init_weights), in parameter order.
  Generator gen(seed);
  for (const NamedParameter& p : named_parameters()) {
    Tensor<float> value = p.var.value();
    if (value.rank() == 1) continue;  // biases 0, LayerNorm weights 1
    normal_(value, gen, 0.0f, 0.02f);
  }
}

Encoder::~Encoder() = default;

Var Encoder::forward(const Tensor<int32_t>& ids, std::span<const int64_t> lengths,
                     Generator* dropout_gen) const {
  if (ids.rank() != 2) fail<ShapeError>("Encoder: ids must be [B, T], got ", ids.shape().str());
  const int64_t B = ids.size(0), T = ids.size(1);
  if (B < 1 || T < 1) fail<ShapeError>("Encoder: empty batch ", ids.shape().str());
  if (T > cfg_.context_length)
    fail<ShapeError>("Encoder: sequences of ", T, " tokens exceed the context length ",
                     cfg_.context_length);
  if (static_cast<int64_t>(lengths.size()) != B)
    fail<ShapeError>("Encoder: ", lengths.size(), " lengths for a batch of ", B);
  for (int64_t b = 0; b < B; ++b)
    if (lengths[static_cast<size_t>(b)] < 1 || lengths[static_cast<size_t>(b)] > T)
      fail<ValueError>("Encoder: row ", b, " has length ", lengths[static_cast<size_t>(b)],
                       ", outside [1, ", T, "]");
  if (training() && cfg_.dropout > 0.0f && !dropout_gen)
    fail<ValueError>("Encoder: dropout is on, so training needs a Generator");
  // Padding keys are hidden from every query.
  Tensor<float> mask = Tensor<float>::zeros({B, T, T});
  const float blocked = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = lengths[static_cast<size_t>(b)]; j < T; ++j)
        mask.data()[(b * T + i) * T + j] = blocked;
  // Embeddings: words + positions + token type 0, then LayerNorm. Padding ids may be anything
  // in the vocabulary; ids outside it are an error from the embedding.
  Tensor<int32_t> pos = Tensor<int32_t>::empty({1, T});
  for (int64_t t = 0; t < T; ++t) pos.data()[t] = static_cast<int32_t>(t);
  Tensor<int32_t> type = Tensor<int32_t>::zeros({1, 1});
  Var x = ag::add(word_->forward(ids), position_->forward(pos));
  x = embd_norm_->forward(ag::add(x, token_type_->forward(type)));
  if (cfg_.dropout > 0.0f && training()) x = ag::dropout(x, cfg_.dropout, *dropout_gen, true);
  for (const auto& layer : layers_) x = layer->forward(x, mask, dropout_gen);
  return x;
}

Var Encoder::embed(const Tensor<int32_t>& ids, std::span<const int64_t> lengths, bool normalize,
                   Generator* dropout_gen) const {
  const Var h = forward(ids, lengths, dropout_gen);  // [B, T, C]
  const int64_t B = ids.size(0), T = ids.size(1);
  // Mean pooling as a product: weights [B, 1, T] of 1 / length over each row's real tokens.
  Tensor<float> w = Tensor<float>::zeros({B, 1, T});
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths[static_cast<size_t>(b)];
    for (int64_t t = 0; t < n; ++t) w.data()[b * T + t] = 1.0f / static_cast<float>(n);
  }
  const Var pooled = ag::reshape(ag::matmul(Var(w), h), Shape{B, cfg_.n_embd});
  return normalize ? ag::l2_normalize(pooled) : pooled;
}

void Encoder::load_weights(const std::vector<std::pair<std::string, Tensor<float>>>& weights,
                           bool allow_extra) {
  std::map<std::string, const Tensor<float>*> by_name;
  for (const auto& [name, t] : weights)
    by_name[name.starts_with("bert.") ? name.substr(5) : name] = &t;
  const auto params = named_parameters();
  for (const NamedParameter& p : params) {
    auto it = by_name.find(p.name);
    if (it == by_name.end())
      fail<FormatError>("Encoder::load_weights: missing parameter '", p.name, "'");
    if (!(it->second->shape() == p.var.shape()))
      fail<ShapeError>("Encoder::load_weights: parameter '", p.name, "' has shape ",
                       it->second->shape().str(), " in the weights but ", p.var.shape().str(),
                       " in the model");
  }
  if (!allow_extra)
    for (const auto& [name, t] : by_name) {
      bool known = false;
      for (const NamedParameter& p : params) known = known || p.name == name;
      if (!known)
        fail<FormatError>("Encoder::load_weights: '", name, "' is not a parameter of this model");
    }
  for (const NamedParameter& p : params) p.var.value().copy_from(*by_name.at(p.name));
}

void save_hf_dir(const Encoder& encoder, const std::string& dir, const text::Tokenizer* tokenizer) {
  std::filesystem::create_directories(dir);
  const std::filesystem::path d(dir);
  io::SafetensorsWriter w;
  for (const auto& p : encoder.named_parameters()) w.add(p.name, p.var.value());
  w.set_metadata("format", "pt");
  w.save((d / "model.safetensors").string());
  io::write_file_atomic((d / "config.json").string(), encoder.config().to_json().dump(1) + "\n");
  if (tokenizer) tokenizer->save((d / "tokenizer.json").string());
}

}  // namespace scholar::nn
