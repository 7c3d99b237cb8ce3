// The autograd engine: accumulation of reused values, grad mode, detach, leaves, errors, and a deep
// graph.
#include <catch2/catch.hpp>

#include "scholar/autograd/ops.hpp"
#include "scholar/tensor/ops.hpp"

using namespace scholar;
using autograd::Var;
namespace ag = scholar::autograd;

TEST_CASE("gradients of a value used twice add up", "[autograd]") {
  Var x(Tensor<float>::from({2}, {3.0f, -1.0f}), true);
  Var y = ag::sum(ag::add(ag::mul(x, x), ag::scale(x, 2.0f)));  // x^2 + 2x
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{8.0f, 0.0f});  // 2x + 2
  CHECK(y.value().item() == Approx(9 + 6 + 1 - 2));               // (9 + 6) + (1 - 2)
}

TEST_CASE("no_grad records nothing, detach and requires_grad stop gradients", "[autograd]") {
  Var w(Tensor<float>::ones({3}), true);
  Var c(Tensor<float>::full({3}, 2.0f));  // a constant leaf
  {
    ag::NoGradGuard guard;
    CHECK(!ag::grad_enabled());
    Var y = ag::mul(w, c);
    CHECK(!y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(ag::grad_enabled());
  Var y = ag::sum(ag::add(ag::mul(w, c), ag::mul(w.detach(), c)));
  y.backward();
  CHECK(w.grad().to_vector() == std::vector<float>{2, 2, 2});  // only the first term
  CHECK(!c.grad().defined());
  w.zero_grad();
  CHECK(!w.grad().defined());
  CHECK_THROWS_AS(ag::add(w, c).set_requires_grad(false), ValueError);
}

TEST_CASE("backward needs a scalar or an explicit gradient", "[autograd]") {
  Var w(Tensor<float>::ones({2, 2}), true);
  Var y = ag::scale(w, 3.0f);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("[2, 2]"));
  CHECK_THROWS_AS(y.backward(Tensor<float>::ones({3})), ShapeError);
  y.backward(Tensor<float>::ones({2, 2}));
  CHECK(w.grad().to_vector() == std::vector<float>(4, 3.0f));
  Var constant(Tensor<float>::ones({1}));
  CHECK_THROWS_AS(constant.backward(), ValueError);
  CHECK_THROWS_AS(Var().value(), ValueError);
}

TEST_CASE("a second backward through a freed graph is an error, not a silent no-op", "[autograd]") {
  Var w(Tensor<float>::ones({2}), true);
  Var h = ag::scale(w, 2.0f);
  Var loss = ag::sum(ag::mul(h, h));
  loss.backward();
  CHECK(w.grad().to_vector() == std::vector<float>{8.0f, 8.0f});
  CHECK(!h.is_leaf());
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("freed"));
  Var again = ag::sum(h);  // built on an intermediate whose graph is gone
  CHECK_THROWS_WITH(again.backward(), Catch::Contains("forward pass again"));
  CHECK(w.grad().to_vector() == std::vector<float>{8.0f, 8.0f});  // untouched
  // A fresh forward pass works as before.
  ag::sum(ag::scale(w, 1.0f)).backward();
  CHECK(w.grad().to_vector() == std::vector<float>{9.0f, 9.0f});
}

TEST_CASE("a chain of ten thousand ops back-propagates without recursion", "[autograd]") {
  Var x(Tensor<float>::from({1}, {1.0f}), true);
  Var y = x;
  for (int i = 0; i < 10000; ++i) y = ag::scale(y, 1.0001f);
  ag::sum(y).backward();
  CHECK(x.grad().item() == Approx(std::pow(1.0001, 10000)).epsilon(1e-3));
}

TEST_CASE("leaves can be reassigned, shape changes are refused", "[autograd]") {
  Var w(Tensor<float>::zeros({2}), true);
  w.set_value(Tensor<float>::ones({2}));
  CHECK(w.value().to_vector() == std::vector<float>{1, 1});
  w.set_name("layer.weight");
  CHECK_THROWS_WITH(w.set_value(Tensor<float>::ones({3})), Catch::Contains("layer.weight"));
}

TEST_CASE("GradReadyHook reports each leaf once, after its last contribution", "[autograd]") {
  Generator gen(5);
  autograd::Var w(randn({3, 3}, gen), true), b(randn({3}, gen), true), x(randn({2, 3}, gen));
  autograd::Var frozen(randn({3, 3}, gen), false);
  // w is used twice, far apart in the graph: it is final only after both uses.
  const auto h = autograd::add(autograd::matmul(x, w), b);
  const auto y = autograd::matmul(autograd::matmul(h, frozen), w);
  std::vector<std::pair<const autograd::VarImpl*, Tensor<float>>> seen;
  {
    autograd::GradReadyHook hook(
        [&](const autograd::Var& v) { seen.emplace_back(v.impl(), v.grad().clone()); });
    autograd::sum(y).backward();
  }
  REQUIRE(seen.size() == 2);  // w and b; not x or frozen, which want no gradient
  for (const auto& [impl, g] : seen) {
    const autograd::Var& v = impl == w.impl() ? w : b;
    CHECK((impl == w.impl() || impl == b.impl()));
    CHECK(max_abs_diff(g, v.grad()) == 0.0f);  // nothing was added after the report
  }
  // Outside the scope nothing is reported.
  w.zero_grad();
  autograd::sum(autograd::matmul(x, w)).backward();
  CHECK(seen.size() == 2);
  CHECK_THROWS_AS(autograd::GradReadyHook(std::function<void(const autograd::Var&)>()), ValueError);
}
