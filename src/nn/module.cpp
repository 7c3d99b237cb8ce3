// Modules, parameter naming, and the basic layers.
#include "scholar/nn/module.hpp"

#include <cmath>
#include <regex>
#include <unordered_set>

#include "scholar/error.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::nn {

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  collect("", out);
  // A shared parameter (tied embeddings) appears once, under its first name.
  std::unordered_set<const void*> seen;
  std::vector<NamedParameter> unique;
  for (auto& p : out)
    if (seen.insert(p.var.impl()).second) unique.push_back(std::move(p));
  return unique;
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& p : params_) out.push_back({prefix + p.name, p.var});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> v;
  for (auto& p : named_parameters()) v.push_back(p.var);
  return v;
}

Var Module::parameter(const std::string& name) const {
  const auto all = named_parameters();
  for (const auto& p : all)
    if (p.name == name) return p.var;
  std::string some;
  for (size_t i = 0; i < all.size() && i < 4; ++i) some += (i ? ", " : "") + all[i].name;
  fail<ValueError>("no parameter named '", name, "' (", all.size(), " parameters, e.g. ", some,
                   ")");
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.var.value().numel();
  return n;
}

int64_t Module::trainable_parameter_count() const {
  int64_t n = 0;
  for (const auto& p : named_parameters())
    if (p.var.requires_grad()) n += p.var.value().numel();
  return n;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules())
      out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  for (auto& [name, m] : const_cast<Module*>(this)->named_modules()) out.emplace_back(name, m);
  return out;
}

int64_t Module::set_trainable(const std::string& pattern, bool on, const char* what) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail<ValueError>(what, ": '", pattern, "' is not a valid regular expression (", e.what(), ")");
  }
  int64_t n = 0;
  for (auto& p : named_parameters())
    if (std::regex_match(p.name, re)) {
      p.var.set_requires_grad(on);
      if (!on) p.var.zero_grad();
      ++n;
    }
  if (n == 0) {
    const auto all = named_parameters();
    std::string some;
    for (size_t i = 0; i < all.size() && i < 3; ++i) some += (i ? ", " : "") + all[i].name;
    fail<ValueError>(what, ": no parameter name matches '", pattern, "' (names look like ", some,
                     ")");
  }
  return n;
}

int64_t Module::freeze(const std::string& pattern) {
  return set_trainable(pattern, false, "freeze");
}

int64_t Module::unfreeze(const std::string& pattern) {
  return set_trainable(pattern, true, "unfreeze");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& p : named_parameters()) p.var.zero_grad();
}

Var Module::register_parameter(const std::string& name, Tensor<float> init) {
  Var v(std::move(init), true);
  register_shared(name, v);
  return v;
}

void Module::register_shared(const std::string& name, const Var& var) {
  for (const auto& p : params_)
    if (p.name == name) fail<ValueError>("register_parameter: '", name, "' registered twice");
  params_.push_back({name, var});
}

void Module::register_module(const std::string& name, Module& child) {
  children_.emplace_back(name, &child);
}

void Module::unregister_parameter(const std::string& name) {
  for (auto it = params_.begin(); it != params_.end(); ++it)
    if (it->name == name) {
      params_.erase(it);
      return;
    }
  fail<ValueError>("unregister_parameter: no parameter named '", name, "'");
}

void Module::unregister_module(const std::string& name) {
  for (auto it = children_.begin(); it != children_.end(); ++it)
    if (it->first == name) {
      children_.erase(it);
      return;
    }
  fail<ValueError>("unregister_module: no child named '", name, "'");
}

double LoraSpec::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

struct Linear::Lora {
  LoraSpec spec;
  std::unique_ptr<Linear> a, b;  // lora_A: [r, in]; lora_B: [out, r]
  mutable Generator gen;         // dropout masks
  bool merged = false;
};

Linear::Linear(int64_t in, int64_t out, bool bias, autograd::WeightLayout layout)
    : in_(in), out_(out), layout_(layout) {
  if (in < 1 || out < 1) fail<ValueError>("Linear: sizes must be positive, got ", in, " x ", out);
  weight_ = register_parameter("weight", layout == autograd::WeightLayout::out_in
                                             ? Tensor<float>::zeros({out, in})
                                             : Tensor<float>::zeros({in, out}));
  if (bias) bias_ = register_parameter("bias", Tensor<float>::zeros({out}));
}

