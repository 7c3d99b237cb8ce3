// Modules, parameter naming, and the basic layers.
#include "scholar/nn/module.hpp"

#include <regex>
#include <unordered_set>

#include "scholar/error.hpp"

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

Linear::Linear(int64_t in, int64_t out, bool bias, autograd::WeightLayout layout)
    : in_(in), out_(out), layout_(layout) {
  if (in < 1 || out < 1) fail<ValueError>("Linear: sizes must be positive, got ", in, " x ", out);
  weight_ = register_parameter("weight", layout == autograd::WeightLayout::out_in
                                             ? Tensor<float>::zeros({out, in})
                                             : Tensor<float>::zeros({in, out}));
  if (bias) bias_ = register_parameter("bias", Tensor<float>::zeros({out}));
}

Var Linear::forward(const Var& x) const {
  return autograd::linear(x, weight_, bias_, layout_);
}

Embedding::Embedding(int64_t vocab, int64_t dim) {
  if (vocab < 1 || dim < 1)
    fail<ValueError>("Embedding: sizes must be positive, got ", vocab, " x ", dim);
  weight_ = register_parameter("weight", Tensor<float>::zeros({vocab, dim}));
}

Var Embedding::forward(const Tensor<int32_t>& ids) const {
  return autograd::embedding(ids, weight_);
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
