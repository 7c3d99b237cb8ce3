// Gradient buckets for data-parallel training, and the parameter partition of sharded optimizer
// state.
#include "train/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "scholar/error.hpp"
#include "scholar/parallel.hpp"

namespace scholar::train::detail {

GradientReducer::GradientReducer(Communicator& comm, std::vector<autograd::Var> params,
                                 int64_t bucket_bytes)
    : comm_(comm), params_(std::move(params)) {
  if (bucket_bytes < 1)
    fail<ValueError>("GradientReducer: bucket size must be positive, got ", bucket_bytes);
  const size_t n = params_.size();
  bucket_of_.resize(n);
  slot_of_.resize(n);
  filled_.assign(n, false);
  const auto cap = static_cast<int64_t>(static_cast<uint64_t>(bucket_bytes) / sizeof(float));
  // Reverse order: the last parameters registered (the top of the model) get their gradients
  // first in the backward pass, so their bucket can start first.
  std::vector<int64_t> sizes;
  for (size_t k = n; k-- > 0;) {
    const int64_t numel = params_[k].value().numel();
    if (buckets_.empty() || (!buckets_.back().params.empty() && sizes.back() + numel > cap)) {
      buckets_.emplace_back();
      sizes.push_back(0);
    }
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size();
    b.params.push_back(k);
    b.offset.push_back(sizes.back());
    sizes.back() += numel;
    index_.emplace(params_[k].impl(), k);
  }
  for (size_t i = 0; i < buckets_.size(); ++i)
    buckets_[i].buffer = Tensor<float>::empty({sizes[i]});
}

void GradientReducer::attach() {
  for (Bucket& b : buckets_) {
    float* v = b.buffer.data();
    parallel_for(0, b.buffer.numel(), int64_t{1} << 16,
                 [&](int64_t lo, int64_t hi) { std::fill(v + lo, v + hi, 0.0f); });
    for (size_t s = 0; s < b.params.size(); ++s) {
      const autograd::Var& p = params_[b.params[s]];
      const int64_t numel = p.value().numel();
      p.impl()->grad = b.buffer.slice(0, b.offset[s], b.offset[s] + numel).reshape(p.shape());
    }
  }
}

float* GradientReducer::slot(size_t k) {
  const Bucket& b = buckets_[bucket_of_[k]];
  return b.buffer.data() + b.offset[slot_of_[k]];
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::fill(size_t k) {
  if (filled_[k]) return;
  // Normally the gradient is the slot itself (attach()); copy only if something replaced it.
  float* dst = slot(k);
  const auto numel = static_cast<size_t>(params_[k].value().numel());
  const Tensor<float>& g = params_[k].grad();
  if (!g.defined()) {
    std::fill(dst, dst + numel, 0.0f);
  } else if (g.data() != dst || !g.is_contiguous()) {
    const Tensor<float> c = g.contiguous();
    std::memcpy(dst, c.data(), numel * sizeof(float));
  }
  filled_[k] = true;
  ++buckets_[bucket_of_[k]].filled;
}

void GradientReducer::launch_ready() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].filled == buckets_[next_launch_].params.size()) {
    Bucket& b = buckets_[next_launch_++];
    b.request = comm_.start_allreduce_sum(
        std::span<float>(b.buffer.data(), static_cast<size_t>(b.buffer.numel())));
  }
  // Let the transfers already under way progress (MPI moves data inside its calls).
  for (size_t i = 0; i < next_launch_; ++i)
    if (buckets_[i].request) buckets_[i].request->test();
}

void GradientReducer::ready(const autograd::Var& leaf) {
  const auto it = index_.find(leaf.impl());
  if (it == index_.end()) return;
  fill(it->second);
  launch_ready();
}

void GradientReducer::finish() {
  for (size_t k = 0; k < params_.size(); ++k) fill(k);
  launch_ready();
  const auto t0 = std::chrono::steady_clock::now();
  for (Bucket& b : buckets_) b.request->wait();
  wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const float inv = 1.0f / static_cast<float>(comm_.size());
  for (Bucket& b : buckets_) {
    float* v = b.buffer.data();
    parallel_for(0, b.buffer.numel(), int64_t{1} << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) v[i] *= inv;
    });
    // Gradients that are not the slots (replaced during backward, or never attached) get the
    // means as views of the slots too.
    for (size_t s = 0; s < b.params.size(); ++s) {
      const autograd::Var& p = params_[b.params[s]];
      const float* at = v + b.offset[s];
      if (!p.grad().defined() || p.grad().data() != at)
        p.impl()->grad =
            b.buffer.slice(0, b.offset[s], b.offset[s] + p.value().numel()).reshape(p.shape());
    }
    b.request.reset();
    b.filled = 0;
  }
  std::fill(filled_.begin(), filled_.end(), false);
  next_launch_ = 0;
}

void digest_compact_weights(scholar::detail::Digest& d, const nn::Module& model) {
  for (const auto& [name, m] : model.named_modules()) {
    const autograd::QuantizedWeight* w = nullptr;
    if (const auto* l = dynamic_cast<const nn::Linear*>(m)) w = l->compact_weight().get();
    if (const auto* e = dynamic_cast<const nn::Embedding*>(m)) w = e->compact_weight().get();
    if (!w) continue;
    d.text(name);
    d.word(static_cast<uint64_t>(w->type));
    d.bytes(w->bytes.data(), w->bytes.size());
  }
}

std::vector<int> partition_parameters(const std::vector<int64_t>& sizes, int ranks) {
  if (ranks < 1) fail<ValueError>("partition_parameters: ranks must be >= 1, got ", ranks);
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<int64_t> load(static_cast<size_t>(ranks), 0);
  std::vector<int> owner(sizes.size(), 0);
  for (const size_t k : order) {
    const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[k] = static_cast<int>(r);
    load[r] += sizes[k];
  }
  return owner;
}

}  // namespace scholar::train::detail
