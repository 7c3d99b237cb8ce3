// Loading models from GGUF, Hugging Face directories, scholar checkpoints and nn modules, and
// writing GGUF files that llama.cpp runs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>

#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/io/json.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/nn/arch.hpp"
#include "scholar/text/wordpiece.hpp"
#include "scholar/train/trainer.hpp"

namespace scholar::infer {

namespace fs = std::filesystem;
using Family = nn::TransformerConfig::Family;

namespace {

Weight permute_weight(const Weight& w, int64_t D, bool to_gguf) {
  Weight f = Weight::from_f32(nn::permute_rope_rows(w.to_f32(), w.rows, w.cols, D, to_gguf), w.rows,
                              w.cols);
  f.name = w.name;
  return w.type == WeightType::f32 ? f : f.convert(w.type);
}

// A bias vector of n values permuted the same way (as a [n, 1] matrix).
Weight permute_bias(const Weight& b, int64_t D, bool to_gguf) {
  std::vector<float> v(b.f32(), b.f32() + b.cols);
  Weight f = Weight::from_f32(nn::permute_rope_rows(v, b.cols, 1, D, to_gguf), 1, b.cols);
  f.name = b.name;
  return f;
}

// tokenizer_config.json's chat_template: a string, or a list of {"name", "template"} (the one named
// "default", else the first); "" when the file or the key is absent.
std::string hf_chat_template(const std::filesystem::path& config) {
  if (!std::filesystem::exists(config)) return "";
  const io::Json j = io::Json::parse(io::read_file(config.string()), config.string());
  const io::Json* t = j.is_object() ? j.find("chat_template") : nullptr;
  if (!t || t->is_null()) return "";
  if (t->is_string()) return t->as_string();
  std::string first;
  for (const io::Json& e : t->as_array(config.string() + ": chat_template")) {
    const std::string& tmpl = e.at("template", config.string()).as_string("template");
    if (first.empty()) first = tmpl;
    if (const io::Json* n = e.find("name"); n && n->is_string() && n->as_string() == "default")
      return tmpl;
  }
  return first;
}

// --- tokenizer from GGUF metadata
// ---------------------------------------------------------------------

// The model's BOS/EOS ids and its tokenizer's agree: what the model's metadata says wins, else the
// tokenizer's own (from its file, or guessed from the special tokens' names).
void reconcile_special_ids(ModelConfig& cfg, text::Tokenizer* tok, const std::string& source) {
  if (!tok) return;
  text::SpecialTokens s = tok->special_tokens();
  if (cfg.bos_id < 0) cfg.bos_id = s.bos;
  if (cfg.eos_id < 0) cfg.eos_id = s.eos;
  s.bos = cfg.bos_id;
  s.eos = cfg.eos_id;
  text::set_special_tokens_from_file(*tok, s, source);
}

std::shared_ptr<text::Tokenizer> gguf_tokenizer(const io::GgufFile& f, std::string& note) {
  const io::GgufValue* model = f.find("tokenizer.ggml.model");
  if (!model) {
    note = "the GGUF file has no tokenizer.ggml.model";
    return nullptr;
  }
  const std::string& kind = model->as_string(f.path() + ": tokenizer.ggml.model");
  if (kind == "llama")
    return std::make_shared<text::SpmTokenizer>(text::SpmTokenizer::from_gguf(f));
  if (kind == "bert")
    return std::make_shared<text::WordPieceTokenizer>(text::WordPieceTokenizer::from_gguf(f));
  if (kind != "gpt2") {
    note = "its tokenizer type '" + kind +
           "' is not supported (byte-level BPE 'gpt2', SentencePiece 'llama' and WordPiece "
           "'bert' are)";
    return nullptr;
  }
  text::PreTokenizer rule = text::PreTokenizer::gpt2;
  if (const io::GgufValue* pre = f.find("tokenizer.ggml.pre")) {
    const std::string& p = pre->as_string(f.path() + ": tokenizer.ggml.pre");
    const auto r = text::pre_tokenizer_from_name(p);
    if (!r) {
      note = "its pre-tokenizer '" + p + "' is not supported (gpt-2, llama-bpe and qwen2 are)";
      return nullptr;
    }
    rule = *r;
  }
  const std::string where = f.path() + ": tokenizer.ggml.";
  const auto tokens = f.get("tokenizer.ggml.tokens").as_strings(where + "tokens");
  std::vector<int64_t> types;
  if (const io::GgufValue* t = f.find("tokenizer.ggml.token_type"))
    types = t->as_ints(where + "token_type");
  if (!types.empty() && types.size() != tokens.size())
    fail<FormatError>(where, "token_type has ", types.size(), " entries for ", tokens.size(),
                      " tokens");
  io::Json::Object vocab;  // built directly: Json::set checks for duplicates (quadratic here)
  vocab.reserve(tokens.size());
  io::Json added = io::Json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t type = types.empty() ? 1 : types[i];
    if (type == 3 || type == 4 || type == 5) {  // control, user-defined, unused (padding)
      io::Json a = io::Json::object();
      a.set("id", io::Json(static_cast<int64_t>(i)));
      a.set("content", io::Json(tokens[i]));
      a.set("special", io::Json(true));
      added.push_back(std::move(a));
    } else {
      vocab.emplace_back(tokens[i], io::Json(static_cast<int64_t>(i)));
    }
  }
  io::Json merges = io::Json::array();
  if (const io::GgufValue* m = f.find("tokenizer.ggml.merges"))
    for (auto& s : m->as_strings(where + "merges")) merges.push_back(io::Json(std::move(s)));
  io::Json pre = io::Json::object();
  pre.set("type", io::Json("ByteLevel"));
  io::Json mj = io::Json::object();
  mj.set("type", io::Json("BPE"));
  mj.set("vocab", io::Json::object(std::move(vocab)));
  mj.set("merges", std::move(merges));
  io::Json j = io::Json::object();
  j.set("added_tokens", std::move(added));
  j.set("pre_tokenizer", std::move(pre));
  j.set("model", std::move(mj));
  auto tok = std::make_shared<text::BpeTokenizer>(
      text::BpeTokenizer::from_json(j, f.path() + " (tokenizer metadata)"));
  tok->set_pre_tokenizer(rule);
  tok->set_ignore_merges(rule == text::PreTokenizer::llama3);  // as llama.cpp decides
  text::SpecialTokens s = tok->special_tokens();  // BOS and EOS: from the model's metadata later
  if (const io::GgufValue* v = f.find("tokenizer.ggml.padding_token_id"))
    s.pad = static_cast<int32_t>(v->as_int(where + "padding_token_id"));
  if (const io::GgufValue* v = f.find("tokenizer.ggml.unknown_token_id"))
    s.unk = static_cast<int32_t>(v->as_int(where + "unknown_token_id"));
  text::set_special_tokens_from_file(*tok, s, f.path());
  return tok;
}

}  // namespace

