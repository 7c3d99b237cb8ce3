// Model: weights, validation, conversion between storage types.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "infer/adapter_checks.hpp"
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

// --- roles
// -------------------------------------------------------------------------------------------

namespace {
using R = nn::TensorRole;
// Per role: its member in LayerWeights, or (for the global roles) in ModelWeights.
struct Slot {
  Weight LayerWeights::*layer;
  Weight ModelWeights::*global;
};
constexpr std::array<Slot, nn::kTensorRoleCount> kSlots = [] {
  std::array<Slot, nn::kTensorRoleCount> s{};
  auto at = [&](R r) -> Slot& { return s[static_cast<size_t>(r)]; };
  at(R::tok_embd).global = &ModelWeights::tok_embd;
  at(R::pos_embd).global = &ModelWeights::pos_embd;
  at(R::out_norm).global = &ModelWeights::out_norm;
  at(R::out_norm_b).global = &ModelWeights::out_norm_b;
  at(R::output).global = &ModelWeights::output;
  at(R::tok_types).global = &ModelWeights::tok_types;
  at(R::embd_norm).global = &ModelWeights::embd_norm;
  at(R::embd_norm_b).global = &ModelWeights::embd_norm_b;
  at(R::attn_out_norm).layer = &LayerWeights::attn_out_norm;
  at(R::attn_out_norm_b).layer = &LayerWeights::attn_out_norm_b;
  at(R::layer_out_norm).layer = &LayerWeights::layer_out_norm;
  at(R::layer_out_norm_b).layer = &LayerWeights::layer_out_norm_b;
  at(R::attn_norm).layer = &LayerWeights::attn_norm;
  at(R::attn_norm_b).layer = &LayerWeights::attn_norm_b;
  at(R::attn_qkv).layer = &LayerWeights::wqkv;
  at(R::attn_qkv_b).layer = &LayerWeights::bqkv;
  at(R::attn_q).layer = &LayerWeights::wq;
  at(R::attn_k).layer = &LayerWeights::wk;
  at(R::attn_v).layer = &LayerWeights::wv;
  at(R::attn_q_b).layer = &LayerWeights::bq;
  at(R::attn_k_b).layer = &LayerWeights::bk;
  at(R::attn_v_b).layer = &LayerWeights::bv;
  at(R::attn_out).layer = &LayerWeights::wo;
  at(R::attn_out_b).layer = &LayerWeights::bo;
  at(R::ffn_norm).layer = &LayerWeights::ffn_norm;
  at(R::ffn_norm_b).layer = &LayerWeights::ffn_norm_b;
  at(R::ffn_gate).layer = &LayerWeights::w_gate;
  at(R::ffn_up).layer = &LayerWeights::w_up;
  at(R::ffn_up_b).layer = &LayerWeights::b_up;
  at(R::ffn_down).layer = &LayerWeights::w_down;
  at(R::ffn_down_b).layer = &LayerWeights::b_down;
  return s;
}();
static_assert(
    [] {
      for (const Slot& s : kSlots)
        if ((s.layer == nullptr) == (s.global == nullptr)) return false;  // exactly one each
      return true;
    }(),
    "every tensor role needs exactly one member in LayerWeights or ModelWeights");
}  // namespace

Weight& weight_for(ModelWeights& w, nn::TensorRole role, int64_t layer) {
  const Slot& s = kSlots[static_cast<size_t>(role)];
  if (s.global) return w.*s.global;
  SCHOLAR_ASSERT(layer >= 0 && layer < static_cast<int64_t>(w.layers.size()), "layer ", layer,
                 " of ", w.layers.size(), " for ", nn::tensor_role_name(role));
  return w.layers[static_cast<size_t>(layer)].*s.layer;
}

const Weight& weight_for(const ModelWeights& w, nn::TensorRole role, int64_t layer) {
  return weight_for(const_cast<ModelWeights&>(w), role, layer);
}

// --- Adapter
// ----------------------------------------------------------------------------------------

