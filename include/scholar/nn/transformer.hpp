// scholar/nn/transformer.hpp: decoder-only language models of the GPT-2 and Llama families.
//
// One config covers both. GPT-2: learned positions, LayerNorm, GELU MLP, fused QKV projection with
// Conv1D ([in, out]) weights, tied input and output embeddings. Llama (and Qwen2): rotary
// positions, RMSNorm, SwiGLU MLP, grouped-query attention, optional QKV bias (Qwen2), untied head
// by default. Parameter names are Hugging Face's:
//   GPT-2  transformer.wte.weight, transformer.wpe.weight, transformer.h.{i}.ln_1.{weight,bias},
//          transformer.h.{i}.attn.c_attn.{weight,bias},
//          transformer.h.{i}.attn.c_proj.{weight,bias}, transformer.h.{i}.ln_2.*,
//          transformer.h.{i}.mlp.c_fc.*, transformer.h.{i}.mlp.c_proj.*, transformer.ln_f.*,
//          (lm_head.weight is transformer.wte.weight)
//   Llama  model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
//          model.layers.{i}.self_attn.{q,k,v,o}_proj.weight (+ q,k,v bias for Qwen2),
//          model.layers.{i}.post_attention_layernorm.weight,
//          model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight
//
//   nn::TransformerConfig cfg = nn::TransformerConfig::gpt2(/*vocab=*/8192, /*context=*/256,
//                                                          /*layers=*/6, /*width=*/384,
//                                                          /*heads=*/6);
//   nn::TransformerLM model(cfg, /*seed=*/1);
//   Var logits = model.forward(ids);                      // ids [B, T] -> [B, T, V]
//   Var loss = autograd::cross_entropy(logits, targets);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "scholar/io/json.hpp"
#include "scholar/nn/module.hpp"

namespace scholar::text {
class Tokenizer;
}

namespace scholar::nn {

/// How RoPE frequencies are scaled.
enum class RopeScalingType : uint8_t {
  none,    ///< unscaled
  linear,  ///< every pair by `factor`
  /// Llama 3.1 and later: pairs whose wavelength is longer than original_context_length /
  /// low_freq_factor by `factor`, those shorter than original_context_length / high_freq_factor
  /// not at all, a smooth blend between
  llama3,
  factors  ///< the per-pair values in `factors`, as GGUF files store them in rope_freqs
};

/// "none", "linear", "llama3" or "factors" (config.json's rope_type; "default" reads as none).
std::string_view rope_scaling_name(RopeScalingType t);

/// RoPE frequency scaling (Llama family), as Hugging Face's `rope_scaling`: each rotation pair's
/// frequency is divided by a factor (TransformerConfig::rope_freq_factors()).
struct RopeScaling {
  RopeScalingType type = RopeScalingType::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_context_length = 8192;  ///< config.json: original_max_position_embeddings
  std::vector<float> factors;              ///< type "factors": head_dim / 2 values
};

/// Architecture of a TransformerLM.
struct TransformerConfig {
  /// More layers than any model has: a config claiming more is damaged or hostile (validate()).
  static constexpr int64_t kMaxLayers = 1 << 16;
  /// gpt2 and llama are decoders (causal attention, an LM head); bert is an encoder
  /// (bidirectional attention, post-norm blocks, no head: its hidden states are pooled into
  /// sentence embeddings).
  enum class Family : uint8_t { gpt2, llama, bert };
  Family family = Family::gpt2;
  int64_t vocab_size = 50257;
  int64_t context_length = 1024;  ///< positions the model supports (GPT-2's n_positions)
  int64_t n_layers = 12;
  int64_t n_embd = 768;  ///< width C
  int64_t n_heads = 12;
  int64_t n_kv_heads = 0;  ///< 0: same as n_heads (no grouped-query attention)
  int64_t ffn_hidden = 0;  ///< MLP width; 0: 4 * n_embd (GPT-2)
  float norm_eps = 1e-5f;
  double rope_theta = 10000.0;  ///< Llama family only
  RopeScaling rope_scaling;     ///< Llama family only; none by default
  bool tie_embeddings = true;   ///< output head shares the token embedding
  bool qkv_bias = false;        ///< Llama family: biases on q, k, v projections (Qwen2)
  float dropout = 0.0f;         ///< on attention output, MLP output and embeddings, in training
  int64_t type_vocab_size = 2;  ///< BERT family only: token types (segment A/B embeddings)
  std::string model_type;       ///< "gpt2", "llama", "qwen2" (for config.json); set by presets

  int64_t kv_heads() const noexcept { return n_kv_heads == 0 ? n_heads : n_kv_heads; }
  int64_t head_dim() const noexcept { return n_embd / n_heads; }
  int64_t mlp_hidden() const noexcept { return ffn_hidden == 0 ? 4 * n_embd : ffn_hidden; }
  /// An encoder (the BERT family): attention sees the whole sequence, and there is no LM head.
  bool is_encoder() const noexcept { return family == Family::bert; }
  /// What rope_scaling divides each rotation pair's frequency by: head_dim / 2 values (the same
  /// as llama.cpp's rope_freqs tensor), or none when the model is unscaled.
  std::vector<float> rope_freq_factors() const;

  /// GPT-2 family preset (tied embeddings, LayerNorm eps 1e-5).
  static TransformerConfig gpt2(int64_t vocab, int64_t context, int64_t layers, int64_t width,
                                int64_t heads);
  /// Llama family preset (RMSNorm eps 1e-6, SwiGLU of width ffn, untied head).
  static TransformerConfig llama(int64_t vocab, int64_t context, int64_t layers, int64_t width,
                                 int64_t heads, int64_t kv_heads, int64_t ffn);