// --- GGUF
// -----------------------------------------------------------------------------------------

std::shared_ptr<const Model> Model::from_gguf(const std::string& path, const LoadOptions& opt) {
  auto file = std::make_shared<io::GgufFile>(io::GgufFile::open(path, opt.access));
  const io::GgufFile& f = *file;
  const std::string arch = f.get("general.architecture").as_string(path + ": general.architecture");
  if (arch != "gpt2" && arch != "llama" && arch != "qwen2" && arch != "bert")
    fail<FormatError>(path, ": architecture '", arch,
                      "' is not supported (gpt2, llama, qwen2 and bert are)");
  auto key = [&](const std::string& k) { return arch + "." + k; };
  auto get_int = [&](const std::string& k) { return f.get(key(k)).as_int(path + ": " + key(k)); };
  auto get_real = [&](const std::string& k, double dflt) {
    const io::GgufValue* v = f.find(key(k));
    return v ? v->as_double(path + ": " + key(k)) : dflt;
  };
  ModelConfig cfg;
  nn::TransformerConfig& a = cfg.arch;
  a.family = arch == "gpt2" ? Family::gpt2 : arch == "bert" ? Family::bert : Family::llama;
  a.model_type = arch;
  a.context_length = get_int("context_length");
  a.n_embd = get_int("embedding_length");
  a.n_layers = get_int("block_count");
  a.ffn_hidden = get_int("feed_forward_length");
  a.n_heads = get_int("attention.head_count");
  a.n_kv_heads = f.has(key("attention.head_count_kv")) ? get_int("attention.head_count_kv") : 0;
  const io::GgufTensorInfo& emb = f.info(nn::gguf_name(a.family, nn::TensorRole::tok_embd));
  if (emb.shape.rank() != 2)
    fail<FormatError>(path, ": token_embd.weight has shape ", emb.shape.str(), ", not 2-D");
  a.vocab_size = emb.shape[0];
  a.tie_embeddings = !f.contains(nn::gguf_name(a.family, nn::TensorRole::output));
  if (a.family == Family::bert) {
    a.tie_embeddings = true;
    a.norm_eps = static_cast<float>(get_real("attention.layer_norm_epsilon", 1e-12));
    const io::GgufTensorInfo& types = f.info(nn::gguf_name(a.family, nn::TensorRole::tok_types));
    a.type_vocab_size = types.shape.rank() == 2 ? types.shape[0] : 1;
    if (f.has(key("attention.causal")) && f.get(key("attention.causal")).as_bool())
      fail<FormatError>(path, ": ", key("attention.causal"),
                        " is true; scholar's BERT family attends both ways");
    if (f.has(key("pooling_type"))) {
      // llama.cpp's enum llama_pooling_type.
      const int64_t p = get_int("pooling_type");
      cfg.pooling = p == 0 ? "none" : p == 1 ? "mean" : p == 2 ? "cls" : p == 3 ? "last" : "";
      if (cfg.pooling.empty())
        fail<FormatError>(path, ": ", key("pooling_type"), " = ", p,
                          " is not a pooling scholar knows (0 none, 1 mean, 2 cls, 3 last)");
    }
  } else if (a.family == Family::gpt2) {
    a.norm_eps = static_cast<float>(get_real("attention.layer_norm_epsilon", 1e-5));
  } else {
    a.norm_eps = static_cast<float>(get_real("attention.layer_norm_rms_epsilon", 1e-6));
    a.rope_theta = get_real("rope.freq_base", 10000.0);
    a.qkv_bias = f.contains(nn::gguf_name(a.family, nn::TensorRole::attn_q_b, 0));
    if (a.n_heads > 0 && f.has(key("rope.dimension_count")) &&
        get_int("rope.dimension_count") != a.n_embd / a.n_heads)
      fail<FormatError>(path, ": ", key("rope.dimension_count"), " = ",
                        get_int("rope.dimension_count"),
                        " rotates part of each head; scholar rotates whole heads only");
    // RoPE scaling: linear (positions / factor) from the metadata; Llama 3.1's per-pair factors
    // come as the rope_freqs tensor (read below).
    std::string scaling = "none";
    if (f.has(key("rope.scaling.type")))
      scaling = f.get(key("rope.scaling.type")).as_string(path + ": " + key("rope.scaling.type"));
    if (scaling == "linear" || (scaling == "none" && f.has(key("rope.scale_linear")))) {
      const double factor = scaling == "linear" ? get_real("rope.scaling.factor", 1.0)
                                                : get_real("rope.scale_linear", 1.0);
      if (!(factor > 0.0 && std::isfinite(factor)))
        fail<FormatError>(path, ": RoPE scaling factor ", factor, " (must be > 0)");
      if (factor != 1.0) a.rope_scaling = {.type = nn::RopeScalingType::linear, .factor = factor};
    } else if (scaling != "none") {
      fail<FormatError>(path, ": RoPE scaling '", scaling, "' is not supported (linear, or ",
                        "per-pair factors in rope_freqs.weight)");
    }
    // llama.cpp's Llama converter permutes Q/K for adjacent-pair rotation; Qwen2 uses NeoX's.
    cfg.rope_style = arch == "llama" ? kernels::RopeStyle::interleaved : kernels::RopeStyle::half;
  }
  if (const io::GgufValue* v = f.find("tokenizer.ggml.bos_token_id"))
    cfg.bos_id = static_cast<int32_t>(v->as_int());
  if (const io::GgufValue* v = f.find("tokenizer.ggml.eos_token_id"))
    cfg.eos_id = static_cast<int32_t>(v->as_int());

  auto tensor = [&](const std::string& name, bool required = true) -> Weight {
    if (!f.contains(name)) {
      if (required) fail<FormatError>(path, ": tensor ", name, " is missing");
      return {};
    }
    const io::GgufTensorInfo& t = f.info(name);
    if (t.shape.rank() > 2)
      fail<FormatError>(path, ": tensor ", name, " has shape ", t.shape.str(), " (at most 2-D)");
    Weight w;
    w.type = t.type;
    w.rows = t.shape.rank() == 2 ? t.shape[0] : 1;
    w.cols = t.shape[t.shape.rank() - 1];
    w.data = f.bytes(name).data();
    w.owner = file;
    w.name = name;
    if (w.rows == 1 && w.type != WeightType::f32) w = w.convert(WeightType::f32);
    return w;
  };
  if (a.family == Family::llama && f.contains("rope_freqs.weight")) {
    const Weight rf = tensor("rope_freqs.weight");
    const int64_t pairs = a.n_heads > 0 ? a.n_embd / a.n_heads / 2 : 0;
    if (rf.rows != 1 || rf.cols != pairs)
      fail<FormatError>(path, ": tensor rope_freqs.weight has ", rf.rows * rf.cols,
                        " values; the head dimension needs ", pairs);
    std::vector<float> factors(static_cast<size_t>(pairs));
    rf.row_to_f32(0, factors.data());
    // llama.cpp applies both: a linear factor on top of the per-pair ones.
    const double linear =
        a.rope_scaling.type == nn::RopeScalingType::linear ? a.rope_scaling.factor : 1.0;
    for (size_t i = 0; i < factors.size(); ++i) {
      factors[i] = static_cast<float>(factors[i] * linear);
      if (!(factors[i] > 0.0f && std::isfinite(factors[i])))
        fail<FormatError>(path, ": rope_freqs.weight[", i, "] is ", factors[i], " (must be > 0)");
    }
    a.rope_scaling = {.type = nn::RopeScalingType::factors, .factors = std::move(factors)};
  }
  // Check the shape before sizing anything by it: a damaged block_count must not allocate.
  try {
    a.validate();
  } catch (const ValueError& e) {
    fail<FormatError>(path, ": ", e.what());
  }
  if (a.n_layers > static_cast<int64_t>(f.tensors().size()))
    fail<FormatError>(path, ": ", key("block_count"), " = ", a.n_layers, " but the file holds ",
                      f.tensors().size(), " tensors");
  // Every tensor the architecture table lists for this config, by its GGUF name.
  ModelWeights w;
  w.layers.resize(static_cast<size_t>(a.n_layers));
  for (const nn::TensorSpec& t : nn::tensor_specs(a))
    weight_for(w, t.role, t.layer) = tensor(t.gguf_name);
  std::string note;
  auto tok = gguf_tokenizer(f, note);
  if (const io::GgufValue* ct = f.find("tokenizer.chat_template"); ct && tok)
    tok->set_chat_template(ct->as_string(path + ": tokenizer.chat_template"));
  reconcile_special_ids(cfg, tok.get(), path);
  cfg.interleave = opt.interleave;
  return std::make_shared<Model>(std::move(cfg), std::move(w), std::move(tok), path, note);
}

