// Data-parallel pieces of the Trainer: gradient buckets averaged over the ranks while the
// backward pass runs, and the partition of parameters for sharded optimizer state.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/digest.hpp"
#include "scholar/autograd/var.hpp"
#include "scholar/nn/module.hpp"
#include "scholar/train/communicator.hpp"

namespace scholar::train::detail {

/// Adds to `d` every frozen weight stored compactly (quantized linear layers and embedding
/// tables, which are not parameters): their names, types and bytes. With the parameters' values,
/// this is everything that decides what a model computes.
void digest_compact_weights(scholar::detail::Digest& d, const nn::Module& model);

/// Averages the gradients of a fixed list of parameters over all ranks, in buckets of about
/// `bucket_bytes`, as PyTorch's DistributedDataParallel does: parameters are bucketed in reverse
/// order (the order backward reaches them), a bucket's allreduce starts as soon as all of its
/// gradients are final (reported by ready(), from an autograd::GradReadyHook), and buckets start
/// strictly in order on every rank, so the collectives always match. finish() starts the rest
/// (a parameter that got no gradient counts as zero), waits, and leaves the means in the
/// gradients. The gradients are views of the bucket buffers (attach(), as DDP's
/// gradient_as_bucket_view): backward accumulates straight into the buffers, so averaging costs
/// no copy and no second copy of the gradients in memory.
class GradientReducer {
 public:
  GradientReducer(Communicator& comm, std::vector<autograd::Var> params, int64_t bucket_bytes);
  ~GradientReducer();
  /// Zeroes the buffers and makes each parameter's gradient a view of its slot. Call before the
  /// step's first backward (the gradients must be undefined or already these views).
  void attach();
  /// A parameter's gradient is final for this step (others are ignored).
  void ready(const autograd::Var& leaf);
  /// Starts what has not started, waits for every bucket, and leaves in each gradient its mean
  /// over the ranks. Resets for the next step.
  void finish();
  /// Seconds finish() spent waiting for transfers, and the seconds spent copying, last step.
  double wait_seconds() const noexcept { return wait_seconds_; }
  size_t bucket_count() const noexcept { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;   // indices into params_
    std::vector<int64_t> offset;  // of each parameter in buffer
    Tensor<float> buffer;         // 1-D; the gradients are views of it
    size_t filled = 0;
    std::unique_ptr<Communicator::Request> request;
  };
  void fill(size_t param);
  float* slot(size_t param);
  void launch_ready();

  Communicator& comm_;
  std::vector<autograd::Var> params_;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<size_t> slot_of_;    // index within its bucket
  std::vector<bool> filled_;
  std::unordered_map<const autograd::VarImpl*, size_t> index_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  double wait_seconds_ = 0;
};

/// Assigns each parameter (by element count) to a rank so that the ranks' totals are as even as a
/// greedy pass makes them (largest first, to the rank with the least; ties to the lower rank):
/// PyTorch's ZeroRedundancyOptimizer partition. Deterministic: every rank computes the same.
std::vector<int> partition_parameters(const std::vector<int64_t>& sizes, int ranks);

}  // namespace scholar::train::detail
