// Optimizers, schedules and gradient clipping.
#include "scholar/optim/optim.hpp"

#include <cmath>
#include <map>

#include "scholar/error.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::optim {

namespace {

bool decays(const nn::NamedParameter& p) {
  return p.var.rank() >= 2;
}

const Tensor<float>* find(const NamedTensors& state, const std::string& name, const Shape& shape) {
  for (const auto& [n, t] : state)
    if (n == name) {
      if (!(t.shape() == shape))
        fail<FormatError>("optimizer state '", name, "' has shape ", t.shape().str(),
                          ", the parameter has ", shape.str());
      return &t;
    }
  return nullptr;
}

}  // namespace

Optimizer::Optimizer(std::vector<nn::NamedParameter> params) : params_(std::move(params)) {
  for (const auto& p : params_)
    if (!p.var.defined()) fail<ValueError>("optimizer: parameter '", p.name, "' is undefined");
}

int64_t Optimizer::state_bytes() const {
  int64_t n = 0;
  for (const auto& [name, t] : state()) n += t.numel() * static_cast<int64_t>(sizeof(float));
  return n;
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.var.zero_grad();
}

void Optimizer::set_lr(float lr) {
  if (!std::isfinite(lr) || lr < 0)
    fail<ValueError>("optimizer: learning rate must be finite and >= 0, got ", lr);
  lr_ = lr;
}

// --- SGD -----------------------------------------------------------------------------------------

SGD::SGD(std::vector<nn::NamedParameter> params, Options o) : Optimizer(std::move(params)), o_(o) {
  set_lr(o.lr);
  if (!(o.momentum >= 0 && o.momentum < 1))
    fail<ValueError>("SGD: momentum must be in [0, 1), got ", o.momentum);
  if (!(o.weight_decay >= 0))
    fail<ValueError>("SGD: weight_decay must be >= 0, got ", o.weight_decay);
  if (o.nesterov && o.momentum == 0) fail<ValueError>("SGD: nesterov needs momentum > 0");
  momentum_.resize(params_.size());
}

void SGD::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    const nn::Var& p = params_[i].var;
    if (!p.grad().defined()) continue;
    Tensor<float> d = p.grad().clone();
    if (o_.weight_decay != 0 && decays(params_[i])) axpy_(d, o_.weight_decay, p.value());
    if (o_.momentum != 0) {
      Tensor<float>& buf = momentum_[i];
      if (!buf.defined()) {
        buf = d.clone();
      } else {
        mul_(buf, o_.momentum);
        add_(buf, d);
      }
      if (o_.nesterov)
        axpy_(d, o_.momentum, buf);
      else
        d = buf;
    }
    axpy_(p.value(), -lr_, d);
  }
  ++steps_;
}

NamedTensors SGD::state() const {
  NamedTensors s;
  for (size_t i = 0; i < params_.size(); ++i)
    if (momentum_[i].defined()) s.emplace_back("momentum." + params_[i].name, momentum_[i]);
  return s;
}

void SGD::load_state(const NamedTensors& state, int64_t steps) {
  if (steps < 0) fail<FormatError>("SGD state: step count ", steps, " is negative");
  std::vector<Tensor<float>> momentum(params_.size());  // all or nothing
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor<float>* t = find(state, "momentum." + params_[i].name, params_[i].var.shape());
    if (t) momentum[i] = t->clone();
  }
  momentum_ = std::move(momentum);
  steps_ = steps;
}

// --- AdamW ---------------------------------------------------------------------------------------

AdamW::AdamW(std::vector<nn::NamedParameter> params, Options o)
    : Optimizer(std::move(params)), o_(o) {
  set_lr(o.lr);
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
    fail<ValueError>("AdamW: betas must be in [0, 1), got ", o.beta1, " and ", o.beta2);
  if (!(o.eps > 0)) fail<ValueError>("AdamW: eps must be > 0, got ", o.eps);
  if (!(o.weight_decay >= 0))
    fail<ValueError>("AdamW: weight_decay must be >= 0, got ", o.weight_decay);
  // Moments only for trainable parameters; one unfrozen later gets them at its first step.
  m_.resize(params_.size());
  v_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].var.requires_grad()) {
      m_[i] = Tensor<float>::zeros(params_[i].var.shape());
      v_[i] = Tensor<float>::zeros(params_[i].var.shape());
    }
}