// --- Hugging Face names (HF directories, scholar checkpoints, nn modules)
// ----------------------------

namespace {

// A tensor by Hugging Face name: its storage type, shape and bytes.
struct Source {
  std::string label;  // file, for messages
  std::function<std::optional<Weight>(const std::string&)> get;
};

Weight transpose(const Weight& w) {
  const std::vector<float> v = w.to_f32();
  std::vector<float> t(v.size());
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) t[c * w.rows + r] = v[r * w.cols + c];
  Weight out = Weight::from_f32(std::move(t), w.cols, w.rows);
  out.name = w.name;
  return w.type == WeightType::f32 ? out : out.convert(w.type);
}

ModelWeights weights_from_hf(const nn::TransformerConfig& a, const Source& src) {
  // Hugging Face's own gpt2 files have no "transformer." prefix; ours and newer ones do. BERT is
  // the other way round: BertModel (and sentence-transformers) has none, BertFor* adds "bert.".
  const bool bare = a.family == Family::gpt2 && !src.get("transformer.wte.weight");
  const bool bert_prefix = a.family == Family::bert &&
                           !src.get("embeddings.word_embeddings.weight") &&
                           src.get("bert.embeddings.word_embeddings.weight");
  ModelWeights w;
  w.layers.resize(static_cast<size_t>(a.n_layers));
  for (const nn::TensorSpec& t : nn::tensor_specs(a)) {
    const std::string name = bare && t.hf_name.rfind("transformer.", 0) == 0
                                 ? t.hf_name.substr(std::strlen("transformer."))
                             : bert_prefix ? "bert." + t.hf_name
                                           : t.hf_name;
    auto x = src.get(name);
    if (!x) fail<FormatError>(src.label, ": tensor ", name, " is missing");
    if (x->rows == 1 && x->type != WeightType::f32) *x = x->convert(WeightType::f32);
    // The inference layout is GGUF's, except that Q/K rows keep Hugging Face's RoPE pairing
    // (ModelConfig::rope_style says which a model has).
    if (t.transform == nn::TensorTransform::transpose) *x = transpose(*x);
    weight_for(w, t.role, t.layer) = std::move(*x);
  }
  return w;
}

