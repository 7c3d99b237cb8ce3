// The architecture tables: each family's tensors, named as GGUF and Hugging Face name them.
#include "scholar/nn/arch.hpp"

#include <array>
#include <cctype>
#include <cstring>

#include "scholar/error.hpp"

namespace scholar::nn {

namespace {

using R = TensorRole;
using X = TensorTransform;
using P = TensorPresence;

// --- GPT-2 (Hugging Face GPT2LMHeadModel; llama.cpp's gpt2 architecture) -----------------------
// Hugging Face's own gpt2 checkpoints name these without the "transformer." prefix; readers try
// both (see load_model and infer::Model::from_hf_dir).
constexpr TensorName kGpt2Before[] = {
    {R::tok_embd, "token_embd.weight", "transformer.wte.weight", X::none, P::always, true},
    {R::pos_embd, "position_embd.weight", "transformer.wpe.weight", X::none, P::always, true},
};
constexpr TensorName kGpt2Layer[] = {
    {R::attn_norm, "blk.{}.attn_norm.weight", "transformer.h.{}.ln_1.weight", X::none, P::always,
     false},
    {R::attn_norm_b, "blk.{}.attn_norm.bias", "transformer.h.{}.ln_1.bias", X::none, P::always,
     false},
    {R::attn_qkv, "blk.{}.attn_qkv.weight", "transformer.h.{}.attn.c_attn.weight", X::transpose,
     P::always, true},
    {R::attn_qkv_b, "blk.{}.attn_qkv.bias", "transformer.h.{}.attn.c_attn.bias", X::none, P::always,
     false},
    {R::attn_out, "blk.{}.attn_output.weight", "transformer.h.{}.attn.c_proj.weight", X::transpose,
     P::always, true},
    {R::attn_out_b, "blk.{}.attn_output.bias", "transformer.h.{}.attn.c_proj.bias", X::none,
     P::always, false},
    {R::ffn_norm, "blk.{}.ffn_norm.weight", "transformer.h.{}.ln_2.weight", X::none, P::always,
     false},
    {R::ffn_norm_b, "blk.{}.ffn_norm.bias", "transformer.h.{}.ln_2.bias", X::none, P::always,
     false},
    {R::ffn_up, "blk.{}.ffn_up.weight", "transformer.h.{}.mlp.c_fc.weight", X::transpose, P::always,
     true},
    {R::ffn_up_b, "blk.{}.ffn_up.bias", "transformer.h.{}.mlp.c_fc.bias", X::none, P::always,
     false},
    {R::ffn_down, "blk.{}.ffn_down.weight", "transformer.h.{}.mlp.c_proj.weight", X::transpose,
     P::always, true},
    {R::ffn_down_b, "blk.{}.ffn_down.bias", "transformer.h.{}.mlp.c_proj.bias", X::none, P::always,
     false},
};
constexpr TensorName kGpt2After[] = {
    {R::out_norm, "output_norm.weight", "transformer.ln_f.weight", X::none, P::always, false},
    {R::out_norm_b, "output_norm.bias", "transformer.ln_f.bias", X::none, P::always, false},
    {R::output, "output.weight", "lm_head.weight", X::none, P::untied, true},
};

// --- Llama family (LlamaForCausalLM, Qwen2ForCausalLM; llama.cpp's llama and qwen2)
// ---------------
constexpr TensorName kLlamaBefore[] = {
    {R::tok_embd, "token_embd.weight", "model.embed_tokens.weight", X::none, P::always, true},
};
constexpr TensorName kLlamaLayer[] = {
    {R::attn_norm, "blk.{}.attn_norm.weight", "model.layers.{}.input_layernorm.weight", X::none,
     P::always, false},
    {R::attn_q, "blk.{}.attn_q.weight", "model.layers.{}.self_attn.q_proj.weight", X::rope_rows,
     P::always, true},
    {R::attn_k, "blk.{}.attn_k.weight", "model.layers.{}.self_attn.k_proj.weight", X::rope_rows,
     P::always, true},
    {R::attn_v, "blk.{}.attn_v.weight", "model.layers.{}.self_attn.v_proj.weight", X::none,
     P::always, true},
    {R::attn_q_b, "blk.{}.attn_q.bias", "model.layers.{}.self_attn.q_proj.bias", X::rope_rows,
     P::qkv_bias, false},
    {R::attn_k_b, "blk.{}.attn_k.bias", "model.layers.{}.self_attn.k_proj.bias", X::rope_rows,
     P::qkv_bias, false},
    {R::attn_v_b, "blk.{}.attn_v.bias", "model.layers.{}.self_attn.v_proj.bias", X::none,
     P::qkv_bias, false},
    {R::attn_out, "blk.{}.attn_output.weight", "model.layers.{}.self_attn.o_proj.weight", X::none,
     P::always, true},
    {R::ffn_norm, "blk.{}.ffn_norm.weight", "model.layers.{}.post_attention_layernorm.weight",
     X::none, P::always, false},
    {R::ffn_gate, "blk.{}.ffn_gate.weight", "model.layers.{}.mlp.gate_proj.weight", X::none,
     P::always, true},
    {R::ffn_up, "blk.{}.ffn_up.weight", "model.layers.{}.mlp.up_proj.weight", X::none, P::always,
     true},
    {R::ffn_down, "blk.{}.ffn_down.weight", "model.layers.{}.mlp.down_proj.weight", X::none,
     P::always, true},
};
constexpr TensorName kLlamaAfter[] = {
    {R::out_norm, "output_norm.weight", "model.norm.weight", X::none, P::always, false},
    {R::output, "output.weight", "lm_head.weight", X::none, P::untied, true},
};

// --- BERT (Hugging Face BertModel, as sentence-transformers saves it: no "bert." prefix, which
// BertFor* checkpoints add and readers strip; llama.cpp's bert architecture) -------------------
constexpr TensorName kBertBefore[] = {
    {R::tok_embd, "token_embd.weight", "embeddings.word_embeddings.weight", X::none, P::always,
     true},
    {R::pos_embd, "position_embd.weight", "embeddings.position_embeddings.weight", X::none,
     P::always, true},
    {R::tok_types, "token_types.weight", "embeddings.token_type_embeddings.weight", X::none,
     P::always, false},
    {R::embd_norm, "token_embd_norm.weight", "embeddings.LayerNorm.weight", X::none, P::always,
     false},
    {R::embd_norm_b, "token_embd_norm.bias", "embeddings.LayerNorm.bias", X::none, P::always,
     false},
};
constexpr TensorName kBertLayer[] = {
    {R::attn_q, "blk.{}.attn_q.weight", "encoder.layer.{}.attention.self.query.weight", X::none,
     P::always, true},
    {R::attn_q_b, "blk.{}.attn_q.bias", "encoder.layer.{}.attention.self.query.bias", X::none,
     P::always, false},
    {R::attn_k, "blk.{}.attn_k.weight", "encoder.layer.{}.attention.self.key.weight", X::none,
     P::always, true},
    {R::attn_k_b, "blk.{}.attn_k.bias", "encoder.layer.{}.attention.self.key.bias", X::none,
     P::always, false},
    {R::attn_v, "blk.{}.attn_v.weight", "encoder.layer.{}.attention.self.value.weight", X::none,
     P::always, true},
    {R::attn_v_b, "blk.{}.attn_v.bias", "encoder.layer.{}.attention.self.value.bias", X::none,
     P::always, false},
    {R::attn_out, "blk.{}.attn_output.weight", "encoder.layer.{}.attention.output.dense.weight",
     X::none, P::always, true},
    {R::attn_out_b, "blk.{}.attn_output.bias", "encoder.layer.{}.attention.output.dense.bias",
     X::none, P::always, false},
    {R::attn_out_norm, "blk.{}.attn_output_norm.weight",
     "encoder.layer.{}.attention.output.LayerNorm.weight", X::none, P::always, false},
    {R::attn_out_norm_b, "blk.{}.attn_output_norm.bias",
     "encoder.layer.{}.attention.output.LayerNorm.bias", X::none, P::always, false},
    {R::ffn_up, "blk.{}.ffn_up.weight", "encoder.layer.{}.intermediate.dense.weight", X::none,
     P::always, true},
    {R::ffn_up_b, "blk.{}.ffn_up.bias", "encoder.layer.{}.intermediate.dense.bias", X::none,
     P::always, false},
    {R::ffn_down, "blk.{}.ffn_down.weight", "encoder.layer.{}.output.dense.weight", X::none,
     P::always, true},
    {R::ffn_down_b, "blk.{}.ffn_down.bias", "encoder.layer.{}.output.dense.bias", X::none,
     P::always, false},
    {R::layer_out_norm, "blk.{}.layer_output_norm.weight",
     "encoder.layer.{}.output.LayerNorm.weight", X::none, P::always, false},
    {R::layer_out_norm_b, "blk.{}.layer_output_norm.bias", "encoder.layer.{}.output.LayerNorm.bias",
     X::none, P::always, false},
};

constexpr ArchTable kBert{TransformerConfig::Family::bert, kBertBefore, kBertLayer, {}};
constexpr ArchTable kGpt2{TransformerConfig::Family::gpt2, kGpt2Before, kGpt2Layer, kGpt2After};
constexpr ArchTable kLlama{TransformerConfig::Family::llama, kLlamaBefore, kLlamaLayer,
                           kLlamaAfter};

constexpr std::array<std::string_view, kTensorRoleCount> kRoleNames = {
    "tok_embd",    "pos_embd",      "attn_norm",       "attn_norm_b",    "attn_qkv",
    "attn_qkv_b",  "attn_q",        "attn_k",          "attn_v",         "attn_q_b",
    "attn_k_b",    "attn_v_b",      "attn_out",        "attn_out_b",     "ffn_norm",
    "ffn_norm_b",  "ffn_gate",      "ffn_up",          "ffn_up_b",       "ffn_down",
    "ffn_down_b",  "out_norm",      "out_norm_b",      "tok_types",      "embd_norm",
    "embd_norm_b", "attn_out_norm", "attn_out_norm_b", "layer_out_norm", "layer_out_norm_b",
    "output"};

bool present(const TensorName& t, const TransformerConfig& cfg) {
  switch (t.presence) {
    case P::always:
      return true;
    case P::qkv_bias:
      return cfg.qkv_bias;
    case P::untied:
      return !cfg.tie_embeddings;
  }
  return false;
}

std::string with_layer(std::string_view pattern, int64_t layer) {
  std::string s(pattern);
  if (const size_t at = s.find("{}"); at != std::string::npos)
    s.replace(at, 2, std::to_string(layer));
  return s;
}

// Matches `name` against `pattern` ("blk.{}.attn_q.weight"), allowing an adapter's suffix between
// the module name and the ".weight"/".bias" ending (Hugging Face PEFT: q_proj.lora_A.weight) or
// after it (llama.cpp: attn_q.weight.lora_a). Sets the layer (-1 if the pattern has none) and the
// suffix ("" for the tensor itself, ".lora_A" or ".lora_a" for an adapter's).
bool match(std::string_view pattern, std::string_view name, int64_t& layer, std::string& suffix) {
  const size_t dot = pattern.rfind('.');
  const std::string_view module = pattern.substr(0, dot), ending = pattern.substr(dot);
  auto eat = [&](std::string_view prefix) {
    if (name.substr(0, prefix.size()) != prefix) return false;
    name.remove_prefix(prefix.size());
    return true;
  };
  layer = -1;
  if (const size_t brace = module.find("{}"); brace == std::string_view::npos) {
    if (!eat(module)) return false;
  } else {
    if (!eat(module.substr(0, brace))) return false;
    size_t digits = 0;
    while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
    if (digits == 0 || digits > 6) return false;
    layer = std::stol(std::string(name.substr(0, digits)));
    name.remove_prefix(digits);
    if (!eat(module.substr(brace + 2))) return false;
  }
  if (name == ending) {
    suffix.clear();
    return true;
  }
  // llama.cpp: "<module>.weight.lora_a"
  if (name.size() > ending.size() + 1 && name.substr(0, ending.size()) == ending &&
      name[ending.size()] == '.') {
    suffix = std::string(name.substr(ending.size()));
    return true;
  }
  // PEFT: "<module>.lora_A.weight"
  if (name.size() > ending.size() + 1 && name[0] == '.' &&
      name.substr(name.size() - ending.size()) == ending) {
    suffix = std::string(name.substr(0, name.size() - ending.size()));
    return true;
  }
  return false;
}

template <class Fn>
void for_each_row(const ArchTable& t, Fn&& fn) {
  for (const auto& r : t.global_before) fn(r, false);
  for (const auto& r : t.per_layer) fn(r, true);
  for (const auto& r : t.global_after) fn(r, false);
}

// Maps a name between the two forms; `from_hf` says which form `name` is in.
std::optional<std::string> map_name(const TransformerConfig& cfg, std::string_view name,
                                    bool from_hf) {
  std::optional<std::string> out;
  for_each_row(arch_table(cfg.family), [&](const TensorName& row, bool per_layer) {
    if (out) return;
    int64_t layer = -1;
    std::string suffix;
    const std::string_view from = from_hf ? row.hf : row.gguf, to = from_hf ? row.gguf : row.hf;
    if (!match(from, name, layer, suffix)) return;
    if (per_layer && (layer < 0 || layer >= cfg.n_layers)) return;
    std::string target = with_layer(to, layer);
    if (suffix.empty()) {
      out = std::move(target);
      return;
    }
    // Adapters: PEFT's ".lora_A" before ".weight" <-> llama.cpp's ".lora_a" after it.
    std::string s = suffix;
    if (from_hf) {
      for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out = target + s;
    } else {
      if (s == ".lora_a") s = ".lora_A";
      if (s == ".lora_b") s = ".lora_B";
      const size_t dot = target.rfind('.');
      out = target.substr(0, dot) + s + target.substr(dot);
    }
  });
  return out;
}

}  // namespace

std::string_view tensor_role_name(TensorRole r) {
  return kRoleNames[static_cast<size_t>(r)];
}

const ArchTable& arch_table(TransformerConfig::Family family) {
  switch (family) {
    case TransformerConfig::Family::gpt2:
      return kGpt2;
    case TransformerConfig::Family::bert:
      return kBert;
    case TransformerConfig::Family::llama:
      break;
  }
  return kLlama;
}

namespace {
const TensorName* row_of(TransformerConfig::Family family, TensorRole role) {
  const TensorName* found = nullptr;
  for_each_row(arch_table(family), [&](const TensorName& r, bool) {
    if (r.role == role) found = &r;
  });
  return found;
}
}  // namespace

std::string gguf_name(TransformerConfig::Family family, TensorRole role, int64_t layer) {
  const TensorName* r = row_of(family, role);
  return r ? with_layer(r->gguf, layer) : std::string();
}

std::string hf_name(TransformerConfig::Family family, TensorRole role, int64_t layer) {
  const TensorName* r = row_of(family, role);
  return r ? with_layer(r->hf, layer) : std::string();
}

std::vector<TensorSpec> tensor_specs(const TransformerConfig& cfg) {
  std::vector<TensorSpec> out;
  const ArchTable& t = arch_table(cfg.family);
  auto add = [&](const TensorName& r, int64_t layer) {
    if (!present(r, cfg)) return;
    out.push_back(
        {r.role, layer, with_layer(r.gguf, layer), with_layer(r.hf, layer), r.transform, r.matrix});
  };
  for (const auto& r : t.global_before) add(r, -1);
  for (int64_t i = 0; i < cfg.n_layers; ++i)
    for (const auto& r : t.per_layer) add(r, i);
  for (const auto& r : t.global_after) add(r, -1);
  return out;
}

std::optional<std::string> hf_to_gguf_name(const TransformerConfig& cfg, std::string_view hf) {
  return map_name(cfg, hf, true);
}

std::optional<std::string> gguf_to_hf_name(const TransformerConfig& cfg, std::string_view gguf) {
  return map_name(cfg, gguf, false);
}

std::string_view gguf_architecture(const TransformerConfig& cfg) {
  if (cfg.family == TransformerConfig::Family::gpt2) return "gpt2";
  if (cfg.family == TransformerConfig::Family::bert) return "bert";
  return cfg.model_type == "qwen2" ? "qwen2" : "llama";
}

bool gguf_permutes_rope_rows(const TransformerConfig& cfg) {
  return gguf_architecture(cfg) == "llama";
}

std::vector<float> permute_rope_rows(const std::vector<float>& w, int64_t rows, int64_t cols,
                                     int64_t head_dim, bool to_gguf) {
  SCHOLAR_ASSERT(
      rows % head_dim == 0 && head_dim % 2 == 0 && static_cast<int64_t>(w.size()) == rows * cols,
      "permute_rope_rows: ", rows, " x ", cols, " with head_dim ", head_dim);
  std::vector<float> out(w.size());
  const int64_t heads = rows / head_dim, half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t hf = h * head_dim + s * half + j, gg = h * head_dim + 2 * j + s;
        const int64_t from = to_gguf ? hf : gg, to = to_gguf ? gg : hf;
        std::memcpy(out.data() + to * cols, w.data() + from * cols,
                    static_cast<size_t>(cols) * sizeof(float));
      }
  return out;
}

}  // namespace scholar::nn
