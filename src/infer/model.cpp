// Model: weights, validation, conversion between storage types.
#include <algorithm>
#include <cstring>

#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"

namespace scholar::infer {

// --- Weight
// -----------------------------------------------------------------------------------------

void Weight::row_to_f32(int64_t r, float* out) const {
  const auto* row =
      static_cast<const uint8_t*>(data) + row_bytes(type, cols) * static_cast<size_t>(r);
  kernels::active().weight(type).to_f32(out, row, static_cast<size_t>(cols));
}

std::vector<float> Weight::to_f32() const {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) row_to_f32(r, out.data() + r * cols);
  return out;
}

void Weight::pack() {
  const kernels::WeightKernels& k = kernels::active().weight(type);
  if (k.repack == nullptr || rows % 8 != 0 || packed) return;
  auto buf = std::make_shared<std::vector<uint8_t>>(bytes());
  k.repack(buf->data(), data, static_cast<size_t>(rows), static_cast<size_t>(cols));
  packed = buf->data();
  packed_owner = buf;
}

Weight Weight::from_f32(std::vector<float> values, int64_t rows, int64_t cols) {
  if (static_cast<int64_t>(values.size()) != rows * cols)
    fail<ShapeError>("Weight::from_f32: ", values.size(), " values for ", rows, " x ", cols);
  auto buf = std::make_shared<std::vector<float>>(std::move(values));
  Weight w;
  w.type = WeightType::f32;
  w.rows = rows;
  w.cols = cols;
  w.data = buf->data();
  w.owner = buf;
  return w;
}