// A weight from one safetensors tensor: in place when its type and alignment allow.
std::optional<Weight> st_weight(const std::shared_ptr<io::SafetensorsFile>& f,
                                const std::string& name) {
  if (!f->contains(name)) return std::nullopt;
  const io::StTensorInfo& info = f->info(name);
  if (info.shape.rank() < 1 || info.shape.rank() > 2)
    fail<FormatError>(f->path(), ": tensor ", name, " has shape ", info.shape.str(),
                      " (1-D or 2-D expected)");
  Weight w;
  w.name = name;
  w.rows = info.shape.rank() == 2 ? info.shape[0] : 1;
  w.cols = info.shape[info.shape.rank() - 1];
  const auto bytes = f->bytes(name);
  if (const auto st = weight_type_from_safetensors(io::st_dtype_name(info.dtype))) {
    w.type = *st;
  } else {  // F64 and the like: convert through the safetensors loader
    const Tensor<float> t = f->load<float>(name);
    std::vector<float> v(t.data(), t.data() + t.numel());
    Weight c = Weight::from_f32(std::move(v), w.rows, w.cols);
    c.name = name;
    return c;
  }
  const size_t align = weight_type_info(w.type).block_bytes;
  if (reinterpret_cast<uintptr_t>(bytes.data()) % align == 0) {
    w.data = bytes.data();
    w.owner = f;
    return w;
  }
  auto buf = std::make_shared<std::vector<uint8_t>>(bytes.begin(), bytes.end());
  w.data = buf->data();
  w.owner = buf;
  return w;
}

}  // namespace

