// GPT-2 and Llama-family decoder-only transformers.
#include "scholar/nn/transformer.hpp"

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/text/tokenizer.hpp"

namespace scholar::nn {

std::string_view rope_scaling_name(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::none:
      return "none";
    case RopeScalingType::linear:
      return "linear";
    case RopeScalingType::llama3:
      return "llama3";
    case RopeScalingType::factors:
      return "factors";
  }
  return "?";
}

using autograd::WeightLayout;
namespace ag = scholar::autograd;

// --- config --------------------------------------------------------------------------------------

TransformerConfig TransformerConfig::gpt2(int64_t vocab, int64_t context, int64_t layers,
                                          int64_t width, int64_t heads) {
  TransformerConfig c;
  c.family = Family::gpt2;
  c.model_type = "gpt2";
  c.vocab_size = vocab;
  c.context_length = context;
  c.n_layers = layers;
  c.n_embd = width;
  c.n_heads = heads;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = true;
  return c;
}

TransformerConfig TransformerConfig::llama(int64_t vocab, int64_t context, int64_t layers,
                                           int64_t width, int64_t heads, int64_t kv_heads,
                                           int64_t ffn) {
  TransformerConfig c;
  c.family = Family::llama;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.context_length = context;
  c.n_layers = layers;
  c.n_embd = width;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.ffn_hidden = ffn;
  c.norm_eps = 1e-6f;
  c.tie_embeddings = false;
  return c;
}

TransformerConfig TransformerConfig::bert(int64_t vocab, int64_t context, int64_t layers,
                                          int64_t width, int64_t heads, int64_t ffn) {
  TransformerConfig c;
  c.family = Family::bert;
  c.model_type = "bert";
  c.vocab_size = vocab;
  c.context_length = context;
  c.n_layers = layers;
  c.n_embd = width;
  c.n_heads = heads;
  c.ffn_hidden = ffn;
  c.norm_eps = 1e-12f;
  c.tie_embeddings = true;  // no head at all
  return c;
}

void TransformerConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    if (v < 1) fail<ValueError>("TransformerConfig: ", name, " must be positive, got ", v);
  };
  positive("vocab_size", vocab_size);
  positive("context_length", context_length);
  positive("n_layers", n_layers);
  if (n_layers > kMaxLayers)
    fail<ValueError>("TransformerConfig: n_layers ", n_layers, " is implausible (at most ",
                     kMaxLayers, ")");
  positive("n_embd", n_embd);
  positive("n_heads", n_heads);
  if (n_kv_heads < 0)
    fail<ValueError>("TransformerConfig: n_kv_heads must be >= 0, got ", n_kv_heads);
  if (ffn_hidden < 0)
    fail<ValueError>("TransformerConfig: ffn_hidden must be >= 0, got ", ffn_hidden);
  if (n_embd % n_heads != 0)
    fail<ValueError>("TransformerConfig: n_embd (", n_embd, ") is not divisible by n_heads (",
                     n_heads, ")");
  if (n_heads % kv_heads() != 0)
    fail<ValueError>("TransformerConfig: n_heads (", n_heads, ") is not a multiple of n_kv_heads (",
                     kv_heads(), ")");
  if (family != Family::llama && n_kv_heads != 0 && n_kv_heads != n_heads)
    fail<ValueError>("TransformerConfig: the ", family == Family::gpt2 ? "GPT-2" : "BERT",
                     " family has no grouped-query attention");
  if (family == Family::bert && type_vocab_size < 1)
    fail<ValueError>("TransformerConfig: type_vocab_size must be >= 1, got ", type_vocab_size);
  if (family == Family::llama && head_dim() % 2 != 0)
    fail<ValueError>("TransformerConfig: rotary embeddings need an even head dimension, got ",
                     head_dim());
  if (!(norm_eps > 0.0f))
    fail<ValueError>("TransformerConfig: norm_eps must be > 0, got ", norm_eps);
  if (!(rope_theta > 0.0))
    fail<ValueError>("TransformerConfig: rope_theta must be > 0, got ", rope_theta);
  if (!(dropout >= 0.0f && dropout < 1.0f))
    fail<ValueError>("TransformerConfig: dropout must be in [0, 1), got ", dropout);
  const RopeScaling& rs = rope_scaling;
  if (rs.type == RopeScalingType::none) return;
  if (family != Family::llama)
    fail<ValueError>("TransformerConfig: rope_scaling applies to the Llama family only");
  if (rs.type == RopeScalingType::linear || rs.type == RopeScalingType::llama3) {
    if (!(rs.factor > 0.0 && std::isfinite(rs.factor)))
      fail<ValueError>("TransformerConfig: rope_scaling factor must be > 0, got ", rs.factor);
  } else if (rs.type != RopeScalingType::factors) {
    fail<ValueError>("TransformerConfig: rope_scaling type ", static_cast<int>(rs.type),
                     " is not supported (linear, llama3, factors)");
  }
  if (rs.type == RopeScalingType::llama3 &&
      !(rs.low_freq_factor > 0.0 && rs.high_freq_factor > rs.low_freq_factor &&
        std::isfinite(rs.high_freq_factor) && rs.original_context_length > 0))
    fail<ValueError>("TransformerConfig: llama3 rope_scaling needs 0 < low_freq_factor < ",
                     "high_freq_factor and original_max_position_embeddings > 0, got ",
                     rs.low_freq_factor, ", ", rs.high_freq_factor, " and ",
                     rs.original_context_length);
  if (rs.type == RopeScalingType::factors) {
    if (static_cast<int64_t>(rs.factors.size()) != head_dim() / 2)
      fail<ValueError>("TransformerConfig: ", rs.factors.size(),
                       " RoPE frequency factors for a head dimension of ", head_dim(), " (need ",
                       head_dim() / 2, ")");
    for (size_t i = 0; i < rs.factors.size(); ++i)
      if (!(rs.factors[i] > 0.0f && std::isfinite(rs.factors[i])))
        fail<ValueError>("TransformerConfig: RoPE frequency factor ", i, " is ", rs.factors[i],
                         " (must be > 0)");
  }
}

std::vector<float> TransformerConfig::rope_freq_factors() const {
  const RopeScaling& rs = rope_scaling;
  if (rs.type == RopeScalingType::none || family != Family::llama) return {};
  if (rs.type == RopeScalingType::factors) return rs.factors;
  const int64_t pairs = head_dim() / 2;
  std::vector<float> out(static_cast<size_t>(pairs), static_cast<float>(rs.factor));
  if (rs.type != RopeScalingType::llama3) return out;
  // Llama 3.1's rule (Hugging Face's _compute_llama3_parameters, llama.cpp's rope_freqs).
  const double pi = 3.14159265358979323846;
  const double orig = static_cast<double>(rs.original_context_length);
  const double low_wavelen = orig / rs.low_freq_factor, high_wavelen = orig / rs.high_freq_factor;
  for (int64_t p = 0; p < pairs; ++p) {
    const double inv_freq =
        std::pow(rope_theta, -2.0 * static_cast<double>(p) / static_cast<double>(2 * pairs));
    const double wavelen = 2.0 * pi / inv_freq;
    double f = rs.factor;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen <= low_wavelen) {
      const double smooth =
          (orig / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / rs.factor + smooth);
    }
    out[static_cast<size_t>(p)] = static_cast<float>(f);
  }
  return out;
}

