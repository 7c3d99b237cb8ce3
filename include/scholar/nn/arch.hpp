// scholar/nn/arch.hpp: the architecture tables. One row per tensor of a family says what the
// tensor is (its role), its name in GGUF files and in Hugging Face checkpoints (which are also
// scholar's nn parameter names), how one layout becomes the other, and when it exists. Every
// reader and writer of model files (infer::Model's GGUF and Hugging Face loaders, the GGUF
// exporter, nn::load_model and nn::save_hf_dir) walks these rows instead of spelling names out, so
// a new family (BERT for retrieval, say) is a new table plus its block function.
//
//   for (const nn::TensorSpec& t : nn::tensor_specs(cfg))
//     std::printf("%s <- %s\n", t.gguf_name.c_str(), t.hf_name.c_str());
//   // token_embd.weight <- model.embed_tokens.weight
//   // blk.0.attn_norm.weight <- model.layers.0.input_layernorm.weight ...
//
// Names with a suffix map too (adapter tensors): hf_to_gguf_name(cfg,
// "model.layers.3.self_attn.q_proj.lora_A.weight") is "blk.3.attn_q.weight.lora_a", the name
// llama.cpp's LoRA GGUF files use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/nn/transformer.hpp"

namespace scholar::nn {

/// What a tensor is, whatever a file calls it.
enum class TensorRole : uint8_t {
  tok_embd,     ///< token embedding [V, C]
  pos_embd,     ///< learned positions [context, C] (GPT-2)
  attn_norm,    ///< norm before attention [C]
  attn_norm_b,  ///< its bias (LayerNorm)
  attn_qkv,     ///< fused query/key/value projection [3C, C] (GPT-2)
  attn_qkv_b,
  attn_q,  ///< query projection [H * D, C]
  attn_k,  ///< key projection [KVH * D, C]
  attn_v,  ///< value projection [KVH * D, C]
  attn_q_b,
  attn_k_b,
  attn_v_b,
  attn_out,  ///< output projection [C, H * D]
  attn_out_b,
  ffn_norm,  ///< norm before the MLP [C]
  ffn_norm_b,
  ffn_gate,  ///< SwiGLU gate [F, C]
  ffn_up,    ///< MLP input [F, C]
  ffn_up_b,
  ffn_down,  ///< MLP output [C, F]
  ffn_down_b,
  out_norm,  ///< final norm [C]
  out_norm_b,
  // BERT's post-norm layout.
  tok_types,         ///< token-type (segment) embedding [types, C]
  embd_norm,         ///< LayerNorm over the summed embeddings [C]
  embd_norm_b,       ///< its bias
  attn_out_norm,     ///< LayerNorm after the attention residual [C]
  attn_out_norm_b,   ///< its bias
  layer_out_norm,    ///< LayerNorm after the MLP residual [C]
  layer_out_norm_b,  ///< its bias
  output,            ///< LM head [V, C] (absent when tied to the token embedding)
};
/// Number of roles.
inline constexpr int kTensorRoleCount = static_cast<int>(TensorRole::output) + 1;

/// "attn_q", "ffn_down", ...
std::string_view tensor_role_name(TensorRole r);

/// How the Hugging Face form of a tensor becomes the GGUF form (scholar's inference layout is the
/// GGUF one, except that Llama Q/K rows stay in Hugging Face order unless they came from GGUF).
enum class TensorTransform : uint8_t {
  none,
  transpose,  ///< GPT-2's Conv1D stores [in, out]; GGUF and nn::Linear [out, in]
  /// Llama query/key rows (weights and biases): Hugging Face pairs dimensions (i, i + D/2) of each
  /// head for RoPE, llama.cpp's llama architecture pairs (2i, 2i + 1) (convert_hf_to_gguf's
  /// permute). Qwen2 GGUF files keep Hugging Face's order.
  rope_rows,
};

/// When a tensor exists.
enum class TensorPresence : uint8_t {
  always,
  qkv_bias,  ///< only with TransformerConfig::qkv_bias
  untied,    ///< only when the head is not tied to the token embedding
};

/// One row of an architecture table. Names have "{}" where the layer index goes.
struct TensorName {
  TensorRole role;
  std::string_view gguf;
  std::string_view hf;
  TensorTransform transform;
  TensorPresence presence;
  bool matrix;  ///< a weight matrix (stored in the model's weight type); else a vector, kept f32
};

/// The rows of a family, global tensors then one block's, in llama.cpp's file order.
struct ArchTable {
  TransformerConfig::Family family;
  std::span<const TensorName> global_before;  ///< embeddings
  std::span<const TensorName> per_layer;      ///< one block ({} = layer index)
  std::span<const TensorName> global_after;   ///< final norm and head
};
const ArchTable& arch_table(TransformerConfig::Family family);

/// One tensor of a concrete model: the row, resolved for a layer.
struct TensorSpec {
  TensorRole role;
  int64_t layer;  ///< -1 for global tensors
  std::string gguf_name, hf_name;
  TensorTransform transform;
  bool matrix;
};

/// The GGUF and Hugging Face names of a role of a family at `layer` (ignored for global roles);
/// empty if the family has no such tensor.
std::string gguf_name(TransformerConfig::Family family, TensorRole role, int64_t layer = 0);
std::string hf_name(TransformerConfig::Family family, TensorRole role, int64_t layer = 0);

/// The GGUF general.architecture of a config: "gpt2", "qwen2" (model_type qwen2), "bert" or
/// "llama".
std::string_view gguf_architecture(const TransformerConfig& cfg);
/// Whether llama.cpp's files of that architecture hold Q/K rows in its own RoPE pairing (the llama
/// architecture: TensorTransform::rope_rows applies), rather than Hugging Face's.
bool gguf_permutes_rope_rows(const TransformerConfig& cfg);

/// Every tensor a model of this config has, in file order (what the table says exists for it).
std::vector<TensorSpec> tensor_specs(const TransformerConfig& cfg);

/// The GGUF name of a Hugging Face name, keeping whatever follows the tensor's own name:
/// "model.layers.3.self_attn.q_proj.lora_A.weight" -> "blk.3.attn_q.weight.lora_a" (PEFT's
/// lora_A/lora_B become llama.cpp's lora_a/lora_b). nullopt if no row matches.
std::optional<std::string> hf_to_gguf_name(const TransformerConfig& cfg, std::string_view hf);
/// The reverse: "blk.3.attn_q.weight.lora_a" -> "model.layers.3.self_attn.q_proj.lora_A.weight".
std::optional<std::string> gguf_to_hf_name(const TransformerConfig& cfg, std::string_view gguf);

/// Rows of a [n_heads * D, cols] query or key matrix (or a bias, cols = 1) reordered between
/// Hugging Face's RoPE pairing and llama.cpp's (TensorTransform::rope_rows); to_gguf chooses the
/// direction.
std::vector<float> permute_rope_rows(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     int64_t head_dim, bool to_gguf);

}  // namespace scholar::nn