std::shared_ptr<const Model> Model::from_hf_dir(const std::string& dir, const LoadOptions& opt) {
  const fs::path d(dir);
  const std::string config_path = (d / "config.json").string();
  if (!fs::exists(config_path))
    fail<FormatError>(dir, ": not a Hugging Face model directory (no config.json)");
  const io::Json cj = io::Json::parse(io::read_file(config_path), config_path);
  ModelConfig cfg;
  try {
    cfg.arch = nn::TransformerConfig::from_json(cj);
  } catch (const ValueError& e) {
    fail<FormatError>(config_path, ": ", e.what());
  }
  cfg.rope_style = kernels::RopeStyle::half;
  auto id_of = [&](const char* k) -> int32_t {
    const io::Json* v = cj.find(k);
    if (!v || v->is_null()) return -1;
    if (v->is_array())
      return v->as_array().empty() ? -1 : static_cast<int32_t>(v->as_array()[0].as_int());
    return static_cast<int32_t>(v->as_int(config_path + ": " + k));
  };
  cfg.bos_id = id_of("bos_token_id");
  cfg.eos_id = id_of("eos_token_id");

  // Weights: one file, or shards listed in model.safetensors.index.json.
  std::vector<std::shared_ptr<io::SafetensorsFile>> files;
  const fs::path single = d / "model.safetensors", index = d / "model.safetensors.index.json";
  if (fs::exists(single)) {
    files.push_back(std::make_shared<io::SafetensorsFile>(
        io::SafetensorsFile::open(single.string(), opt.access)));
  } else if (fs::exists(index)) {
    const io::Json ij = io::Json::parse(io::read_file(index.string()), index.string());
    std::set<std::string> shards;
    for (const auto& [name, file] : ij.at("weight_map", index.string()).as_object())
      shards.insert(file.as_string(index.string() + ": weight_map"));
    for (const auto& s : shards) {
      if (s.find('/') != std::string::npos || s.find("..") != std::string::npos)
        fail<FormatError>(index.string(), ": shard name '", s, "' is not a plain file name");
      files.push_back(std::make_shared<io::SafetensorsFile>(
          io::SafetensorsFile::open((d / s).string(), opt.access)));
    }
  } else {
    fail<FormatError>(dir, ": no model.safetensors or model.safetensors.index.json");
  }
  Source src;
  src.label = files.size() == 1 ? files[0]->path() : dir;
  src.get = [&files](const std::string& name) -> std::optional<Weight> {
    for (const auto& f : files)
      if (auto w = st_weight(f, name)) return w;
    return std::nullopt;
  };
  ModelWeights w = weights_from_hf(cfg.arch, src);
  std::shared_ptr<text::Tokenizer> tok;
  std::string note;
  const fs::path tj = d / "tokenizer.json";
  if (fs::exists(tj)) {
    try {
      tok = text::load_tokenizer(tj.string());
    } catch (const FormatError& e) {
      note = e.what();
    }
  } else if (cfg.arch.is_encoder() && fs::exists(d / "vocab.txt")) {  // BERT's own vocabulary
    tok = std::make_shared<text::WordPieceTokenizer>(
        text::WordPieceTokenizer::from_vocab_txt((d / "vocab.txt").string()));
  } else if (fs::exists(d / "vocab.json") && fs::exists(d / "merges.txt")) {
    tok = std::make_shared<text::BpeTokenizer>(text::BpeTokenizer::from_gpt2_files(
        (d / "vocab.json").string(), (d / "merges.txt").string()));
  } else {
    note = "the directory has no tokenizer.json";
  }
  if (tok) tok->set_chat_template(hf_chat_template(d / "tokenizer_config.json"));
  reconcile_special_ids(cfg, tok.get(), dir);
  cfg.interleave = opt.interleave;
  return std::make_shared<Model>(std::move(cfg), std::move(w), std::move(tok), src.label, note);
}

