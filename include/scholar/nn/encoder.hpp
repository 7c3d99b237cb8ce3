// scholar/nn/encoder.hpp: the trainable BERT encoder (the encoder family of the architecture
// tables), for training sentence embedders (rag::train_embedder) and fine-tuning pretrained ones.
//
// Layout and parameter names are Hugging Face's BertModel (as sentence-transformers saves it):
//   embeddings.{word,position,token_type}_embeddings.weight, embeddings.LayerNorm.{weight,bias},
//   encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias},
//   encoder.layer.{i}.attention.output.dense.*, encoder.layer.{i}.attention.output.LayerNorm.*,
//   encoder.layer.{i}.intermediate.dense.*, encoder.layer.{i}.output.dense.*,
//   encoder.layer.{i}.output.LayerNorm.*
// A block is post-norm: x = LN(x + attn(x)), then x = LN(x + W2 gelu(W1 x)), GELU in its exact
// erf form; attention sees the whole sequence except padding.
//
//   nn::Encoder enc(nn::TransformerConfig::bert(vocab, 128, 4, 256, 4, 1024), /*seed=*/1);
//   Var h = enc.forward(ids, lengths);            // ids [B, T] padded -> states [B, T, C]
//   Var v = enc.embed(ids, lengths);              // mean over each row's tokens, L2-normalized
//   nn::save_hf_dir(enc, "my-encoder", &tok);     // config.json, model.safetensors, tokenizer
//
// Thread-safety: as Module (forward passes build graphs; one training thread at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scholar/nn/module.hpp"
#include "scholar/nn/transformer.hpp"

namespace scholar::nn {

/// A BERT-family encoder.
class Encoder : public Module {
 public:
  /// Builds the encoder with BERT's initialization from `seed`: matrices and embeddings N(0,
  /// 0.02), biases 0, LayerNorm weights 1. ValueError unless cfg is of the BERT family.
  explicit Encoder(const TransformerConfig& cfg, uint64_t seed = 0);
  ~Encoder() override;

  /// ids [B, T], each row's first lengths[b] tokens real and the rest padding (any id; attention
  /// never looks at them) -> the last block's states [B, T, C]. Padding rows' states are
  /// computed but mean nothing. dropout_gen supplies dropout masks in training mode.
  Var forward(const Tensor<int32_t>& ids, std::span<const int64_t> lengths,
              Generator* dropout_gen = nullptr) const;
  /// Sentence vectors [B, C]: the mean of each row's real token states (sentence-transformers'
  /// mean pooling), L2-normalized when `normalize`.
  Var embed(const Tensor<int32_t>& ids, std::span<const int64_t> lengths, bool normalize = true,
            Generator* dropout_gen = nullptr) const;

  const TransformerConfig& config() const noexcept { return cfg_; }
  /// As TransformerLM::load_weights (Hugging Face BertModel names; "bert."-prefixed names and
  /// BertModel's pooler are accepted and ignored when allow_extra).
  void load_weights(const std::vector<std::pair<std::string, Tensor<float>>>& weights,
                    bool allow_extra = false);

 private:
  struct Layer;
  TransformerConfig cfg_;
  std::unique_ptr<Embedding> word_, position_, token_type_;
  std::unique_ptr<LayerNorm> embd_norm_;
  std::vector<std::unique_ptr<Layer>> layers_;
  struct Holder : Module {
    using Module::register_module;
  };
  Holder embeddings_, encoder_, layer_list_;
};

/// Writes a Hugging Face BERT directory (config.json, model.safetensors, and tokenizer.json when a
/// tokenizer is given), each file atomically, that infer::Model::load and transformers read.
void save_hf_dir(const Encoder& encoder, const std::string& dir,
                 const text::Tokenizer* tokenizer = nullptr);

}  // namespace scholar::nn