  /// BERT family preset (as Hugging Face's BertModel: learned positions, post-LayerNorm blocks
  /// with eps 1e-12, exact-erf GELU MLP of width ffn, two token types, no head).
  static TransformerConfig bert(int64_t vocab, int64_t context, int64_t layers, int64_t width,
                                int64_t heads, int64_t ffn);

  /// Throws ValueError naming the first inconsistent field (width not divisible by heads, ...).
  void validate() const;
  /// Hugging Face config.json fields for this model type.
  io::Json to_json() const;
  /// Reads a Hugging Face config.json (model_type gpt2, llama, mistral, qwen2 or bert) or our own.
  /// rope_scaling may be absent, "default", "linear" or "llama3" (and "factors", which only
  /// to_json writes); other types (yarn, dynamic, longrope) are a FormatError.
  static TransformerConfig from_json(const io::Json& j);
  /// Same model: compares what the fields mean (n_kv_heads 0 equals n_kv_heads == n_heads, an
  /// empty model_type equals the family's own), so a config equals its to_json() round trip.
  friend bool operator==(const TransformerConfig& a, const TransformerConfig& b);
};

/// Causal self-attention with its projections.
class Attention : public Module {
 public:
  explicit Attention(const TransformerConfig& cfg);
  /// x [B, T, C] -> [B, T, C]. position_offset shifts RoPE positions; mask (optional, [B, T, T],
  /// 0 or -inf) is added to the causal scores.
  Var forward(const Var& x, int64_t position_offset = 0, const Tensor<float>* mask = nullptr) const;

 private:
  TransformerConfig cfg_;
  std::vector<float> rope_factors_;                            // cfg_.rope_freq_factors()
  std::unique_ptr<Linear> c_attn_, c_proj_;                    // GPT-2
  std::unique_ptr<Linear> q_proj_, k_proj_, v_proj_, o_proj_;  // Llama
};

/// The position-wise MLP: GELU (GPT-2) or SwiGLU (Llama).
class MLP : public Module {
 public:
  explicit MLP(const TransformerConfig& cfg);
  Var forward(const Var& x) const;

 private:
  TransformerConfig cfg_;
  std::unique_ptr<Linear> c_fc_, c_proj_;                    // GPT-2
  std::unique_ptr<Linear> gate_proj_, up_proj_, down_proj_;  // Llama
};

/// Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x)).
class Block : public Module {
 public:
  explicit Block(const TransformerConfig& cfg);
  Var forward(const Var& x, Generator* dropout_gen, const Tensor<float>* mask = nullptr) const;

 private:
  Var norm(int which, const Var& x) const;
  TransformerConfig cfg_;
  std::unique_ptr<LayerNorm> ln1_, ln2_;  // GPT-2
  std::unique_ptr<RMSNorm> rms1_, rms2_;  // Llama
  Attention attn_;
  MLP mlp_;
};

/// A decoder-only language model.
class TransformerLM : public Module {
 public:
  /// Builds the model with GPT-2-style initialization from `seed`: weights N(0, 0.02), residual
  /// output projections N(0, 0.02 / sqrt(2 * n_layers)), biases 0, norm weights 1.
  explicit TransformerLM(const TransformerConfig& cfg, uint64_t seed = 0);

  /// ids [B, T] (T <= context_length) -> logits [B, T, V]. dropout_gen supplies dropout masks in
  /// training mode (required there when cfg.dropout > 0). segments (optional, [B, T]) packs
  /// several sequences in a row: runs of equal values are separate sequences, so attention stays
  /// inside a run and learned positions restart at each (rotary positions are relative already),
  /// which makes a packed row compute what its sequences would alone.
  Var forward(const Tensor<int32_t>& ids, Generator* dropout_gen = nullptr,
              const Tensor<int32_t>* segments = nullptr) const;
  /// Mean cross-entropy of forward(ids) against targets [B, T] (ignore_index -100).
  Var loss(const Tensor<int32_t>& ids, const Tensor<int32_t>& targets,
           Generator* dropout_gen = nullptr, const Tensor<int32_t>* segments = nullptr) const;

  const TransformerConfig& config() const noexcept { return cfg_; }

  /// Copies weights by name from `weights` (name -> tensor). Every parameter must be present with
  /// its exact shape (ShapeError/FormatError naming the parameter otherwise); extra names are an
  /// error unless allow_extra (Hugging Face files carry buffers such as attn.bias masks).
  void load_weights(const std::vector<std::pair<std::string, Tensor<float>>>& weights,
                    bool allow_extra = false);

 private:
  TransformerConfig cfg_;
  std::unique_ptr<Embedding> wte_, wpe_;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::unique_ptr<LayerNorm> ln_f_;
  std::unique_ptr<RMSNorm> norm_f_;
  std::unique_ptr<Linear> lm_head_;  // null when tied
  // Plain containers, so that names come out as "transformer.h.3..." or "model.layers.3...".
  struct Holder : Module {
    using Module::register_module;
  };
  Holder body_, layers_;
};

/// Writes a Hugging Face model directory that transformers and scholar load: config.json
/// (TransformerConfig::to_json), model.safetensors (every parameter under its Hugging Face name,
/// f32) and, when a tokenizer is given, tokenizer.json (plus tokenizer_config.json with its chat
/// template, if it has one). Each file is written atomically; the directory is created if needed.
/// LoRA adapters must be merged (nn::merge_lora; their matrices are then left out) and no weight
/// may be held quantized: ValueError naming the layer otherwise. To read one back:
/// infer::Model::load(dir)->to_module().
void save_hf_dir(const TransformerLM& model, const std::string& dir,
                 const text::Tokenizer* tokenizer = nullptr);

}  // namespace scholar::nn
