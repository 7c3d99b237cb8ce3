// Optimizers against their update rules written out by hand, the schedule, clipping, and state
// round trips (a restored optimizer continues bit for bit).
#include <catch2/catch.hpp>
#include <cmath>

#include "scholar/optim/optim.hpp"
#include "scholar/tensor/ops.hpp"

using namespace scholar;
using nn::Var;

namespace {
std::vector<nn::NamedParameter> params_of(std::initializer_list<std::pair<const char*, Var>> list) {
  std::vector<nn::NamedParameter> out;
  for (const auto& [n, v] : list) out.push_back({n, v});
  return out;
}
}  // namespace

TEST_CASE("SGD with momentum and weight decay follows PyTorch's rule", "[optim]") {
  Var w(Tensor<float>::from({2, 2}, {1, 2, 3, 4}), true),
      b(Tensor<float>::from({2}, {1, -1}), true);
  optim::SGD opt(params_of({{"w", w}, {"b", b}}),
                 {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f});
  // Step 1: buf = g + wd p (w only); p -= lr buf.  Step 2: buf = 0.9 buf + g + wd p.
  double pw = 1.0, bufw = 0, pb = 1.0, bufb = 0;
  for (int s = 0; s < 2; ++s) {
    w.accumulate_grad(Tensor<float>::full({2, 2}, 0.5f));
    b.accumulate_grad(Tensor<float>::full({2}, 0.25f));
    const double dw = 0.5 + 0.01 * pw, db = 0.25;  // no decay on the 1-D bias
    bufw = s == 0 ? dw : 0.9 * bufw + dw;
    bufb = s == 0 ? db : 0.9 * bufb + db;
    pw -= 0.1 * bufw;
    pb -= 0.1 * bufb;
    opt.step();
    opt.zero_grad();
  }
  CHECK(w.value()(0, 0) == Approx(pw).epsilon(1e-6));
  CHECK(b.value()(0) == Approx(pb).epsilon(1e-6));
  CHECK(opt.steps() == 2);
}

TEST_CASE("AdamW step against the formula, decay only on matrices", "[optim]") {
  Var w(Tensor<float>::full({3, 2}, 0.5f), true), g(Tensor<float>::full({2}, 0.5f), true);
  optim::AdamW opt(
      params_of({{"w", w}, {"g", g}}),
      {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f});
  w.accumulate_grad(Tensor<float>::full({3, 2}, 2.0f));
  g.accumulate_grad(Tensor<float>::full({2}, 2.0f));
  opt.step();
  // First step: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = lr.
  CHECK(w.value()(0, 0) == Approx(0.5 * (1 - 0.01 * 0.1) - 0.01).epsilon(1e-6));
  CHECK(g.value()(0) == Approx(0.5 - 0.01).epsilon(1e-6));
  // Parameters without a gradient are left alone.
  opt.zero_grad();
  const float before = w.value()(1, 1);
  opt.step();
  CHECK(w.value()(1, 1) == before);
}

TEST_CASE("optimizer state round-trips: a restored optimizer continues identically", "[optim]") {
  Generator gen(3);
  auto make = [&] { return Var(randn({4, 5}, gen), true); };
  Var a = make();
  Var a2(a.value().clone(), true);
  optim::AdamW o1(params_of({{"a", a}}), {.lr = 0.05f});
  for (int s = 0; s < 3; ++s) {
    a.accumulate_grad(randn({4, 5}, gen));
    o1.step();
    o1.zero_grad();
  }
  a2.set_value(a.value().clone());
  optim::AdamW o2(params_of({{"a", a2}}), {.lr = 0.05f});
  o2.load_state(o1.state(), o1.steps());
  const Tensor<float> g = randn({4, 5}, gen);
  a.accumulate_grad(g);
  a2.accumulate_grad(g);
  o1.step();
  o2.step();
  CHECK(max_abs_diff(a.value(), a2.value()) == 0.0);
  optim::NamedTensors bad = o1.state();
  bad[0].second = Tensor<float>::zeros({2});
  CHECK_THROWS_WITH(o2.load_state(bad, 1), Catch::Contains("'m.a'") && Catch::Contains("[2]"));
  CHECK_THROWS_AS(o2.load_state({}, 1), FormatError);
  optim::SGD sgd(params_of({{"a", a}}), {.lr = 0.1f, .momentum = 0.5f});
  a.accumulate_grad(g);
  sgd.step();
  optim::SGD sgd2(params_of({{"a", a2}}), {.lr = 0.1f, .momentum = 0.5f});
  sgd2.load_state(sgd.state(), sgd.steps());
  CHECK(sgd2.state().size() == 1);
}

TEST_CASE("warmup then cosine decay", "[optim]") {
  const optim::WarmupCosine s{
      .max_lr = 1.0f, .min_lr = 0.1f, .warmup_steps = 10, .total_steps = 110};
  CHECK(s.at(0) == Approx(0.1));
  CHECK(s.at(9) == Approx(1.0));
  CHECK(s.at(10) == Approx(1.0));
  CHECK(s.at(60) == Approx(0.55));
  CHECK(s.at(110) == Approx(0.1));
  CHECK(s.at(500) == Approx(0.1));
}

TEST_CASE("gradient clipping scales to the norm and reports it", "[optim]") {
  Var a(Tensor<float>::zeros({2}), true), b(Tensor<float>::zeros({1}), true),
      c(Tensor<float>::zeros({1}), true);
  a.accumulate_grad(Tensor<float>::from({2}, {3, 0}));
  b.accumulate_grad(Tensor<float>::from({1}, {4}));
  CHECK(optim::clip_grad_norm({a, b, c}, 1.0) == Approx(5.0));
  CHECK(a.grad()(0) == Approx(0.6).epsilon(1e-5));
  CHECK(b.grad()(0) == Approx(0.8).epsilon(1e-5));
  CHECK(optim::clip_grad_norm({a, b}, 10.0) == Approx(1.0).epsilon(1e-5));  // no change below
  b.grad()(0) = std::nanf("");
  CHECK(std::isnan(optim::clip_grad_norm({a, b}, 1.0)));
  CHECK_THROWS_AS(optim::clip_grad_norm({a}, 0.0), ValueError);
}

TEST_CASE("bad optimizer settings are rejected", "[optim]") {
  Var w(Tensor<float>::zeros({2}), true), frozen(Tensor<float>::zeros({2}), false);
  CHECK_THROWS_AS(optim::AdamW(params_of({{"w", w}}), {.beta1 = 1.0f}), ValueError);
  CHECK_THROWS_AS(optim::SGD(params_of({{"w", w}}), {.momentum = -0.1f}), ValueError);
  // A frozen parameter is accepted and left without state; an undefined one is an error.
  CHECK(optim::AdamW(params_of({{"frozen", frozen}}), {}).state().empty());
  CHECK_THROWS_WITH(optim::AdamW(params_of({{"nothing", Var()}}), {}), Catch::Contains("nothing"));
  optim::AdamW ok(params_of({{"w", w}}), {});
  CHECK_THROWS_AS(ok.set_lr(-1.0f), ValueError);
  CHECK_THROWS_AS(ok.set_lr(std::nanf("")), ValueError);
}