void Adapter::add(nn::TensorRole role, int64_t layer, LoraUpdate u) {
  if (find(role, layer))
    fail<ValueError>("Adapter::add: ", nn::tensor_role_name(role), " of layer ", layer,
                     " already has an update");
  if (u.rank < 1 || u.a.empty() || u.b.empty() || u.a.size() % static_cast<size_t>(u.rank) != 0 ||
      u.b.size() % static_cast<size_t>(u.rank) != 0)
    fail<ValueError>("Adapter::add: ", nn::tensor_role_name(role), " of layer ", layer, ": A (",
                     u.a.size(), " values) and B (", u.b.size(),
                     " values) are not [rank, in] and [out, rank] for rank ", u.rank);
  if (!std::isfinite(u.scale))
    fail<ValueError>("Adapter::add: scale must be finite, got ", u.scale);
  updates_.push_back({{role, layer}, std::move(u)});
}

const LoraUpdate* Adapter::find(nn::TensorRole role, int64_t layer) const {
  for (const auto& [key, u] : updates_)
    if (key.first == role && key.second == layer) return &u;
  return nullptr;
}

std::vector<std::pair<nn::TensorRole, int64_t>> Adapter::targets() const {
  std::vector<std::pair<nn::TensorRole, int64_t>> out;
  for (const auto& [key, u] : updates_) out.push_back(key);
  return out;
}

const Weight& adapter_target(const Model& m, nn::TensorRole role, int64_t layer, const char* who) {
  const bool per_layer = layer >= 0 && layer < m.arch().n_layers;
  const Weight* w = nullptr;
  for (const nn::TensorSpec& t : nn::tensor_specs(m.arch()))
    if (t.role == role && (t.layer == layer || (t.layer < 0 && !per_layer)))
      w = &weight_for(m.weights(), role, t.layer);
  if (!w || w->rows == 1)
    fail<ValueError>(who, ": the model has no matrix ", nn::tensor_role_name(role), " in layer ",
                     layer);
  return *w;
}

void check_update(const Weight& w, const LoraUpdate& u, const std::string& name, const char* who) {
  if (static_cast<int64_t>(u.a.size()) != u.rank * w.cols ||
      static_cast<int64_t>(u.b.size()) != w.rows * u.rank)
    fail<ShapeError>(who, ": ", name, " is [", w.rows, ", ", w.cols, "]; the update's A has ",
                     u.a.size(), " values and B ", u.b.size(), " (rank ", u.rank, " needs ",
                     u.rank * w.cols, " and ", w.rows * u.rank, ")");
}

void Adapter::check(const Model& model) const {
  for (const auto& [key, u] : updates_)
    check_update(adapter_target(model, key.first, key.second, "Adapter::check"), u,
                 nn::gguf_name(model.arch().family, key.first, key.second), "Adapter::check");
}

// --- Model
// ------------------------------------------------------------------------------------------

std::shared_ptr<const Model> Model::merged(const std::vector<AdapterScale>& adapters) const {
  ModelWeights w = w_;
  const bool tied = w_.output.data == w_.tok_embd.data;
  // The sum of every adapter's update of each matrix, added once and stored once.
  std::vector<std::pair<std::pair<nn::TensorRole, int64_t>, std::vector<float>>> merged_f32;
  for (const AdapterScale& as : adapters) {
    if (!as.adapter) fail<ValueError>("Model::merged: an adapter is null");
    if (!std::isfinite(as.scale))
      fail<ValueError>("Model::merged: scale must be finite, got ", as.scale);
    for (const auto& key : as.adapter->targets()) {
      const Weight& src = adapter_target(*this, key.first, key.second, "Model::merged");
      const LoraUpdate& u = *as.adapter->find(key.first, key.second);
      check_update(src, u, nn::gguf_name(cfg_.arch.family, key.first, key.second), "Model::merged");
      auto it = std::find_if(merged_f32.begin(), merged_f32.end(),
                             [&](const auto& e) { return e.first == key; });
      if (it == merged_f32.end()) {
        merged_f32.push_back({key, src.to_f32()});
        it = merged_f32.end() - 1;
      }
      kernels::gemm(false, false, src.rows, src.cols, u.rank, u.scale * as.scale, u.b.data(),
                    u.rank, u.a.data(), src.cols, 1.0f, it->second.data(), src.cols);
    }
  }
  for (auto& [key, values] : merged_f32) {
    Weight& dst = weight_for(w, key.first, key.second);
    Weight f = Weight::from_f32(std::move(values), dst.rows, dst.cols);
    f.name = dst.name;
    dst = dst.type == WeightType::f32 ? std::move(f) : f.convert(dst.type);
  }
  if (tied) w.output = w.tok_embd;
  return std::make_shared<Model>(cfg_, std::move(w), tok_, source_, tokenizer_note_);
}

