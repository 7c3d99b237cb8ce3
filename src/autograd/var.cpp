// The autograd engine: leaves, recorded nodes, and the reverse pass.
#include "scholar/autograd/var.hpp"

#include <unordered_map>
#include <unordered_set>

#include "scholar/error.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::autograd {

namespace {
thread_local bool tls_grad_enabled = true;
thread_local GradReadyHook* tls_grad_ready = nullptr;

[[noreturn]] void undefined(const char* what) {
  fail<ValueError>("Var::", what, ": the Var is undefined");
}
}  // namespace

Var::Var(Tensor<float> value, bool requires_grad) : impl_(std::make_shared<VarImpl>()) {
  if (!value.defined()) fail<ValueError>("Var: the value tensor is undefined");
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

const Tensor<float>& Var::value() const {
  if (!impl_) undefined("value");
  return impl_->value;
}

const Tensor<float>& Var::grad() const {
  if (!impl_) undefined("grad");
  return impl_->grad;
}

const std::string& Var::name() const {
  if (!impl_) undefined("name");
  return impl_->name;
}

void Var::set_name(std::string name) {
  if (!impl_) undefined("set_name");
  impl_->name = std::move(name);
}

void Var::set_requires_grad(bool on) {
  if (!impl_) undefined("set_requires_grad");
  if (impl_->node) fail<ValueError>("set_requires_grad: only leaves can change requires_grad");
  impl_->requires_grad = on;
}

void Var::zero_grad() {
  if (impl_) impl_->grad = Tensor<float>();
}

void Var::set_value(Tensor<float> value) {
  if (!impl_) undefined("set_value");
  if (impl_->node) fail<ValueError>("set_value: only leaves can be assigned");
  if (!(value.shape() == impl_->value.shape()))
    fail<ShapeError>("set_value", impl_->name.empty() ? "" : " ('" + impl_->name + "')",
                     ": new value has shape ", value.shape().str(), ", expected ",
                     impl_->value.shape().str());
  impl_->value = std::move(value);
}

Var Var::detach() const {
  if (!impl_) undefined("detach");
  return Var(impl_->value, false);
}

Tensor<float>& Var::grad_storage() const {
  if (!impl_) undefined("grad_storage");
  if (!impl_->grad.defined()) impl_->grad = Tensor<float>::zeros(impl_->value.shape());
  return impl_->grad;
}

void Var::accumulate_grad(const Tensor<float>& g) const {
  if (!impl_) undefined("accumulate_grad");
  if (!impl_->grad.defined()) {
    Tensor<float> fresh = Tensor<float>::empty(impl_->value.shape());
    fresh.copy_from(g);  // broadcasts, and checks the shape
    impl_->grad = std::move(fresh);
    return;
  }
  add_(impl_->grad, g);
}

void Var::accumulate_owned_grad(Tensor<float> g) const {
  if (!impl_) undefined("accumulate_owned_grad");
  if (!impl_->grad.defined() && g.is_contiguous() && g.shape() == impl_->value.shape()) {
    impl_->grad = std::move(g);
    return;
  }
  accumulate_grad(g);
}

void Var::backward() const {
  if (!impl_) undefined("backward");
  if (impl_->value.numel() != 1)
    fail<ValueError>("backward: called on a Var of shape ", impl_->value.shape().str(),
                     "; give a gradient, or reduce to a scalar first");
  backward(Tensor<float>::full(impl_->value.shape(), 1.0f));
}

void Var::backward(const Tensor<float>& grad_out) const {
  if (!impl_) undefined("backward");
  auto freed = [](const VarImpl* p) {
    fail<ValueError>("backward: the graph through ", p->name.empty() ? "this Var" : p->name,
                     " was freed by an earlier backward(); run the forward pass again");
  };
  if (impl_->graph_freed) freed(impl_.get());
  if (!impl_->requires_grad)
    fail<ValueError>("backward: the Var does not depend on anything that requires a gradient");
  if (!(grad_out.shape() == impl_->value.shape()))
    fail<ShapeError>("backward: gradient of shape ", grad_out.shape().str(), " for a Var of shape ",
                     impl_->value.shape().str());
  // Reverse topological order by an iterative depth-first search (graphs may be thousands deep).
  // `nodes` and `holders` keep every node and intermediate Var alive while the pass runs, since the
  // graph's own references are dropped as it goes.
  std::vector<std::shared_ptr<Node>> nodes;
  std::unordered_map<VarImpl*, Var> holders;
  std::unordered_set<Node*> seen;
  struct Frame {
    std::shared_ptr<Node> node;
    size_t next_input;
  };
  std::vector<Frame> stack;
  // With a GradReadyHook: how many recorded uses each leaf that wants a gradient has left.
  GradReadyHook* const hook = tls_grad_ready;
  std::unordered_map<VarImpl*, int> pending_uses;
  if (impl_->node) {
    stack.push_back({impl_->node, 0});
    seen.insert(impl_->node.get());
  }
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_input < f.node->inputs.size()) {
      const Var& in = f.node->inputs[f.next_input++];
      VarImpl* p = in.impl();
      if (p && p->graph_freed) freed(p);
      if (hook && p && !p->node && p->requires_grad) ++pending_uses[p];
      if (p && p->node) {
        holders.emplace(p, in);
        if (seen.insert(p->node.get()).second) stack.push_back({p->node, 0});
      }
    } else {
      nodes.push_back(f.node);
      stack.pop_back();
    }
  }
  accumulate_grad(grad_out);
  // Children come before parents in `nodes`; walk it backwards. Each node runs once, then frees
  // what it saved, its output's gradient (intermediate gradients are not kept, as in PyTorch) and,
  // once no later node needs it, its output's value.
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    Node* node = it->get();
    VarImpl* out = node->output;
    if (out->grad.defined() && node->backward) node->backward(out->grad);
    node->backward = nullptr;
    if (hook)
      for (const Var& in : node->inputs) {
        auto used = pending_uses.find(in.impl());
        if (used != pending_uses.end() && --used->second == 0) hook->fn_(in);
      }
    node->inputs.clear();
    out->grad = Tensor<float>();
    out->node.reset();
    out->graph_freed = true;
    holders.erase(out);
  }
}

bool grad_enabled() noexcept {
  return tls_grad_enabled;
}

NoGradGuard::NoGradGuard() : previous_(tls_grad_enabled) {
  tls_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  tls_grad_enabled = previous_;
}

GradReadyHook::GradReadyHook(std::function<void(const Var& leaf)> fn)
    : fn_(std::move(fn)), previous_(tls_grad_ready) {
  if (!fn_) fail<ValueError>("GradReadyHook: the function is empty");
  tls_grad_ready = this;
}
GradReadyHook::~GradReadyHook() {
  tls_grad_ready = previous_;
}

bool any_requires_grad(std::initializer_list<const Var*> inputs) {
  if (!tls_grad_enabled) return false;
  for (const Var* v : inputs)
    if (v && v->requires_grad()) return true;
  return false;
}

Var make_result(Tensor<float> value, Op op, std::vector<Var> inputs,
                std::function<void(const Tensor<float>&)> backward) {
  Var out(std::move(value), false);
  if (!tls_grad_enabled) return out;
  bool needed = false;
  for (const Var& v : inputs) needed = needed || v.requires_grad();
  if (!needed) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->output = out.impl_.get();
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl_->requires_grad = true;
  out.impl_->node = std::move(node);
  return out;
}

}  // namespace scholar::autograd
