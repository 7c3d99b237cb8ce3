// Losses: fused softmax cross-entropy (forward and backward side by side).
#include <cmath>
#include <vector>

#include "autograd/targets.hpp"
#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"

namespace scholar::autograd {

// loss = mean over kept rows r of (logsumexp(x_r) - x_r[t_r]);
// dx_r = (softmax(x_r) - onehot(t_r)) * dloss / kept, and 0 for ignored rows.
Var cross_entropy(const Var& logits, const Tensor<int32_t>& targets, int32_t ignore_index) {
  if (!logits.defined()) fail<ValueError>("cross_entropy: logits are undefined");
  const Tensor<float>& lv = logits.value();
  if (lv.rank() < 2)
    fail<ShapeError>("cross_entropy: logits must be [N, V] or [B, T, V], got ", lv.shape().str());
  const int64_t V = lv.size(-1);
  Shape want = lv.shape();
  want.erase(want.rank() - 1);
  if (!(targets.shape() == want))
    fail<ShapeError>("cross_entropy: logits ", lv.shape().str(), " need targets of shape ",
                     want.str(), ", got ", targets.shape().str());
  const Tensor<float> x = lv.contiguous();
  const Tensor<int32_t> t = targets.contiguous();
  const int64_t N = t.numel();
  const int64_t kept = detail::kept_targets(t.data(), N, V, ignore_index, "cross_entropy");

  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
  const kernels::KernelTable& k = kernels::active();
  parallel_for(0, N, std::max<int64_t>(1, 8192 / std::max<int64_t>(V, 1)),
               [&](int64_t b, int64_t e) {
                 std::vector<float> scratch(static_cast<size_t>(V));
                 for (int64_t r = b; r < e; ++r) {
                   const int32_t id = t.data()[r];
                   if (id == ignore_index) continue;
                   k.log_softmax(scratch.data(), x.data() + r * V, static_cast<size_t>(V));
                   row_loss[static_cast<size_t>(r)] = -double{scratch[static_cast<size_t>(id)]};
                 }
               });
  double total = 0;
  for (double l : row_loss) total += l;
  Tensor<float> loss = Tensor<float>::scalar(static_cast<float>(total / static_cast<double>(kept)));
  return make_result(std::move(loss), Op::cross_entropy, {logits},
                     [logits, x, t, ignore_index, kept, N, V](const Tensor<float>& g) {
                       const float s = g.item() / static_cast<float>(kept);
                       Tensor<float> dx = Tensor<float>::empty(x.shape());
                       const kernels::KernelTable& k = kernels::active();
                       parallel_for(0, N, std::max<int64_t>(1, 8192 / std::max<int64_t>(V, 1)),
                                    [&](int64_t b, int64_t e) {
                                      for (int64_t r = b; r < e; ++r) {
                                        float* d = dx.data() + r * V;
                                        const int32_t id = t.data()[r];
                                        if (id == ignore_index) {
                                          std::fill_n(d, V, 0.0f);
                                          continue;
                                        }
                                        k.softmax(d, x.data() + r * V, static_cast<size_t>(V));
                                        k.scale(d, d, s, static_cast<size_t>(V));
                                        d[id] -= s;
                                      }
                                    });
                       logits.accumulate_owned_grad(dx.reshape(logits.shape()));
                     });
}

}  // namespace scholar::autograd