std::unique_ptr<nn::TransformerLM> Model::to_module() const {
  const nn::TransformerConfig& a = cfg_.arch;
  auto lm = std::make_unique<nn::TransformerLM>(a);
  std::vector<std::pair<std::string, Tensor<float>>> params;
  for (const nn::TensorSpec& t : nn::tensor_specs(a)) {
    const Weight& w = weight_for(w_, t.role, t.layer);
    std::vector<float> v = w.to_f32();
    int64_t rows = w.rows, cols = w.cols;
    if (t.transform == nn::TensorTransform::transpose) {  // back to Conv1D's [in, out]
      std::vector<float> tr(v.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) tr[c * rows + r] = v[r * cols + c];
      v = std::move(tr);
      std::swap(rows, cols);
    }
    if (t.transform == nn::TensorTransform::rope_rows &&
        cfg_.rope_style == kernels::RopeStyle::interleaved)  // llama.cpp's pairing -> HF's
      v = t.matrix ? nn::permute_rope_rows(v, rows, cols, a.head_dim(), false)
                   : nn::permute_rope_rows(v, cols, 1, a.head_dim(), false);
    const Shape shape = t.matrix ? Shape{rows, cols} : Shape{rows * cols};
    params.emplace_back(t.hf_name, Tensor<float>::from(shape, v));
  }
  lm->load_weights(params);
  return lm;
}

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
  const bool bert = a.is_encoder();
  const auto& s = source_;
  expect(s, w_.tok_embd, "token embedding", -1, V, C);
  if (gpt2 || bert) expect(s, w_.pos_embd, "position embedding", -1, a.context_length, C);
  if (bert) {
    expect(s, w_.tok_types, "token-type embedding", -1, a.type_vocab_size, C);
    expect(s, w_.embd_norm, "embedding norm", -1, 1, C);
    expect(s, w_.embd_norm_b, "embedding norm bias", -1, 1, C);
  }
  if (static_cast<int64_t>(w_.layers.size()) != a.n_layers)
    fail<FormatError>(s, ": ", w_.layers.size(), " layers, the config says ", a.n_layers);
  for (int64_t i = 0; i < a.n_layers; ++i) {
    const LayerWeights& l = w_.layers[static_cast<size_t>(i)];
    if (!bert) {
      expect(s, l.attn_norm, "attention norm", i, 1, C);
      expect(s, l.ffn_norm, "MLP norm", i, 1, C);
    }
    expect(s, l.wo, "attention output", i, C, HD);
    expect(s, l.w_up, "MLP up", i, F, C);
    expect(s, l.w_down, "MLP down", i, C, F);
    if (bert) {
      expect(s, l.wq, "query projection", i, HD, C);
      expect(s, l.wk, "key projection", i, KD, C);
      expect(s, l.wv, "value projection", i, KD, C);
      expect(s, l.bq, "query bias", i, 1, HD);
      expect(s, l.bk, "key bias", i, 1, KD);
      expect(s, l.bv, "value bias", i, 1, KD);
      expect(s, l.bo, "attention output bias", i, 1, C);
      expect(s, l.b_up, "MLP up bias", i, 1, F);
      expect(s, l.b_down, "MLP down bias", i, 1, C);
      expect(s, l.attn_out_norm, "attention output norm", i, 1, C);
      expect(s, l.attn_out_norm_b, "attention output norm bias", i, 1, C);
      expect(s, l.layer_out_norm, "layer output norm", i, 1, C);
      expect(s, l.layer_out_norm_b, "layer output norm bias", i, 1, C);
    } else if (gpt2) {
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
  if (!bert) {
    expect(s, w_.out_norm, "final norm", -1, 1, C);
    if (gpt2) expect(s, w_.out_norm_b, "final norm bias", -1, 1, C);
    if (w_.output.empty()) w_.output = w_.tok_embd;
    expect(s, w_.output, "output head", -1, V, C);
  }
  // Interleaved copies of the quantized matrices, for the products.
  if (cfg_.interleave) {
    for (auto& l : w_.layers)
      for (Weight* p : {&l.wqkv, &l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
        p->pack();
    if (!bert) w_.output.pack();
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
  else if (!w.output.empty())
    conv(w.output);
  auto m = std::make_shared<Model>(cfg_, std::move(w), tok_, source_, tokenizer_note_);
  return m;
}

}  // namespace scholar::infer
