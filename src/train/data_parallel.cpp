// Gradient buckets for data-parallel training, and the parameter partition of sharded optimizer
// state.
#include "train/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "scholar/error.hpp"

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
  for (size_t k = n; k-- > 0;) {
    const int64_t numel = params_[k].value().numel();
    if (buckets_.empty() || (!buckets_.back().params.empty() &&
                             static_cast<int64_t>(buckets_.back().buffer.size()) + numel > cap))
      buckets_.emplace_back();
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size();
    b.params.push_back(k);
    b.offset.push_back(static_cast<int64_t>(b.buffer.size()));
    b.buffer.resize(b.buffer.size() + static_cast<size_t>(numel));
    index_.emplace(params_[k].impl(), k);
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::fill(size_t k) {
  if (filled_[k]) return;
  Bucket& b = buckets_[bucket_of_[k]];
  float* dst = b.buffer.data() + b.offset[slot_of_[k]];
  const auto numel = static_cast<size_t>(params_[k].value().numel());
  const Tensor<float>& g = params_[k].grad();
  if (g.defined()) {
    const Tensor<float> c = g.contiguous();
    std::memcpy(dst, c.data(), numel * sizeof(float));
  } else {
    std::fill(dst, dst + numel, 0.0f);
  }
  filled_[k] = true;
  ++b.filled;
}

void GradientReducer::launch_ready() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].filled == buckets_[next_launch_].params.size()) {
    Bucket& b = buckets_[next_launch_++];
    b.request = comm_.start_allreduce_sum(b.buffer);
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
    for (size_t s = 0; s < b.params.size(); ++s) {
      const autograd::Var& p = params_[b.params[s]];
      Tensor<float>& g = p.grad_storage();
      if (!g.is_contiguous()) g = g.contiguous();
      const float* src = b.buffer.data() + b.offset[s];
      float* dst = g.data();
      const auto numel = static_cast<size_t>(g.numel());
      for (size_t i = 0; i < numel; ++i) dst[i] = src[i] * inv;
    }
    b.request.reset();
    b.filled = 0;
  }
  std::fill(filled_.begin(), filled_.end(), false);
  next_launch_ = 0;
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