Linear::~Linear() = default;

Var Linear::forward(const Var& x) const {
  if (lora_ && !lora_->merged) {
    const autograd::LoraBranch branch{lora_->a->weight(),
                                      lora_->b->weight(),
                                      static_cast<float>(lora_->spec.scale()),
                                      static_cast<float>(lora_->spec.dropout),
                                      &lora_->gen,
                                      training()};
    return compact_ ? autograd::lora_linear(x, compact_, bias_, branch)
                    : autograd::lora_linear(x, weight_, bias_, layout_, branch);
  }
  if (compact_) return autograd::linear(x, compact_, bias_);
  return autograd::linear(x, weight_, bias_, layout_);
}

Tensor<float> Linear::dense_weight() const {
  if (!compact_) return weight_.value();
  Tensor<float> w = compact_->dequantize();
  return layout_ == autograd::WeightLayout::in_out ? w.t().contiguous() : w;
}

void Linear::add_lora(const LoraSpec& spec, Generator& gen, uint64_t dropout_seed) {
  if (lora_) fail<ValueError>("add_lora: this layer already has an adapter");
  if (spec.rank < 1 || spec.rank > std::min(in_, out_))
    fail<ValueError>("add_lora: rank ", spec.rank, " must be in [1, ", std::min(in_, out_),
                     "] for a ", in_, " -> ", out_, " layer");
  if (!(spec.alpha > 0.0)) fail<ValueError>("add_lora: lora_alpha must be > 0, got ", spec.alpha);
  if (!(spec.dropout >= 0.0 && spec.dropout < 1.0))
    fail<ValueError>("add_lora: lora_dropout must be in [0, 1), got ", spec.dropout);
  auto l = std::make_unique<Lora>();
  l->spec = spec;
  l->a = std::make_unique<Linear>(in_, spec.rank, false);
  l->b = std::make_unique<Linear>(spec.rank, out_, false);
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_));
  Tensor<float> a = Tensor<float>::empty({spec.rank, in_});
  uniform_(a, gen, -bound, bound);
  l->a->weight_.set_value(std::move(a));
  l->gen = Generator(dropout_seed);
  l->a->train(training());
  l->b->train(training());
  register_module("lora_A", *l->a);
  register_module("lora_B", *l->b);
  lora_ = std::move(l);
}

void Linear::remove_lora() {
  if (!lora_) fail<ValueError>("remove_lora: this layer has no adapter");
  if (lora_->merged) unmerge();
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_.reset();
}

const LoraSpec* Linear::lora_spec() const noexcept {
  return lora_ ? &lora_->spec : nullptr;
}

const Var& Linear::lora_a() const {
  if (!lora_) fail<ValueError>("Linear: no LoRA adapter");
  return lora_->a->weight();
}

const Var& Linear::lora_b() const {
  if (!lora_) fail<ValueError>("Linear: no LoRA adapter");
  return lora_->b->weight();
}

bool Linear::merged() const noexcept {
  return lora_ && lora_->merged;
}

namespace {

// w [out, in] (or [in, out] when in_out) + sign * scale * B A, as a new tensor.
Tensor<float> add_delta(const Tensor<float>& w, bool in_out, const Tensor<float>& a,
                        const Tensor<float>& b, float scale) {
  Tensor<float> out = w.clone();
  const Tensor<float> ac = a.contiguous(), bc = b.contiguous();
  const int64_t r = ac.size(0), in = ac.size(1), o = bc.size(0);
  if (in_out)  // W [in, out] += s A^T B^T
    kernels::gemm(true, true, in, o, r, scale, ac.data(), in, bc.data(), r, 1.0f, out.data(), o);
  else  // W [out, in] += s B A
    kernels::gemm(false, false, o, in, r, scale, bc.data(), r, ac.data(), in, 1.0f, out.data(), in);
  return out;
}

}  // namespace

void Linear::shift_by_delta(float sign) {
  const auto s = sign * static_cast<float>(lora_->spec.scale());
  if (compact_) {
    compact_ =
        std::make_shared<const autograd::QuantizedWeight>(autograd::QuantizedWeight::quantize(
            add_delta(compact_->dequantize(), false, lora_a().value(), lora_b().value(), s),
            compact_->type));
  } else {
    weight_.set_value(add_delta(weight_.value(), layout_ == autograd::WeightLayout::in_out,
                                lora_a().value(), lora_b().value(), s));
  }
}

