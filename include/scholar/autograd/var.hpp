// scholar/autograd/var.hpp: define-by-run reverse-mode differentiation.
//
// A Var holds a value (a float tensor), a gradient allocated on first use, and the Node that
// produced it. Operations on Vars (scholar/autograd/ops.hpp) compute their value at once and, when
// any input needs a gradient, record a Node with what backward needs. backward() on a scalar Var
// walks the recorded graph in reverse topological order and accumulates gradients, so a value used
// twice receives the sum of both contributions.
//
//   autograd::Var w(randn({4, 3}, gen), /*requires_grad=*/true);
//   autograd::Var x(randn({2, 4}, gen));
//   autograd::Var loss = autograd::mean(autograd::matmul(x, w));
//   loss.backward();                 // w.grad() is now d loss / d w
//
// Graphs are freed as backward runs (each Node releases what it saved once used), so call
// backward() once per forward pass: a second backward() through the same graph is a ValueError.
// Inside a NoGradGuard scope nothing is recorded.
//
// Thread-safety: a graph belongs to one thread. Grad mode (NoGradGuard) is per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scholar/autograd/op.hpp"
#include "scholar/tensor/tensor.hpp"

namespace scholar::autograd {

struct Node;

/// The shared state behind a Var (Vars are handles; copies share it).
struct VarImpl {
  Tensor<float> value;
  Tensor<float> grad;          // undefined until a gradient arrives
  bool requires_grad = false;  // true for leaves that want gradients and results of such
  std::shared_ptr<Node> node;  // the operation that produced this value (null for leaves)
  std::string name;            // optional, for error messages and parameter names
  bool graph_freed = false;    // produced by a node that an earlier backward() consumed
};

/// A differentiable value: a handle to a float tensor, its gradient and its history.
class Var {
 public:
  /// An undefined Var.
  Var() = default;
  /// A leaf holding `value`; with requires_grad, backward() will fill its gradient.
  explicit Var(Tensor<float> value, bool requires_grad = false);

  bool defined() const noexcept { return impl_ != nullptr; }
  const Tensor<float>& value() const;
  /// The accumulated gradient (undefined if none has arrived).
  const Tensor<float>& grad() const;
  bool requires_grad() const noexcept { return impl_ && impl_->requires_grad; }
  /// A leaf has no producing node (parameters and inputs). An op's result stays a non-leaf after
  /// backward() frees its graph.
  bool is_leaf() const noexcept { return !impl_ || (!impl_->node && !impl_->graph_freed); }
  const Shape& shape() const { return value().shape(); }
  int64_t size(int dim) const { return value().size(dim); }
  int rank() const { return value().rank(); }
  const std::string& name() const;
  void set_name(std::string name);

  /// Sets whether this leaf wants a gradient (ValueError on a non-leaf).
  void set_requires_grad(bool on);
  /// Drops the gradient (it is allocated again, zero-filled, when the next one arrives).
  void zero_grad();
  /// Replaces the value of a leaf (same shape), e.g. after loading weights.
  void set_value(Tensor<float> value);
  /// The same value with no history: gradients stop here.
  Var detach() const;

  /// Back-propagates from this scalar (numel 1): its gradient is seeded with 1. ValueError if it
  /// is not a scalar or does not depend on anything that needs a gradient.
  void backward() const;
  /// Back-propagates with an explicit gradient of this Var's shape.
  void backward(const Tensor<float>& grad_out) const;

  /// Adds g (of this Var's shape, or broadcastable to it) into the gradient; the first gradient is
  /// copied. Ops use accumulate_owned_grad when g is a fresh tensor nobody else holds.
  void accumulate_grad(const Tensor<float>& g) const;
  /// As accumulate_grad, but g (contiguous, this Var's shape, referenced nowhere else) may be taken
  /// as the gradient itself when none exists yet.
  void accumulate_owned_grad(Tensor<float> g) const;
  /// The raw gradient storage, allocated zero-filled if missing (for fused kernels).
  Tensor<float>& grad_storage() const;

  VarImpl* impl() const noexcept { return impl_.get(); }
  friend bool operator==(const Var& a, const Var& b) noexcept { return a.impl_ == b.impl_; }

 private:
  friend struct Node;
  friend Var make_result(Tensor<float> value, Op op, std::vector<Var> inputs,
                         std::function<void(const Tensor<float>&)> backward);
  std::shared_ptr<VarImpl> impl_;
};

/// One recorded operation: the inputs it read (kept alive) and how to send a gradient back.
struct Node {
  Op op;
  VarImpl* output = nullptr;  // the Var this node produced (alive while the graph is)
  std::vector<Var> inputs;
  /// Receives the gradient of the node's output and accumulates into its inputs' gradients.
  std::function<void(const Tensor<float>&)> backward;
};

/// True unless a NoGradGuard is active on this thread.
bool grad_enabled() noexcept;

/// Turns off recording for its lifetime on the current thread (nests).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// While alive, backward() on this thread calls `fn(leaf)` once for each leaf that requires a
/// gradient, as soon as no node left in the pass will add to that leaf's gradient (as PyTorch's
/// post-accumulate-grad hooks): data-parallel training starts averaging a gradient while the
/// backward pass goes on. A leaf that the pass never reaches is not reported. Scopes nest (the
/// innermost hook is used); the hook runs on the thread that runs backward().
class GradReadyHook {
 public:
  explicit GradReadyHook(std::function<void(const Var& leaf)> fn);
  ~GradReadyHook();
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

 private:
  std::function<void(const Var&)> fn_;
  GradReadyHook* previous_;
  friend class Var;
};

/// True if any input needs a gradient and recording is on.
bool any_requires_grad(std::initializer_list<const Var*> inputs);

/// Builds the result of an operation: a Var holding `value`, which records a Node (op, inputs,
/// backward) when grad mode is on and some input requires a gradient. Op implementations call this.
Var make_result(Tensor<float> value, Op op, std::vector<Var> inputs,
                std::function<void(const Tensor<float>&)> backward);

}  // namespace scholar::autograd
