// SentenceEncoder: a transformer on the inference engine, pooled into sentence vectors.
#include "scholar/rag/embedder.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/parallel.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/wordpiece.hpp"
#include "text/fingerprint.hpp"

namespace scholar::rag {

namespace fs = std::filesystem;

std::vector<float> Embedder::embed(std::string_view text) const {
  const std::string one(text);
  return embed(std::span<const std::string>(&one, 1));
}

std::string_view pooling_name(Pooling p) {
  switch (p) {
    case Pooling::mean:
      return "mean";
    case Pooling::cls:
      return "cls";
    case Pooling::max:
      return "max";
    case Pooling::last:
      return "last";
  }
  return "?";
}

float dot(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size())
    fail<ShapeError>("rag::dot: vectors of ", a.size(), " and ", b.size(), " values");
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double{a[i]} * b[i];
  return static_cast<float>(s);
}

namespace {

std::optional<Pooling> pooling_from_name(std::string_view s) {
  for (Pooling p : {Pooling::mean, Pooling::cls, Pooling::max, Pooling::last})
    if (pooling_name(p) == s) return p;
  return std::nullopt;
}

io::Json read_json(const fs::path& p) {
  return io::Json::parse(io::read_file(p.string()), p.string());
}

// sentence-transformers' Pooling config: exactly one of the modes scholar runs.
Pooling pooling_from_config(const fs::path& path) {
  const io::Json j = read_json(path);
  auto on = [&](const char* key) {
    const io::Json* v = j.find(key);
    return v && v->is_bool() && v->as_bool();
  };
  std::vector<Pooling> modes;
  if (on("pooling_mode_mean_tokens")) modes.push_back(Pooling::mean);
  if (on("pooling_mode_cls_token")) modes.push_back(Pooling::cls);
  if (on("pooling_mode_max_tokens")) modes.push_back(Pooling::max);
  if (on("pooling_mode_lasttoken")) modes.push_back(Pooling::last);
  for (const char* other :
       {"pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens"})
    if (on(other))
      fail<FormatError>(path.string(), ": ", other,
                        " is not a pooling scholar runs (mean, cls, max, "
                        "lasttoken are)");
  if (modes.size() != 1)
    fail<FormatError>(path.string(), ": ", modes.size(),
                      " pooling modes are on; scholar runs exactly one (mean, cls, max or "
                      "lasttoken)");
  return modes[0];
}

}  // namespace

std::unique_ptr<SentenceEncoder> SentenceEncoder::load(const std::string& path,
                                                       const SentenceEncoderOptions& options) {
  SentenceEncoderOptions opt = options;
  const fs::path root(path);
  if (!fs::exists(root)) fail<IoError>(path, ": no such file or directory");
  Pooling pooling = Pooling::mean;
  bool normalize = true, lowercase = false;
  std::string model_path = path;
  std::string name = root.filename().string();
  if (name.empty()) name = root.parent_path().filename().string();
  if (fs::is_directory(root) && fs::exists(root / "modules.json")) {
    // sentence-transformers: a pipeline of modules, each in its own folder.
    normalize = false;
    bool have_transformer = false, have_pooling = false;
    const fs::path mj = root / "modules.json";
    const io::Json modules = read_json(mj);
    for (const io::Json& m : modules.as_array(mj.string())) {
      const std::string& type = m.at("type", mj.string()).as_string(mj.string() + ": type");
      const io::Json* p = m.find("path");
      const fs::path dir = root / (p && p->is_string() ? p->as_string() : std::string());
      if (type.ends_with(".Transformer")) {
        have_transformer = true;
        model_path = dir.string();
        const fs::path sb = dir / "sentence_bert_config.json";
        if (fs::exists(sb)) {
          const io::Json c = read_json(sb);
          if (const io::Json* v = c.find("max_seq_length");
              v && v->is_number() && opt.max_length == 0)
            opt.max_length = v->as_int(sb.string() + ": max_seq_length");
          if (const io::Json* v = c.find("do_lower_case"); v && v->is_bool())
            lowercase = v->as_bool();
        }
      } else if (type.ends_with(".Pooling")) {
        have_pooling = true;
        pooling = pooling_from_config(dir / "config.json");
      } else if (type.ends_with(".Normalize")) {
        normalize = true;
      } else {
        fail<FormatError>(mj.string(), ": module '", type,
                          "' is not one scholar runs (Transformer, Pooling and Normalize are)");
      }
    }
    if (!have_transformer || !have_pooling)
      fail<FormatError>(mj.string(), ": needs a Transformer and a Pooling module");
  }
  auto model = infer::Model::load(model_path);
  if (!fs::is_directory(root) && !model->config().pooling.empty()) {  // GGUF
    const auto p = pooling_from_name(model->config().pooling);
    if (!p)
      fail<FormatError>(path, ": pooling '", model->config().pooling,
                        "' is not one a sentence encoder uses (mean, cls, max, last)");
    pooling = *p;
  }
  if (opt.weight_type != WeightType::f32) model = model->converted(opt.weight_type);
  auto enc = std::make_unique<SentenceEncoder>(std::move(model), pooling, normalize, opt, name);
  enc->lowercase_ = lowercase;
  enc->location_ = fs::absolute(root).lexically_normal().string();
  return enc;
}

