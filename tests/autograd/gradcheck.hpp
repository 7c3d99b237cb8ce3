// gradcheck: every differentiable op's analytic gradient against central finite differences.
//
// For inputs x and an op f, the scalar L = sum(w * f(x)) with fixed random weights w is
// differentiated by backward(), and each input element's derivative is estimated by
// (L(x + eps) - L(x - eps)) / (2 eps), with L accumulated in double from f's float output. Any new
// op calls this from tests/autograd/test_ops.cpp.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "scholar/autograd/ops.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/random.hpp"

namespace test {

struct GradcheckOptions {
  double eps = 1e-2;     // finite-difference step
  double rtol = 2e-2;    // relative tolerance
  double atol = 2e-3;    // absolute tolerance (scaled by the size of L's typical terms)
  int max_checks = 300;  // elements checked per input (spread evenly)
};

inline void gradcheck(
    const std::string& name,
    const std::function<scholar::autograd::Var(const std::vector<scholar::autograd::Var>&)>& f,
    const std::vector<scholar::Tensor<float>>& inputs, std::vector<bool> wants_grad = {},
    GradcheckOptions opt = {}) {
  using namespace scholar;
  using autograd::Var;
  if (wants_grad.empty()) wants_grad.assign(inputs.size(), true);
  std::vector<Var> vars;
  for (size_t i = 0; i < inputs.size(); ++i) vars.emplace_back(inputs[i].clone(), wants_grad[i]);
  Var y = f(vars);
  Generator gen(99);
  const Tensor<float> w = randn(y.shape(), gen);
  Var loss = autograd::sum(autograd::mul(y, Var(w)));
  loss.backward();

  auto value_of_l = [&](const std::vector<Var>& in) {
    autograd::NoGradGuard no_grad;
    const Tensor<float> out = f(in).value().contiguous();
    const Tensor<float> wc = w.contiguous();
    double l = 0;
    for (int64_t i = 0; i < out.numel(); ++i) l += double{out.data()[i]} * double{wc.data()[i]};
    return l;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!wants_grad[i]) continue;
    const Tensor<float>& analytic = vars[i].grad();
    REQUIRE(analytic.defined());
    const Tensor<float> a = analytic.contiguous();
    const int64_t n = inputs[i].numel();
    const int64_t step = std::max<int64_t>(1, n / opt.max_checks);
    int bad = 0;
    for (int64_t e = 0; e < n; e += step) {
      std::vector<Var> plus, minus;
      for (size_t j = 0; j < inputs.size(); ++j) {
        Tensor<float> p = inputs[j].clone(), m = inputs[j].clone();
        if (j == i) {
          p.data()[e] += static_cast<float>(opt.eps);
          m.data()[e] -= static_cast<float>(opt.eps);
        }
        plus.emplace_back(p);
        minus.emplace_back(m);
      }
      // The actual perturbation after rounding to float.
      const double h = double{inputs[i].clone().data()[e] + static_cast<float>(opt.eps)} -
                       double{inputs[i].clone().data()[e] - static_cast<float>(opt.eps)};
      const double numeric = (value_of_l(plus) - value_of_l(minus)) / h;
      const double got = a.data()[e];
      if (std::fabs(got - numeric) >
          opt.atol + opt.rtol * std::max(std::fabs(got), std::fabs(numeric))) {
        if (bad++ < 3)
          UNSCOPED_INFO(name << ": input " << i << " element " << e << ": analytic " << got
                             << ", numeric " << numeric);
      }
    }
    INFO(name << ": input " << i);
    CHECK(bad == 0);
  }
}

}  // namespace test