std::shared_ptr<const Model> Model::from_checkpoint(const std::string& path,
                                                    const LoadOptions& opt) {
  auto f = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path, opt.access));
  auto it = f->metadata().find("config");
  if (it == f->metadata().end())
    fail<FormatError>(path,
                      ": no 'config' metadata: not a scholar checkpoint (for a Hugging Face "
                      "model, load its directory)");
  ModelConfig cfg;
  try {
    cfg.arch = nn::TransformerConfig::from_json(io::Json::parse(it->second, path + " config"));
  } catch (const ValueError& e) {
    fail<FormatError>(path, ": config: ", e.what());
  }
  cfg.rope_style = kernels::RopeStyle::half;
  Source src{path, [&f](const std::string& name) { return st_weight(f, name); }};
  ModelWeights w = weights_from_hf(cfg.arch, src);
  std::shared_ptr<text::Tokenizer> tok = train::read_tokenizer(*f);
  const std::string note = tok ? "" : "the checkpoint carries no tokenizer";
  reconcile_special_ids(cfg, tok.get(), path);
  cfg.interleave = opt.interleave;
  return std::make_shared<Model>(std::move(cfg), std::move(w), std::move(tok), path, note);
}

std::shared_ptr<const Model> Model::from_module(const nn::TransformerLM& lm,
                                                std::shared_ptr<const text::Tokenizer> tok) {
  std::map<std::string, Tensor<float>> params;
  for (const auto& p : lm.named_parameters()) params.emplace(p.name, p.var.value().contiguous());
  Source src{"nn::TransformerLM", [&params](const std::string& name) -> std::optional<Weight> {
               auto it = params.find(name);
               if (it == params.end()) return std::nullopt;
               const Tensor<float>& t = it->second;
               const int64_t cols = t.shape()[t.shape().rank() - 1], rows = t.numel() / cols;
               Weight w =
                   Weight::from_f32(std::vector<float>(t.data(), t.data() + t.numel()), rows, cols);
               w.name = name;
               return w;
             }};
  ModelConfig cfg;
  cfg.arch = lm.config();
  cfg.rope_style = kernels::RopeStyle::half;
  ModelWeights w = weights_from_hf(cfg.arch, src);
  if (tok) {
    cfg.bos_id = tok->special_tokens().bos;
    cfg.eos_id = tok->special_tokens().eos;
  }
  return std::make_shared<Model>(std::move(cfg), std::move(w), std::move(tok), "nn::TransformerLM",
                                 "none was given to from_module");
}

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& opt) {
  if (fs::is_directory(path)) return from_hf_dir(path, opt);
  if (!fs::exists(path)) fail<IoError>(path, ": no such file or directory");
  // Decide by content, not by name.
  std::string head(4, '\0');
  {
    auto f = io::MappedFile::open(path);
    if (f->size() >= 4) std::memcpy(head.data(), f->data(), 4);
  }
  if (head == "GGUF") return from_gguf(path, opt);
  return from_checkpoint(path, opt);
}

// --- GGUF export
// -------------------------------------------------------------------------------------