SentenceEncoder::SentenceEncoder(std::shared_ptr<const infer::Model> model, Pooling pooling,
                                 bool normalize, const SentenceEncoderOptions& opt,
                                 std::string name)
    : model_(std::move(model)),
      pooling_(pooling),
      normalize_(normalize),
      batch_size_(opt.batch_size),
      max_batch_tokens_(opt.max_batch_tokens),
      pool_(opt.pool),
      name_(std::move(name)) {
  if (!model_) fail<ValueError>("SentenceEncoder: no model");
  if (!model_->has_tokenizer())
    fail<FormatError>(model_->source(),
                      ": a sentence encoder needs the model's tokenizer, and none came with it");
  if (batch_size_ < 1 || batch_size_ > 64)
    fail<ValueError>("SentenceEncoder: batch_size must be in [1, 64], got ", batch_size_);
  if (max_batch_tokens_ < 0)
    fail<ValueError>("SentenceEncoder: max_batch_tokens must be >= 0, got ", max_batch_tokens_);
  if (opt.max_length < 0 || opt.max_length == 1 || opt.max_length == 2)
    fail<ValueError>("SentenceEncoder: max_length must be 0 (the model's) or at least 3, got ",
                     opt.max_length);
  const int64_t ctx = model_->arch().context_length;
  max_length_ = opt.max_length == 0 ? ctx : std::min(opt.max_length, ctx);
  if (name_.empty()) name_ = model_->source();
}

SentenceEncoder::~SentenceEncoder() = default;

size_t SentenceEncoder::dim() const {
  return static_cast<size_t>(model_->arch().n_embd);
}

std::string SentenceEncoder::name() const {
  return name_ + " (" + std::string(pooling_name(pooling_)) + (normalize_ ? ", normalized)" : ")");
}

std::string SentenceEncoder::fingerprint() const {
  std::lock_guard lock(mu_);
  if (!fingerprint_.empty()) return fingerprint_;
  text::detail::Fingerprint f;
  f.bytes("scholar-sentence-encoder-1");
  f.bytes(model_->arch().to_json().dump());
  f.bytes(model_->tokenizer().fingerprint());
  f.bytes(pooling_name(pooling_));
  f.number(normalize_);
  f.number(lowercase_);
  f.number(static_cast<uint64_t>(max_length_));
  // The weights: every tensor's type and shape, and a sample of its bytes (one 8-byte word in
  // every 64 bytes: any training step or another checkpoint changes them).
  infer::for_each_weight(model_->weights(), [&](const infer::Weight& w) {
    if (w.empty()) return;
    f.number(static_cast<uint64_t>(w.type));
    f.number(static_cast<uint64_t>(w.rows));
    f.number(static_cast<uint64_t>(w.cols));
    const auto* p = static_cast<const uint8_t*>(w.data);
    const size_t n = w.bytes();
    for (size_t i = 0; i + 8 <= n; i += 64) {
      uint64_t v;
      std::memcpy(&v, p + i, 8);
      f.number(v);
    }
  });
  fingerprint_ = f.hex();
  return fingerprint_;
}

void SentenceEncoder::save_gguf(const std::string& path, WeightType type) const {
  infer::ModelConfig cfg = model_->config();
  cfg.pooling = std::string(pooling_name(pooling_));
  const infer::Model with_pooling(cfg, model_->weights(), model_->tokenizer_ptr(),
                                  model_->source());
  with_pooling.save_gguf(path, type);
}