Weight Weight::convert(WeightType t) const {
  if (t == type) return *this;
  const int64_t block = weight_type_info(t).block_values;
  if (cols % block != 0)
    fail<ValueError>("Weight::convert: ", name, " has rows of ", cols,
                     " values, not a multiple of ", block, " as ", weight_type_name(t), " needs");
  std::vector<float> f = to_f32();
  if (t == WeightType::f32) {
    Weight w = from_f32(std::move(f), rows, cols);
    w.name = name;
    return w;
  }
  const kernels::WeightKernels& k = kernels::active().weight(t);
  const size_t rb = row_bytes(t, cols);
  auto buf = std::make_shared<std::vector<uint8_t>>(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    k.from_f32(buf->data() + rb * static_cast<size_t>(r), f.data() + r * cols,
               static_cast<size_t>(cols));
  Weight w;
  w.type = t;
  w.rows = rows;
  w.cols = cols;
  w.data = buf->data();
  w.owner = buf;
  w.name = name;
  return w;
}

// --- Model
// ------------------------------------------------------------------------------------------

namespace {

void expect(const std::string& source, const Weight& w, const char* what, int64_t layer,
            int64_t rows, int64_t cols, bool required = true) {
  auto label = [&] {
    std::string s = source + ": ";
    s += w.name.empty() ? std::string(what) : w.name;
    if (w.name.empty() && layer >= 0) s += " of layer " + std::to_string(layer);
    return s;
  };
  if (w.empty()) {
    if (required) fail<FormatError>(label(), " is missing");
    return;
  }
  if (w.rows != rows || w.cols != cols)
    fail<FormatError>(label(), " has shape [", w.rows, ", ", w.cols, "], the config needs [", rows,
                      ", ", cols, "]");
  if ((rows == 1) && w.type != WeightType::f32)
    fail<FormatError>(label(), ": vectors must be f32 here");
}

}  // namespace

Model::Model(ModelConfig cfg, ModelWeights w, std::shared_ptr<const text::Tokenizer> tok,
             std::string source, std::string tokenizer_note)
    : cfg_(std::move(cfg)),
      w_(std::move(w)),
      tok_(std::move(tok)),
      source_(std::move(source)),
      tokenizer_note_(tok_ ? std::string() : std::move(tokenizer_note)) {
  const auto& a = cfg_.arch;
  try {
    a.validate();
  } catch (const ValueError& e) {
    fail<FormatError>(source_, ": ", e.what());
  }
  const int64_t C = a.n_embd, V = a.vocab_size, F = a.mlp_hidden(), D = a.head_dim();
  const int64_t HD = a.n_heads * D, KD = a.kv_heads() * D;
  const bool gpt2 = a.family == nn::TransformerConfig::Family::gpt2;
  const auto& s = source_;
  expect(s, w_.tok_embd, "token embedding", -1, V, C);
  if (gpt2) expect(s, w_.pos_embd, "position embedding", -1, a.context_length, C);
  if (static_cast<int64_t>(w_.layers.size()) != a.n_layers)
    fail<FormatError>(s, ": ", w_.layers.size(), " layers, the config says ", a.n_layers);
  for (int64_t i = 0; i < a.n_layers; ++i) {
    const LayerWeights& l = w_.layers[static_cast<size_t>(i)];
    expect(s, l.attn_norm, "attention norm", i, 1, C);
    expect(s, l.ffn_norm, "MLP norm", i, 1, C);
    expect(s, l.wo, "attention output", i, C, HD);
    expect(s, l.w_up, "MLP up", i, F, C);
    expect(s, l.w_down, "MLP down", i, C, F);
    if (gpt2) {
      expect(s, l.attn_norm_b, "attention norm bias", i, 1, C);
      expect(s, l.ffn_norm_b, "MLP norm bias", i, 1, C);
      expect(s, l.wqkv, "QKV projection", i, 3 * C, C);
      expect(s, l.bqkv, "QKV bias", i, 1, 3 * C);
      expect(s, l.bo, "attention output bias", i, 1, C);
      expect(s, l.b_up, "MLP up bias", i, 1, F);
      expect(s, l.b_down, "MLP down bias", i, 1, C);
    } else {
      expect(s, l.wq, "query projection", i, HD, C);
      expect(s, l.wk, "key projection", i, KD, C);
      expect(s, l.wv, "value projection", i, KD, C);
      expect(s, l.w_gate, "MLP gate", i, F, C);
      expect(s, l.bq, "query bias", i, 1, HD, a.qkv_bias);
      expect(s, l.bk, "key bias", i, 1, KD, a.qkv_bias);
      expect(s, l.bv, "value bias", i, 1, KD, a.qkv_bias);
    }
  }
  expect(s, w_.out_norm, "final norm", -1, 1, C);
  if (gpt2) expect(s, w_.out_norm_b, "final norm bias", -1, 1, C);
  if (w_.output.empty()) w_.output = w_.tok_embd;
  expect(s, w_.output, "output head", -1, V, C);
  // Interleaved copies of the quantized matrices, for the products.
  if (cfg_.interleave) {
    for (auto& l : w_.layers)
      for (Weight* p : {&l.wqkv, &l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
        p->pack();
    w_.output.pack();
  }
  if (tok_ && tok_->vocab_size() > V)
    fail<FormatError>(s, ": the tokenizer has ", tok_->vocab_size(),
                      " tokens, more than the model's vocabulary of ", V);
}

const text::Tokenizer& Model::tokenizer() const {
  if (!tok_)
    fail<Error>(source_, ": no tokenizer",
                tokenizer_note_.empty() ? std::string(" was found with the weights")
                                        : ": " + tokenizer_note_);
  return *tok_;
}

namespace {
template <class Fn>
void for_each_weight(const ModelWeights& w, Fn&& fn) {
  fn(w.tok_embd);
  fn(w.pos_embd);
  for (const auto& l : w.layers)
    for (const Weight* p : {&l.attn_norm, &l.attn_norm_b, &l.wqkv, &l.bqkv, &l.wq, &l.wk, &l.wv,
                            &l.bq, &l.bk, &l.bv, &l.wo, &l.bo, &l.ffn_norm, &l.ffn_norm_b,
                            &l.w_gate, &l.w_up, &l.b_up, &l.w_down, &l.b_down})
      fn(*p);
  fn(w.out_norm);
  fn(w.out_norm_b);
  if (w.output.data != w.tok_embd.data) fn(w.output);
}
}  // namespace

size_t Model::weight_bytes() const {
  size_t n = 0;
  for_each_weight(w_, [&](const Weight& x) { n += x.empty() ? 0 : x.bytes(); });
  return n;
}

size_t Model::bytes_per_token() const {
  size_t n = 0;
  for_each_weight(w_, [&](const Weight& x) {
    if (x.empty() || &x == &w_.tok_embd || &x == &w_.pos_embd) return;
    n += x.bytes();
  });
  if (w_.output.data == w_.tok_embd.data) n += w_.output.bytes();
  n += row_bytes(w_.tok_embd.type, w_.tok_embd.cols);
  return n;
}

std::string Model::weight_type_summary() const {
  std::string t;
  bool mixed = false;
  for (const auto& l : w_.layers)
    for (const Weight* p : {&l.wqkv, &l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (p->empty()) continue;
      const std::string n(weight_type_name(p->type));
      if (t.empty()) t = n;
      mixed = mixed || n != t;
    }
  return mixed ? "mixed" : t;
}

std::shared_ptr<const Model> Model::converted(WeightType t) const {
  ModelWeights w = w_;
  auto conv = [&](Weight& x) {
    if (x.empty() || x.rows == 1) return;
    if (x.cols % weight_type_info(t).block_values != 0) {
      x = x.convert(WeightType::f32);
      return;
    }
    x = x.convert(t);
  };
  const bool tied = w_.output.data == w_.tok_embd.data;
  conv(w.tok_embd);
  conv(w.pos_embd);
  for (auto& l : w.layers)
    for (Weight* p : {&l.wqkv, &l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) conv(*p);
  if (tied)
    w.output = w.tok_embd;
  else
    conv(w.output);
  auto m = std::make_shared<Model>(cfg_, std::move(w), tok_, source_, tokenizer_note_);
  return m;
}

}  // namespace scholar::infer