io::Json TransformerConfig::to_json() const {
  using io::Json;
  Json j = Json::object();
  if (family == Family::bert) {
    j.set("model_type", Json("bert"));
    j.set("architectures", Json::array({Json("BertModel")}));
    j.set("vocab_size", Json(vocab_size));
    j.set("max_position_embeddings", Json(context_length));
    j.set("num_hidden_layers", Json(n_layers));
    j.set("hidden_size", Json(n_embd));
    j.set("num_attention_heads", Json(n_heads));
    j.set("intermediate_size", Json(mlp_hidden()));
    j.set("type_vocab_size", Json(type_vocab_size));
    j.set("layer_norm_eps", Json(static_cast<double>(norm_eps)));
    j.set("hidden_act", Json("gelu"));
    j.set("position_embedding_type", Json("absolute"));
    j.set("hidden_dropout_prob", Json(static_cast<double>(dropout)));
    j.set("attention_probs_dropout_prob", Json(0.0));
  } else if (family == Family::gpt2) {
    j.set("model_type", Json(model_type.empty() ? "gpt2" : model_type));
    j.set("architectures", Json::array({Json("GPT2LMHeadModel")}));
    j.set("vocab_size", Json(vocab_size));
    j.set("n_positions", Json(context_length));
    j.set("n_ctx", Json(context_length));
    j.set("n_layer", Json(n_layers));
    j.set("n_embd", Json(n_embd));
    j.set("n_head", Json(n_heads));
    j.set("n_inner", ffn_hidden == 0 ? Json() : Json(ffn_hidden));
    j.set("layer_norm_epsilon", Json(static_cast<double>(norm_eps)));
    j.set("activation_function", Json("gelu_new"));
    j.set("resid_pdrop", Json(static_cast<double>(dropout)));
    j.set("embd_pdrop", Json(static_cast<double>(dropout)));
    j.set("attn_pdrop", Json(0.0));
    j.set("tie_word_embeddings", Json(tie_embeddings));
  } else {
    const std::string type = model_type.empty() ? "llama" : model_type;
    j.set("model_type", Json(type));
    j.set("architectures",
          Json::array({Json(type == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM")}));
    j.set("vocab_size", Json(vocab_size));
    j.set("max_position_embeddings", Json(context_length));
    j.set("num_hidden_layers", Json(n_layers));
    j.set("hidden_size", Json(n_embd));
    j.set("num_attention_heads", Json(n_heads));
    j.set("num_key_value_heads", Json(kv_heads()));
    j.set("intermediate_size", Json(mlp_hidden()));
    j.set("rms_norm_eps", Json(static_cast<double>(norm_eps)));
    j.set("rope_theta", Json(rope_theta));
    const RopeScaling& rs = rope_scaling;
    if (rs.type != RopeScalingType::none) {
      Json r = Json::object();
      r.set("rope_type", Json(rope_scaling_name(rs.type)));
      if (rs.type == RopeScalingType::factors) {  // ours: what a GGUF file's rope_freqs holds
        Json f = Json::array();
        for (float v : rs.factors) f.push_back(Json(static_cast<double>(v)));
        r.set("factors", std::move(f));
      } else {
        r.set("factor", Json(rs.factor));
      }
      if (rs.type == RopeScalingType::llama3) {
        r.set("low_freq_factor", Json(rs.low_freq_factor));
        r.set("high_freq_factor", Json(rs.high_freq_factor));
        r.set("original_max_position_embeddings", Json(rs.original_context_length));
      }
      j.set("rope_scaling", std::move(r));
    }
    j.set("hidden_act", Json("silu"));
    j.set("attention_bias", Json(qkv_bias));
    j.set("tie_word_embeddings", Json(tie_embeddings));
    j.set("dropout", Json(static_cast<double>(dropout)));  // ours: Hugging Face ignores it
  }
  return j;
}

namespace {

// config.json's rope_scaling object (Hugging Face's names; "type" is the older spelling).
RopeScaling rope_scaling_from_json(const io::Json& rs) {
  const std::string where = "config.json: rope_scaling";
  if (!rs.is_object()) fail<FormatError>(where, " must be an object, got ", rs.dump());
  const io::Json* t = rs.find("rope_type");
  if (t == nullptr) t = rs.find("type");
  if (t == nullptr) fail<FormatError>(where, " ", rs.dump(), " has no rope_type");
  RopeScaling out;
  const std::string& type = t->as_string(where + ".rope_type");
  if (type == "default" || type == "none") return {};
  if (type == "linear")
    out.type = RopeScalingType::linear;
  else if (type == "llama3")
    out.type = RopeScalingType::llama3;
  else if (type == "factors")
    out.type = RopeScalingType::factors;
  else
    fail<FormatError>(where, " type '", type,
                      "' is not supported (linear, llama3; not yarn, dynamic or longrope)");
  auto real = [&](const char* key, double dflt) {
    const io::Json* v = rs.find(key);
    return v && !v->is_null() ? v->as_double(where + "." + key) : dflt;
  };
  if (out.type == RopeScalingType::factors) {
    for (const auto& v : rs.at("factors", where).as_array(where + ".factors"))
      out.factors.push_back(static_cast<float>(v.as_double(where + ".factors")));
    return out;
  }
  out.factor = rs.at("factor", where).as_double(where + ".factor");
  if (out.type == RopeScalingType::llama3) {
    out.low_freq_factor = real("low_freq_factor", 1.0);
    out.high_freq_factor = real("high_freq_factor", 4.0);
    const io::Json* o = rs.find("original_max_position_embeddings");
    if (o == nullptr) fail<FormatError>(where, " (llama3) has no original_max_position_embeddings");
    out.original_context_length = o->as_int(where + ".original_max_position_embeddings");
  }
  return out;
}

}  // namespace

TransformerConfig TransformerConfig::from_json(const io::Json& j) {
  const std::string type = j.at("model_type", "config.json").as_string("config.json: model_type");
  auto num = [&](const char* key) {
    return j.at(key, "config.json").as_int(std::string("config.json: ") + key);
  };
  auto num_or = [&](const char* key, int64_t dflt) {
    const io::Json* v = j.find(key);
    return v && !v->is_null() ? v->as_int(std::string("config.json: ") + key) : dflt;
  };
  auto real_or = [&](const char* key, double dflt) {
    const io::Json* v = j.find(key);
    return v && !v->is_null() ? v->as_double(std::string("config.json: ") + key) : dflt;
  };
  auto flag_or = [&](const char* key, bool dflt) {
    const io::Json* v = j.find(key);
    return v && !v->is_null() ? v->as_bool(std::string("config.json: ") + key) : dflt;
  };
  TransformerConfig c;
  c.model_type = type;
  if (type == "gpt2") {
    c = gpt2(num("vocab_size"), num("n_positions"), num("n_layer"), num("n_embd"), num("n_head"));
    c.ffn_hidden = num_or("n_inner", 0);
    c.norm_eps = static_cast<float>(real_or("layer_norm_epsilon", 1e-5));
    c.tie_embeddings = flag_or("tie_word_embeddings", true);
    c.dropout = static_cast<float>(real_or("resid_pdrop", 0.0));
  } else if (type == "llama" || type == "mistral" || type == "qwen2") {
    c = llama(num("vocab_size"), num_or("max_position_embeddings", 2048), num("num_hidden_layers"),
              num("hidden_size"), num("num_attention_heads"),
              num_or("num_key_value_heads", num("num_attention_heads")), num("intermediate_size"));
    c.model_type = type;
    c.norm_eps = static_cast<float>(real_or("rms_norm_eps", 1e-6));
    c.rope_theta = real_or("rope_theta", 10000.0);
    c.tie_embeddings = flag_or("tie_word_embeddings", false);
    c.qkv_bias = type == "qwen2" ? true : flag_or("attention_bias", false);
    c.dropout = static_cast<float>(real_or("dropout", 0.0));
    if (const io::Json* rs = j.find("rope_scaling"); rs && !rs->is_null())
      c.rope_scaling = rope_scaling_from_json(*rs);
  } else if (type == "bert") {
    c = bert(num("vocab_size"), num_or("max_position_embeddings", 512), num("num_hidden_layers"),
             num("hidden_size"), num("num_attention_heads"), num("intermediate_size"));
    c.type_vocab_size = num_or("type_vocab_size", 2);
    c.norm_eps = static_cast<float>(real_or("layer_norm_eps", 1e-12));
    c.dropout = static_cast<float>(real_or("hidden_dropout_prob", 0.0));
    if (const io::Json* act = j.find("hidden_act");
        act && act->is_string() && act->as_string() != "gelu")
      fail<FormatError>("config.json: hidden_act '", act->as_string(),
                        "' is not supported for bert (gelu, the exact erf form, is)");
    if (const io::Json* pe = j.find("position_embedding_type");
        pe && pe->is_string() && pe->as_string() != "absolute")
      fail<FormatError>("config.json: position_embedding_type '", pe->as_string(),
                        "' is not supported (absolute is)");
  } else {
    fail<FormatError>("config.json: model_type '", type,
                      "' is not supported (gpt2, llama, mistral, qwen2, bert)");
  }
  try {
    c.validate();
  } catch (const ValueError& e) {
    fail<FormatError>("config.json: ", e.what());
  }
  if (c.family == Family::llama && num_or("head_dim", c.head_dim()) != c.head_dim())
    fail<FormatError>("config.json: head_dim ", num("head_dim"), " differs from hidden_size / ",
                      "num_attention_heads = ", c.head_dim(), " (not supported)");
  return c;
}

bool operator==(const TransformerConfig& a, const TransformerConfig& b) {
  auto type = [](const TransformerConfig& c) {
    return !c.model_type.empty()                         ? c.model_type
           : c.family == TransformerConfig::Family::gpt2 ? std::string("gpt2")
           : c.family == TransformerConfig::Family::bert ? std::string("bert")
                                                         : std::string("llama");
  };
  const bool llama = a.family == TransformerConfig::Family::llama;
  return a.family == b.family && type(a) == type(b) && a.vocab_size == b.vocab_size &&
         a.context_length == b.context_length && a.n_layers == b.n_layers && a.n_embd == b.n_embd &&
         a.n_heads == b.n_heads && a.kv_heads() == b.kv_heads() &&
         a.mlp_hidden() == b.mlp_hidden() && a.norm_eps == b.norm_eps &&
         (!llama ||
          (a.rope_theta == b.rope_theta && a.rope_freq_factors() == b.rope_freq_factors())) &&
         a.tie_embeddings == b.tie_embeddings && a.qkv_bias == b.qkv_bias &&
         a.dropout == b.dropout &&
         (a.family != TransformerConfig::Family::bert || a.type_vocab_size == b.type_vocab_size);
}

// --- attention and MLP ---------------------------------------------------------------------------

Attention::Attention(const TransformerConfig& cfg)
    : cfg_(cfg), rope_factors_(cfg.rope_freq_factors()) {
  const int64_t C = cfg.n_embd, kv = cfg.kv_heads() * cfg.head_dim();
  if (cfg.family == TransformerConfig::Family::gpt2) {
    c_attn_ = std::make_unique<Linear>(C, 3 * C, true, WeightLayout::in_out);
    c_proj_ = std::make_unique<Linear>(C, C, true, WeightLayout::in_out);
    register_module("c_attn", *c_attn_);
    register_module("c_proj", *c_proj_);
  } else {
    q_proj_ = std::make_unique<Linear>(C, C, cfg.qkv_bias);
    k_proj_ = std::make_unique<Linear>(C, kv, cfg.qkv_bias);
    v_proj_ = std::make_unique<Linear>(C, kv, cfg.qkv_bias);
    o_proj_ = std::make_unique<Linear>(C, C, false);
    register_module("q_proj", *q_proj_);
    register_module("k_proj", *k_proj_);
    register_module("v_proj", *v_proj_);
    register_module("o_proj", *o_proj_);
  }
}

Var Attention::forward(const Var& x, int64_t position_offset, const Tensor<float>* mask) const {
  ag::AttentionOptions opt;
  opt.n_heads = cfg_.n_heads;
  opt.n_kv_heads = cfg_.kv_heads();
  opt.causal = true;
  opt.mask = mask;
  const int64_t C = cfg_.n_embd;
  if (cfg_.family == TransformerConfig::Family::gpt2) {
    const Var qkv = c_attn_->forward(x);  // [B, T, 3C]
    const Var q = ag::slice(qkv, -1, 0, C), k = ag::slice(qkv, -1, C, 2 * C),
              v = ag::slice(qkv, -1, 2 * C, 3 * C);
    return c_proj_->forward(ag::attention(q, k, v, opt));
  }
  opt.rope.enabled = true;
  opt.rope.theta = cfg_.rope_theta;
  opt.rope.style = kernels::RopeStyle::half;  // Hugging Face layout (rotate_half)
  opt.rope.position_offset = position_offset;
  opt.rope.freq_factors = rope_factors_;
  return o_proj_->forward(
      ag::attention(q_proj_->forward(x), k_proj_->forward(x), v_proj_->forward(x), opt));
}

MLP::MLP(const TransformerConfig& cfg) : cfg_(cfg) {
  const int64_t C = cfg.n_embd, F = cfg.mlp_hidden();
  if (cfg.family == TransformerConfig::Family::gpt2) {
    c_fc_ = std::make_unique<Linear>(C, F, true, WeightLayout::in_out);
    c_proj_ = std::make_unique<Linear>(F, C, true, WeightLayout::in_out);
    register_module("c_fc", *c_fc_);
    register_module("c_proj", *c_proj_);
  } else {
    gate_proj_ = std::make_unique<Linear>(C, F, false);
    up_proj_ = std::make_unique<Linear>(C, F, false);
    down_proj_ = std::make_unique<Linear>(F, C, false);
    register_module("gate_proj", *gate_proj_);
    register_module("up_proj", *up_proj_);
    register_module("down_proj", *down_proj_);
  }
}

Var MLP::forward(const Var& x) const {
  if (cfg_.family == TransformerConfig::Family::gpt2)
    return c_proj_->forward(ag::gelu(c_fc_->forward(x)));
  return down_proj_->forward(ag::swiglu(gate_proj_->forward(x), up_proj_->forward(x)));
}

// --- block ---------------------------------------------------------------------------------------

Block::Block(const TransformerConfig& cfg) : cfg_(cfg), attn_(cfg), mlp_(cfg) {
  if (cfg.family == TransformerConfig::Family::gpt2) {
    ln1_ = std::make_unique<LayerNorm>(cfg.n_embd, cfg.norm_eps);
    ln2_ = std::make_unique<LayerNorm>(cfg.n_embd, cfg.norm_eps);
    register_module("ln_1", *ln1_);
    register_module("attn", attn_);
    register_module("ln_2", *ln2_);
    register_module("mlp", mlp_);
  } else {
    rms1_ = std::make_unique<RMSNorm>(cfg.n_embd, cfg.norm_eps);
    rms2_ = std::make_unique<RMSNorm>(cfg.n_embd, cfg.norm_eps);
    register_module("input_layernorm", *rms1_);
    register_module("self_attn", attn_);
    register_module("post_attention_layernorm", *rms2_);
    register_module("mlp", mlp_);
  }
}

Var Block::norm(int which, const Var& x) const {
  if (ln1_) return (which == 1 ? ln1_ : ln2_)->forward(x);
  return (which == 1 ? rms1_ : rms2_)->forward(x);
}

Var Block::forward(const Var& x, Generator* dropout_gen, const Tensor<float>* mask) const {
  auto drop = [&](const Var& v) {
    if (cfg_.dropout == 0.0f || !training()) return v;
    return ag::dropout(v, cfg_.dropout, *dropout_gen, true);
  };
  const Var h = ag::add(x, drop(attn_.forward(norm(1, x), 0, mask)));
  return ag::add(h, drop(mlp_.forward(norm(2, h))));
}

// --- model ---------------------------------------------------------------------------------------

TransformerLM::TransformerLM(const TransformerConfig& cfg, uint64_t seed) : cfg_(cfg) {
  cfg.validate();
  if (cfg.is_encoder())
    fail<ValueError>(
        "TransformerLM: the BERT family is an encoder, not a language model (use "
        "nn::Encoder)");
  const bool gpt2 = cfg.family == TransformerConfig::Family::gpt2;
  wte_ = std::make_unique<Embedding>(cfg.vocab_size, cfg.n_embd);
  body_.register_module(gpt2 ? "wte" : "embed_tokens", *wte_);
  if (gpt2) {
    wpe_ = std::make_unique<Embedding>(cfg.context_length, cfg.n_embd);
    body_.register_module("wpe", *wpe_);
  }
  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    blocks_.push_back(std::make_unique<Block>(cfg));
    layers_.register_module(std::to_string(i), *blocks_.back());
  }
  body_.register_module(gpt2 ? "h" : "layers", layers_);
  if (gpt2) {
    ln_f_ = std::make_unique<LayerNorm>(cfg.n_embd, cfg.norm_eps);
    body_.register_module("ln_f", *ln_f_);
  } else {
    norm_f_ = std::make_unique<RMSNorm>(cfg.n_embd, cfg.norm_eps);
    body_.register_module("norm", *norm_f_);
  }
  register_module(gpt2 ? "transformer" : "model", body_);
  if (!cfg.tie_embeddings) {
    lm_head_ = std::make_unique<Linear>(cfg.n_embd, cfg.vocab_size, false);
    register_module("lm_head", *lm_head_);
  }

  // GPT-2 initialization, in parameter order so that a seed always gives the same model.
  Generator gen(seed);
  const float residual_std = 0.02f / std::sqrt(2.0f * static_cast<float>(cfg.n_layers));
  for (const NamedParameter& p : named_parameters()) {
    const std::string& n = p.name;
    auto ends_with = [&](const std::string& suffix) {
      return n.size() >= suffix.size() &&
             n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    Tensor<float> value = p.var.value();
    if (ends_with("bias")) continue;  // zeros
    if (value.rank() == 1) continue;  // norm weights: ones
    const bool residual = ends_with("attn.c_proj.weight") || ends_with("mlp.c_proj.weight") ||
                          ends_with("o_proj.weight") || ends_with("down_proj.weight");
    normal_(value, gen, 0.0f, residual ? residual_std : 0.02f);
  }
}

Var TransformerLM::forward(const Tensor<int32_t>& ids, Generator* dropout_gen,
                           const Tensor<int32_t>* segments) const {
  if (ids.rank() != 2)
    fail<ShapeError>("TransformerLM: ids must be [B, T], got ", ids.shape().str());
  const int64_t B = ids.size(0), T = ids.size(1);
  if (T < 1 || B < 1) fail<ShapeError>("TransformerLM: empty batch ", ids.shape().str());
  if (T > cfg_.context_length)
    fail<ShapeError>("TransformerLM: sequence of ", T, " tokens exceeds the context length ",
                     cfg_.context_length);
  if (segments && !(segments->shape() == ids.shape()))
    fail<ShapeError>("TransformerLM: segments ", segments->shape().str(),
                     " must have the ids' shape ", ids.shape().str());
  if (training() && cfg_.dropout > 0.0f && !dropout_gen)
    fail<ValueError>("TransformerLM: dropout is on, so training needs a Generator");
  // Packed rows: attention stays inside each segment, and learned positions restart at each.
  Tensor<float> mask;
  Tensor<int32_t> pos;
  if (segments) {
    const Tensor<int32_t> seg = segments->contiguous();
    mask = Tensor<float>::zeros({B, T, T});
    pos = Tensor<int32_t>::empty({B, T});
    const float blocked = -std::numeric_limits<float>::infinity();
    for (int64_t b = 0; b < B; ++b) {
      const int32_t* s = seg.data() + b * T;
      int64_t start = 0;
      for (int64_t i = 0; i < T; ++i) {
        if (i > 0 && s[i] != s[i - 1]) start = i;
        pos.data()[b * T + i] = static_cast<int32_t>(i - start);
        float* m = mask.data() + (b * T + i) * T;
        for (int64_t j = 0; j < i; ++j)
          if (s[j] != s[i]) m[j] = blocked;
      }
    }
  } else if (wpe_) {
    pos = Tensor<int32_t>::empty({1, T});
    for (int64_t t = 0; t < T; ++t) pos.data()[t] = static_cast<int32_t>(t);
  }
  Var x = wte_->forward(ids);
  if (wpe_) x = ag::add(x, wpe_->forward(pos));  // [1, T, C] broadcasts over the batch
  if (cfg_.dropout > 0.0f && training()) x = ag::dropout(x, cfg_.dropout, *dropout_gen, true);
  for (const auto& block : blocks_) x = block->forward(x, dropout_gen, segments ? &mask : nullptr);
  x = ln_f_ ? ln_f_->forward(x) : norm_f_->forward(x);
  if (lm_head_) return lm_head_->forward(x);
  return wte_->quantized() ? ag::linear(x, wte_->compact_weight()) : ag::linear(x, wte_->weight());
}

Var TransformerLM::loss(const Tensor<int32_t>& ids, const Tensor<int32_t>& targets,
                        Generator* dropout_gen, const Tensor<int32_t>* segments) const {
  return ag::cross_entropy(forward(ids, dropout_gen, segments), targets);
}

void TransformerLM::load_weights(const std::vector<std::pair<std::string, Tensor<float>>>& weights,
                                 bool allow_extra) {
  std::map<std::string, const Tensor<float>*> by_name;
  for (const auto& [name, t] : weights) by_name[name] = &t;
  // Check everything first, so a bad set of weights leaves the model as it was.
  const auto params = named_parameters();
  for (const NamedParameter& p : params) {
    auto it = by_name.find(p.name);
    if (it == by_name.end()) fail<FormatError>("load_weights: missing parameter '", p.name, "'");
    if (!(it->second->shape() == p.var.shape()))
      fail<ShapeError>("load_weights: parameter '", p.name, "' has shape ",
                       it->second->shape().str(), " in the weights but ", p.var.shape().str(),
                       " in the model");
  }
  if (!allow_extra && params.size() != by_name.size()) {
    for (const auto& [name, t] : by_name) {
      bool known = false;
      for (const NamedParameter& p : params) known = known || p.name == name;
      if (!known) fail<FormatError>("load_weights: '", name, "' is not a parameter of this model");
    }
  }
  for (const NamedParameter& p : params) p.var.value().copy_from(*by_name.at(p.name));
}

void save_hf_dir(const TransformerLM& model, const std::string& dir,
                 const text::Tokenizer* tokenizer) {
  // The file must hold the model as it computes: adapters merged (their own matrices are then left
  // out), every weight in f32.
  for (const auto& [name, m] : const_cast<TransformerLM&>(model).named_modules()) {
    if (const auto* l = dynamic_cast<const Linear*>(m)) {
      if (l->has_lora() && !l->merged())
        fail<ValueError>("save_hf_dir: layer '", name,
                         "' has an unmerged LoRA adapter (nn::merge_lora first, or save the "
                         "adapter alone with finetune::save_peft_adapter)");
      if (l->quantized())
        fail<ValueError>("save_hf_dir: layer '", name, "' holds its weight quantized (",
                         weight_type_name(l->compact_weight()->type),
                         "); Linear::dequantize it first");
    }
    if (const auto* e = dynamic_cast<const Embedding*>(m); e && e->quantized())
      fail<ValueError>("save_hf_dir: table '", name,
                       "' is held quantized; it cannot be saved as f32");
  }
  std::filesystem::create_directories(dir);
  const std::filesystem::path d(dir);
  io::SafetensorsWriter w;
  for (const auto& p : model.named_parameters())
    if (p.name.find(".lora_A.") == std::string::npos &&
        p.name.find(".lora_B.") == std::string::npos)
      w.add(p.name, p.var.value());
  w.set_metadata("format", "pt");  // as transformers writes it
  w.save((d / "model.safetensors").string());
  io::write_file_atomic((d / "config.json").string(), model.config().to_json().dump(1) + "\n");
  if (tokenizer) {
    tokenizer->save((d / "tokenizer.json").string());
    if (!tokenizer->chat_template().empty()) {  // where transformers keeps it
      io::Json tc = io::Json::object();
      tc.set("chat_template", tokenizer->chat_template());
      io::write_file_atomic((d / "tokenizer_config.json").string(), tc.dump(1) + "\n");
    }
  }
}

}  // namespace scholar::nn