void AdamW::step() {
  ++steps_;
  const auto t = static_cast<double>(steps_);
  const auto bc1 = static_cast<float>(1.0 - std::pow(double{o_.beta1}, t));
  const auto bc2 = static_cast<float>(1.0 - std::pow(double{o_.beta2}, t));
  const kernels::KernelTable& k = kernels::active();
  for (size_t i = 0; i < params_.size(); ++i) {
    const nn::Var& p = params_[i].var;
    if (!p.grad().defined()) continue;
    Tensor<float> value = p.value();
    if (!value.is_contiguous())
      fail<ValueError>("AdamW: parameter '", params_[i].name, "' is not contiguous");
    const Tensor<float> g = p.grad().contiguous();
    if (!m_[i].defined()) {
      m_[i] = Tensor<float>::zeros(value.shape());
      v_[i] = Tensor<float>::zeros(value.shape());
    }
    const float wd = decays(params_[i]) ? o_.weight_decay : 0.0f;
    float *pv = value.data(), *m = m_[i].data(), *v = v_[i].data();
    const float* gv = g.data();
    parallel_for(0, value.numel(), int64_t{1} << 16, [&](int64_t b, int64_t e) {
      k.adamw(pv + b, m + b, v + b, gv + b, static_cast<size_t>(e - b), lr_, o_.beta1, o_.beta2,
              o_.eps, wd, bc1, bc2);
    });
  }
}

NamedTensors AdamW::state() const {
  NamedTensors s;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!m_[i].defined()) continue;  // frozen: no state
    s.emplace_back("m." + params_[i].name, m_[i]);
    s.emplace_back("v." + params_[i].name, v_[i]);
  }
  return s;
}

void AdamW::load_state(const NamedTensors& state, int64_t steps) {
  if (steps < 0) fail<FormatError>("AdamW state: step count ", steps, " is negative");
  std::vector<Tensor<float>> ms(params_.size()), vs(params_.size());  // all or nothing
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].var.requires_grad()) continue;  // frozen: no state kept
    const Tensor<float>* m = find(state, "m." + params_[i].name, params_[i].var.shape());
    const Tensor<float>* v = find(state, "v." + params_[i].name, params_[i].var.shape());
    if (!m || !v)
      fail<FormatError>("AdamW state: no moments for parameter '", params_[i].name, "'");
    ms[i] = m->clone();
    vs[i] = v->clone();
  }
  m_ = std::move(ms);
  v_ = std::move(vs);
  steps_ = steps;
}

// --- schedule and clipping -----------------------------------------------------------------------

float WarmupCosine::at(int64_t step) const {
  if (step < warmup_steps)
    return max_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  if (step >= total_steps) return min_lr;
  const double progress = static_cast<double>(step - warmup_steps) /
                          static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double cosine = 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
  return static_cast<float>(min_lr + (max_lr - min_lr) * cosine);
}

double clip_grad_norm(const std::vector<nn::Var>& params, double max_norm) {
  if (!(max_norm > 0)) fail<ValueError>("clip_grad_norm: max_norm must be > 0, got ", max_norm);
  double sq = 0;
  const kernels::KernelTable& k = kernels::active();
  for (const nn::Var& p : params) {
    if (!p.grad().defined()) continue;
    const Tensor<float> g = p.grad().contiguous();
    constexpr int64_t kBlock = 4096;
    for (int64_t i = 0; i < g.numel(); i += kBlock) {
      const auto n = static_cast<size_t>(std::min(kBlock, g.numel() - i));
      sq += k.dot(g.data() + i, g.data() + i, n);
    }
  }
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const auto factor = static_cast<float>(max_norm / (norm + 1e-6));
  for (const nn::Var& p : params)
    if (p.grad().defined()) mul_(p.grad(), factor);
  return norm;
}

}  // namespace scholar::optim
