// scholar/optim/optim.hpp: optimizers, learning-rate schedules and gradient clipping.
//
//   optim::AdamW opt(model.named_parameters(), {.lr = 3e-4f, .weight_decay = 0.1f});
//   optim::WarmupCosine schedule{.max_lr = 3e-4f, .min_lr = 3e-5f, .warmup_steps = 100,
//                                .total_steps = 5000};
//   for (int64_t step = 0; step < 5000; ++step) {
//     opt.zero_grad();
//     model.loss(x, y).backward();
//     optim::clip_grad_norm(model.parameters(), 1.0);
//     opt.set_lr(schedule.at(step));
//     opt.step();
//   }
//
// Weight decay applies to parameters of rank 2 and more (matrices and embeddings), never to biases
// and norm weights (rank 1), as in GPT-2 and Llama training recipes.
// Thread-safety: an optimizer is used from one thread; its steps run on the thread pool.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scholar/nn/module.hpp"

namespace scholar::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor<float>>>;

/// Common interface: parameters, learning rate, state for checkpoints. Frozen parameters
/// (requires_grad off, nn::Module::freeze) are accepted and left alone: they get no update and no
/// state.
class Optimizer {
 public:
  explicit Optimizer(std::vector<nn::NamedParameter> params);
  virtual ~Optimizer() = default;
  /// Updates every parameter that has a gradient; parameters without one are left alone.
  virtual void step() = 0;
  /// Drops the parameters' gradients.
  void zero_grad();
  float lr() const noexcept { return lr_; }
  /// ValueError unless lr is finite and >= 0.
  void set_lr(float lr);
  /// Steps taken so far.
  int64_t steps() const noexcept { return steps_; }
  /// Everything needed to continue exactly where this optimizer stands: its tensors by name.
  virtual NamedTensors state() const = 0;
  /// Restores state() output (FormatError naming a missing or mis-shaped entry) and the step count.
  virtual void load_state(const NamedTensors& state, int64_t steps) = 0;
  /// Bytes the optimizer's state holds (frozen parameters hold none).
  int64_t state_bytes() const;
  const std::vector<nn::NamedParameter>& params() const noexcept { return params_; }

 protected:
  std::vector<nn::NamedParameter> params_;
  float lr_ = 1e-3f;
  int64_t steps_ = 0;
};

/// Stochastic gradient descent with momentum (PyTorch's formulation: the buffer starts at the first
/// gradient; weight decay is added to the gradient, on rank >= 2 parameters only).
class SGD : public Optimizer {
 public:
  struct Options {
    float lr = 1e-2f;
    float momentum = 0.0f;
    float weight_decay = 0.0f;
    bool nesterov = false;
  };
  SGD(std::vector<nn::NamedParameter> params, Options options);
  void step() override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state, int64_t steps) override;

 private:
  Options o_;
  std::vector<Tensor<float>> momentum_;  // undefined until the first step of each parameter
};

/// AdamW (Loshchilov and Hutter): Adam with decoupled weight decay and bias correction; the update
/// is one SIMD kernel per parameter. Moments exist only for trainable parameters (a parameter
/// unfrozen later gets zero moments at its first step, with the optimizer's global bias
/// correction).
class AdamW : public Optimizer {
 public:
  struct Options {
    float lr = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.999f;
    float eps = 1e-8f;
    float weight_decay = 0.01f;
  };
  AdamW(std::vector<nn::NamedParameter> params, Options options);
  void step() override;
  NamedTensors state() const override;
  void load_state(const NamedTensors& state, int64_t steps) override;
  const Options& options() const noexcept { return o_; }

 private:
  Options o_;
  std::vector<Tensor<float>> m_, v_;  // first and second moments, zero-initialized
};

/// Linear warmup from 0 to max_lr over warmup_steps, then cosine decay to min_lr at total_steps
/// (and min_lr after).
struct WarmupCosine {
  float max_lr = 3e-4f;
  float min_lr = 3e-5f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  /// The learning rate for 0-based step `step`.
  float at(int64_t step) const;
};

/// Scales all gradients so that their global L2 norm is at most max_norm; returns the norm before
/// clipping (accumulated in double). A non-finite norm is returned as is, and nothing is scaled.
double clip_grad_norm(const std::vector<nn::Var>& params, double max_norm);

}  // namespace scholar::optim
