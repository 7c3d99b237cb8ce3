// The graph's own cost: a chain of 1,000 small ops (alternately x * 1.0001 and x + y on 16 floats),
// forward and backward, timed per op. Prints one JSON line; bench/compare/op_overhead.py runs it
// beside PyTorch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "scholar/autograd/ops.hpp"
#include "scholar/parallel.hpp"

using namespace scholar;
namespace ag = scholar::autograd;

int main() {
  set_num_threads(1);
  constexpr int kOps = 1000, kRepeats = 200;
  ag::Var x(Tensor<float>::ones({16}), true), y(Tensor<float>::full({16}, 1e-4f), true);
  std::vector<double> per_op;
  for (int r = 0; r < kRepeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    ag::Var z = x;
    for (int i = 0; i < kOps; ++i) z = (i % 2 == 0) ? ag::scale(z, 1.0001f) : ag::add(z, y);
    ag::sum(z).backward();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    per_op.push_back(dt / kOps);
    x.zero_grad();
    y.zero_grad();
  }
  std::sort(per_op.begin(), per_op.end());
  std::printf("{\"impl\": \"scholar\", \"us_per_op\": %.3f}\n", per_op[per_op.size() / 2] * 1e6);
  return 0;
}