void Model::save_gguf(const std::string& path, WeightType type) const {
  const auto& a = cfg_.arch;
  const bool gpt2 = a.family == Family::gpt2;
  const std::string arch(nn::gguf_architecture(a));
  io::GgufWriter g;
  using V = io::GgufValue;
  g.set("general.architecture", V::string(arch));
  g.set("general.name", V::string("scholar export"));
  g.set("general.file_type", V::u32(static_cast<uint32_t>(weight_type_info(type).gguf_file_type)));
  auto k = [&](const std::string& s) { return arch + "." + s; };
  g.set(k("context_length"), V::u32(static_cast<uint32_t>(a.context_length)));
  g.set(k("embedding_length"), V::u32(static_cast<uint32_t>(a.n_embd)));
  g.set(k("block_count"), V::u32(static_cast<uint32_t>(a.n_layers)));
  g.set(k("feed_forward_length"), V::u32(static_cast<uint32_t>(a.mlp_hidden())));
  g.set(k("attention.head_count"), V::u32(static_cast<uint32_t>(a.n_heads)));
  if (a.is_encoder()) {
    g.set(k("attention.layer_norm_epsilon"), V::f32(a.norm_eps));
    g.set(k("attention.causal"), V::boolean(false));
    const std::string& p = cfg_.pooling;
    if (!p.empty())
      g.set(k("pooling_type"), V::u32(p == "none" ? 0 : p == "mean" ? 1 : p == "cls" ? 2 : 3));
    g.set("tokenizer.ggml.token_type_count", V::u32(static_cast<uint32_t>(a.type_vocab_size)));
  } else if (gpt2) {
    g.set(k("attention.layer_norm_epsilon"), V::f32(a.norm_eps));
  } else {
    g.set(k("attention.head_count_kv"), V::u32(static_cast<uint32_t>(a.kv_heads())));
    g.set(k("attention.layer_norm_rms_epsilon"), V::f32(a.norm_eps));
    g.set(k("rope.freq_base"), V::f32(static_cast<float>(a.rope_theta)));
    g.set(k("rope.dimension_count"), V::u32(static_cast<uint32_t>(a.head_dim())));
  }
  // RoPE scaling: one factor for all pairs is llama.cpp's linear scaling; per-pair factors (Llama
  // 3.1) are its rope_freqs tensor, which it reads for the llama architecture only.
  const std::vector<float> rope_factors = a.rope_freq_factors();
  const bool uniform_rope =
      !rope_factors.empty() && std::all_of(rope_factors.begin(), rope_factors.end(),
                                           [&](float v) { return v == rope_factors[0]; });
  if (uniform_rope) {
    g.set(k("rope.scaling.type"), V::string("linear"));
    g.set(k("rope.scaling.factor"), V::f32(rope_factors[0]));
  } else if (!rope_factors.empty() && arch != "llama") {
    fail<ValueError>("save_gguf: llama.cpp reads per-pair RoPE factors (rope_freqs) for the ",
                     "llama architecture only, not ", arch);
  }
  if (const auto* spm = dynamic_cast<const text::SpmTokenizer*>(tok_.get())) {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (const auto& p : spm->pieces()) {
      tokens.push_back(p.text);
      scores.push_back(p.score);
      types.push_back(static_cast<int32_t>(p.type));
    }
    for (int64_t i = spm->vocab_size(); i < a.vocab_size; ++i) {
      tokens.push_back("[PAD" + std::to_string(i) + "]");
      scores.push_back(-1e9f);
      types.push_back(5);
    }
    g.set("tokenizer.ggml.model", V::string("llama"));
    g.set("tokenizer.ggml.tokens", V::string_array(std::move(tokens)));
    g.set("tokenizer.ggml.scores", V::f32_array(scores));
    g.set("tokenizer.ggml.token_type", V::i32_array(types));
    g.set("tokenizer.ggml.add_space_prefix", V::boolean(spm->add_space_prefix()));
  } else if (const auto* wp = dynamic_cast<const text::WordPieceTokenizer*>(tok_.get())) {
    // llama.cpp's BERT vocabulary: word-initial pieces get a U+2581 prefix, continuations lose
    // their "##", special (control) tokens stay as they are (convert_hf_to_gguf's phantom space).
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    const std::string& prefix = wp->options().continuing_subword_prefix;
    for (int32_t i = 0; i < a.vocab_size; ++i) {
      if (i >= wp->vocab_size()) {
        tokens.push_back("[PAD" + std::to_string(i) + "]");
        types.push_back(5);
        continue;
      }
      const std::string& t = wp->token_bytes(i);
      if (wp->is_special(i))
        tokens.push_back(t);
      else if (t.starts_with(prefix))
        tokens.push_back(t.substr(prefix.size()));
      else
        tokens.push_back(std::string("\xE2\x96\x81") + t);
      types.push_back(wp->is_special(i) ? 3 : 1);
    }
    g.set("tokenizer.ggml.model", V::string("bert"));
    g.set("tokenizer.ggml.tokens", V::string_array(std::move(tokens)));
    g.set("tokenizer.ggml.token_type", V::i32_array(types));
    const auto& s = wp->special_tokens();
    if (s.unk >= 0) g.set("tokenizer.ggml.unknown_token_id", V::u32(static_cast<uint32_t>(s.unk)));
    if (s.pad >= 0) g.set("tokenizer.ggml.padding_token_id", V::u32(static_cast<uint32_t>(s.pad)));
    if (wp->sep_id() >= 0)
      g.set("tokenizer.ggml.seperator_token_id", V::u32(static_cast<uint32_t>(wp->sep_id())));
  } else if (const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(tok_.get())) {
    const int64_t V_ = a.vocab_size;
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    const io::Json tj = bpe->to_json();
    std::vector<std::string> printable(static_cast<size_t>(bpe->vocab_size()));
    for (const auto& [text, id] : tj.at("model").at("vocab").as_object())
      printable[static_cast<size_t>(id.as_int())] = text;
    for (int32_t i = 0; i < V_; ++i) {
      if (i >= bpe->vocab_size()) {
        tokens.push_back("[PAD" + std::to_string(i) + "]");
        types.push_back(5);
      } else if (bpe->is_special(i)) {
        tokens.push_back(bpe->token_bytes(i));
        types.push_back(3);
      } else {
        tokens.push_back(printable[static_cast<size_t>(i)]);
        types.push_back(1);
      }
    }
    std::vector<std::string> merges;
    for (const auto& m : tj.at("model").at("merges").as_array()) merges.push_back(m.as_string());
    g.set("tokenizer.ggml.model", V::string("gpt2"));
    g.set("tokenizer.ggml.pre",
          V::string(std::string(text::pre_tokenizer_name(bpe->pre_tokenizer()))));
    g.set("tokenizer.ggml.tokens", V::string_array(std::move(tokens)));
    g.set("tokenizer.ggml.token_type", V::i32_array(types));
    g.set("tokenizer.ggml.merges", V::string_array(std::move(merges)));
  }
  if (cfg_.bos_id >= 0)
    g.set("tokenizer.ggml.bos_token_id", V::u32(static_cast<uint32_t>(cfg_.bos_id)));
  if (cfg_.eos_id >= 0)
    g.set("tokenizer.ggml.eos_token_id", V::u32(static_cast<uint32_t>(cfg_.eos_id)));
  if (tok_ && !tok_->chat_template().empty())
    g.set("tokenizer.chat_template", V::string(tok_->chat_template()));

  auto add = [&](const std::string& name, Weight w, bool matrix) {
    if (w.empty()) return;
    if (matrix) {
      WeightType t = type;
      if (w.cols % weight_type_info(t).block_values != 0) t = WeightType::f32;
      w = w.convert(t);
    } else {
      w = w.convert(WeightType::f32);
    }
    const Shape shape = w.rows == 1 && !matrix ? Shape{w.cols} : Shape{w.rows, w.cols};
    g.add_tensor(name, w.type, shape, w.data, w.bytes(), w.owner);
  };
  // llama.cpp's llama architecture rotates adjacent pairs: permute weights that pair (i, i + D/2).
  const bool permute = arch == "llama" && cfg_.rope_style == kernels::RopeStyle::half;
  const int64_t D = a.head_dim();
  if (!rope_factors.empty() && !uniform_rope)
    add("rope_freqs.weight",
        Weight::from_f32(rope_factors, 1, static_cast<int64_t>(rope_factors.size())), false);
  for (const nn::TensorSpec& t : nn::tensor_specs(a)) {
    Weight x = weight_for(w_, t.role, t.layer);
    if (t.role == nn::TensorRole::output && x.data == w_.tok_embd.data) continue;  // tied
    if (permute && t.transform == nn::TensorTransform::rope_rows)
      x = t.matrix ? permute_weight(x, D, true) : permute_bias(x, D, true);
    add(t.gguf_name, std::move(x), t.matrix);
  }
  g.save(path);
}

}  // namespace scholar::infer