std::vector<int32_t> SentenceEncoder::tokenize(std::string_view text_in) const {
  const std::string lowered = lowercase_ ? text::to_lower(text_in) : std::string();
  const std::string_view text = lowercase_ ? std::string_view(lowered) : text_in;
  const text::Tokenizer& tok = model_->tokenizer();
  if (const auto* wp = dynamic_cast<const text::WordPieceTokenizer*>(&tok))
    return wp->encode_for_model(text, static_cast<size_t>(max_length_));
  // Other tokenizers (decoder embedding models): BOS (if any), the text, EOS (if any), cut to fit.
  std::vector<int32_t> ids;
  const auto& s = tok.special_tokens();
  if (s.bos >= 0) ids.push_back(s.bos);
  const auto body = tok.encode(text);
  const auto room = static_cast<size_t>(max_length_) - ids.size() - (s.eos >= 0 ? 1 : 0);
  ids.insert(ids.end(), body.begin(),
             body.begin() + static_cast<std::ptrdiff_t>(std::min(room, body.size())));
  if (s.eos >= 0) ids.push_back(s.eos);
  return ids;
}

std::vector<float> SentenceEncoder::embed(std::span<const std::string> texts) const {
  const size_t C = dim();
  std::vector<float> out(texts.size() * C);
  if (texts.empty()) return out;
  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ids[i] = tokenize(texts[i]);
    if (ids[i].empty()) fail<ValueError>("SentenceEncoder: text ", i, " has no tokens");
  }
  std::lock_guard lock(mu_);
  if (!session_) {
    infer::SessionOptions so;
    so.embeddings = true;
    so.max_sequences = batch_size_;
    so.n_ctx = static_cast<int64_t>(batch_size_) * max_length_;
    so.max_batch = so.n_ctx;
    so.pool = pool_;
    session_ = std::make_unique<infer::Session>(model_, so);
  }
  const int64_t budget =
      max_batch_tokens_ > 0
          ? max_batch_tokens_
          : int64_t{512} * (pool_ != nullptr ? pool_->size() : thread_pool().size());
  infer::Batch batch;
  std::vector<double> acc(C);
  for (size_t first = 0, last = 0; first < texts.size(); first = last) {
    // Texts in order, up to batch_size of them and budget tokens (at least one text).
    int64_t tokens = static_cast<int64_t>(ids[first].size());
    last = first + 1;
    while (last < texts.size() && last - first < static_cast<size_t>(batch_size_) &&
           tokens + static_cast<int64_t>(ids[last].size()) <= budget)
      tokens += static_cast<int64_t>(ids[last++].size());
    // One sequence per text, all tokens flagged: the session returns every token's state.
    batch.clear();
    for (size_t i = first; i < last; ++i)
      for (size_t t = 0; t < ids[i].size(); ++t)
        batch.add(ids[i][t], static_cast<int64_t>(t), static_cast<int32_t>(i - first), true);
    session_->clear();
    const std::span<const float> states = session_->decode(batch);
    session_->clear();
    const float* row = states.data();
    for (size_t i = first; i < last; ++i) {
      const size_t T = ids[i].size();
      float* v = out.data() + i * C;
      switch (pooling_) {
        case Pooling::mean:
          std::fill(acc.begin(), acc.end(), 0.0);
          for (size_t t = 0; t < T; ++t)
            for (size_t c = 0; c < C; ++c) acc[c] += row[t * C + c];
          for (size_t c = 0; c < C; ++c) v[c] = static_cast<float>(acc[c] / static_cast<double>(T));
          break;
        case Pooling::cls:
          std::copy(row, row + C, v);
          break;
        case Pooling::last:
          std::copy(row + (T - 1) * C, row + T * C, v);
          break;
        case Pooling::max:
          std::copy(row, row + C, v);
          for (size_t t = 1; t < T; ++t)
            for (size_t c = 0; c < C; ++c) v[c] = std::max(v[c], row[t * C + c]);
          break;
      }
      if (normalize_) {  // sentence-transformers' Normalize: v / max(|v|, 1e-12)
        double n = 0;
        for (size_t c = 0; c < C; ++c) n += double{v[c]} * v[c];
        const double inv = 1.0 / std::max(std::sqrt(n), 1e-12);
        for (size_t c = 0; c < C; ++c) v[c] = static_cast<float>(v[c] * inv);
      }
      row += T * C;
    }
  }
  return out;
}

}  // namespace scholar::rag