void Linear::merge() {
  if (!lora_) fail<ValueError>("merge: this layer has no adapter");
  if (lora_->merged) fail<ValueError>("merge: the adapter is already merged");
  shift_by_delta(1.0f);
  lora_->merged = true;
}

void Linear::unmerge() {
  if (!lora_) fail<ValueError>("unmerge: this layer has no adapter");
  if (!lora_->merged) fail<ValueError>("unmerge: the adapter is not merged");
  shift_by_delta(-1.0f);
  lora_->merged = false;
}

void Linear::quantize(WeightType type) {
  if (type == WeightType::f32) fail<ValueError>("Linear::quantize: f32 is not a compact type");
  if (compact_) fail<ValueError>("Linear::quantize: the weight is already quantized");
  if (lora_ && lora_->merged)
    fail<ValueError>("Linear::quantize: unmerge the adapter first (a merged weight would keep it)");
  const Tensor<float>& w = weight_.value();
  compact_ = std::make_shared<const autograd::QuantizedWeight>(autograd::QuantizedWeight::quantize(
      layout_ == autograd::WeightLayout::in_out ? w.t() : w, type));
  unregister_parameter("weight");
  weight_ = Var();
}

void Linear::dequantize() {
  if (!compact_) fail<ValueError>("Linear::dequantize: the weight is not quantized");
  weight_ = register_parameter("weight", dense_weight());
  weight_.set_requires_grad(false);
  compact_.reset();
}

Embedding::Embedding(int64_t vocab, int64_t dim) {
  if (vocab < 1 || dim < 1)
    fail<ValueError>("Embedding: sizes must be positive, got ", vocab, " x ", dim);
  weight_ = register_parameter("weight", Tensor<float>::zeros({vocab, dim}));
}

Var Embedding::forward(const Tensor<int32_t>& ids) const {
  if (!compact_) return autograd::embedding(ids, weight_);
  // A frozen compact table: the rows are constants, converted as they are gathered.
  const Tensor<int32_t> idc = ids.contiguous();
  const int64_t V = compact_->rows, C = compact_->cols;
  Shape shape = idc.shape();
  shape.push_back(C);
  Tensor<float> out = Tensor<float>::empty(shape);
  const auto& wk = kernels::active().weight(compact_->type);
  const size_t rb = row_bytes(compact_->type, C);
  for (int64_t i = 0; i < idc.numel(); ++i) {
    const int32_t id = idc.data()[i];
    if (id < 0 || id >= V)
      fail<IndexError>("embedding: id ", id, " at position ", i, " is outside [0, ", V, ")");
    wk.to_f32(out.data() + i * C, compact_->bytes.data() + static_cast<size_t>(id) * rb,
              static_cast<size_t>(C));
  }
  return Var(std::move(out));
}

void Embedding::quantize(WeightType type) {
  if (type == WeightType::f32) fail<ValueError>("Embedding::quantize: f32 is not a compact type");
  if (compact_) fail<ValueError>("Embedding::quantize: the table is already quantized");
  if (weight_.requires_grad())
    fail<ValueError>("Embedding::quantize: the table is trainable; a quantized table is frozen");
  compact_ = std::make_shared<const autograd::QuantizedWeight>(
      autograd::QuantizedWeight::quantize(weight_.value(), type));
  unregister_parameter("weight");
  weight_ = Var();
}

LayerNorm::LayerNorm(int64_t dim, float eps, bool bias) : eps_(eps) {
  weight_ = register_parameter("weight", Tensor<float>::ones({dim}));
  if (bias) bias_ = register_parameter("bias", Tensor<float>::zeros({dim}));
}

Var LayerNorm::forward(const Var& x) const {
  return autograd::layernorm(x, weight_, bias_, eps_);
}

RMSNorm::RMSNorm(int64_t dim, float eps) : eps_(eps) {
  weight_ = register_parameter("weight", Tensor<float>::ones({dim}));
}

Var RMSNorm::forward(const Var& x) const {
  return autograd::rmsnorm(x, weight_, eps_);
}

}  // namespace scholar::nn
