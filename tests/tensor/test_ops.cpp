// Elementwise ops with broadcasting, unary math, reductions and softmax against plain loops that
// index every element through its strides (the oracle), on contiguous and strided inputs.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/random.hpp"

using namespace scholar;

namespace {

// Element of t for an index into a broadcast result of rank `rank` (NumPy alignment).
double at_broadcast(const FloatTensor& t, const std::vector<int64_t>& idx) {
  const int lead = static_cast<int>(idx.size()) - t.rank();
  int64_t off = 0;
  for (int d = 0; d < t.rank(); ++d) {
    const int64_t i = t.shape()[d] == 1 ? 0 : idx[static_cast<size_t>(d + lead)];
    off += i * t.strides()[d];
  }
  return t.data()[off];
}

// Calls f(index) for every index of shape.
template <class F>
void for_each_index(const Shape& shape, F&& f) {
  std::vector<int64_t> idx(static_cast<size_t>(shape.rank()), 0);
  const int64_t n = shape.numel();
  for (int64_t k = 0; k < n; ++k) {
    f(idx);
    for (int d = shape.rank() - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < shape[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
}

// A random tensor of `shape`, sometimes presented as a transposed or sliced view of a bigger one.
FloatTensor random_view(const Shape& shape, Generator& gen, std::mt19937& rng) {
  const int kind = static_cast<int>(rng() % 3);
  if (kind == 1 && shape.rank() >= 2) {
    Shape sw = shape;
    std::swap(sw[0], sw[1]);
    return randn(sw, gen).transpose(0, 1);
  }
  if (kind == 2 && shape.rank() >= 1) {
    Shape big = shape;
    big[shape.rank() - 1] = shape[shape.rank() - 1] * 2 + 1;
    return randn(big, gen).slice(-1, 1, 1 + 2 * shape[shape.rank() - 1], 2);
  }
  return randn(shape, gen);
}

Shape random_shape(std::mt19937& rng, int max_rank) {
  Shape s;
  const int rank = static_cast<int>(rng() % static_cast<unsigned>(max_rank + 1));
  for (int d = 0; d < rank; ++d) s.push_back(1 + static_cast<int64_t>(rng() % 5));
  return s;
}

// A shape that broadcasts with s: some dims set to 1, some leading dims dropped.
Shape compatible(const Shape& s, std::mt19937& rng) {
  Shape r;
  const int drop = s.rank() ? static_cast<int>(rng() % static_cast<unsigned>(s.rank() + 1)) : 0;
  for (int d = drop; d < s.rank(); ++d) r.push_back(rng() % 3 == 0 ? 1 : s[d]);
  return r;
}

}  // namespace

TEST_CASE("binary ops broadcast like NumPy on contiguous and strided inputs", "[ops]") {
  std::mt19937 rng(11);
  Generator gen(11);
  for (int iter = 0; iter < 300; ++iter) {
    Shape sa = random_shape(rng, 4), sb = compatible(sa, rng);
    if (rng() % 2) std::swap(sa, sb);
    const FloatTensor a = random_view(sa, gen, rng), b = random_view(sb, gen, rng);
    const Shape out = layout::broadcast_shapes(sa, sb, "test");
    struct Case {
      const char* name;
      FloatTensor got;
      double (*f)(double, double);
    } cases[] = {
        {"add", a + b, [](double x, double y) { return x + y; }},
        {"sub", a - b, [](double x, double y) { return x - y; }},
        {"mul", a * b, [](double x, double y) { return x * y; }},
        {"div", a / b, [](double x, double y) { return x / y; }},
        {"maximum", maximum(a, b), [](double x, double y) { return std::max(x, y); }},
    };
    for (const Case& c : cases) {
      INFO(c.name << " " << sa.str() << " with " << sb.str());
      REQUIRE(c.got.shape() == out);
      for_each_index(out, [&](const std::vector<int64_t>& idx) {
        const double want = static_cast<float>(c.f(at_broadcast(a, idx), at_broadcast(b, idx)));
        REQUIRE(at_broadcast(c.got, idx) == want);
      });
    }
  }
}

TEST_CASE("scalar and in-place ops", "[ops]") {
  Generator gen(3);
  const FloatTensor a = randn({3, 5}, gen);
  const auto av = a.to_vector();
  const auto check = [&](const FloatTensor& got, auto f) {
    const auto g = got.to_vector();
    for (size_t i = 0; i < av.size(); ++i) REQUIRE(g[i] == static_cast<float>(f(av[i])));
  };
  check(a + 2.0f, [](float x) { return x + 2.0f; });
  check(a - 2.0f, [](float x) { return x - 2.0f; });
  check(a * 3.0f, [](float x) { return x * 3.0f; });
  check(a / 3.0f, [](float x) { return x / 3.0f; });
  check(1.0f - a, [](float x) { return 1.0f - x; });
  check(1.0f / a, [](float x) { return 1.0f / x; });
  check(-a, [](float x) { return -x; });
  FloatTensor c = a.clone();
  add_(c, FloatTensor::ones({5}));
  check(c, [](float x) { return x + 1.0f; });
  mul_(c, 2.0f);
  check(c, [](float x) { return (x + 1.0f) * 2.0f; });
  FloatTensor d = a.clone();
  axpy_(d, 0.5f, a);
  const auto dv = d.to_vector();
  for (size_t i = 0; i < av.size(); ++i) CHECK(dv[i] == Approx(1.5 * av[i]).epsilon(1e-6));
  CHECK_THROWS_WITH(add_(c, FloatTensor::ones({2, 3, 5})), Catch::Contains("[2, 3, 5]"));
}

TEST_CASE("unary math matches the standard library", "[ops]") {
  Generator gen(5);
  const FloatTensor x = rand({257}, gen, 0.1f, 4.0f);
  const FloatTensor s = randn({257}, gen, 0.0f, 3.0f);
  const auto xv = x.to_vector(), sv = s.to_vector();
  auto check = [](const FloatTensor& got, const std::vector<float>& in, auto f, double tol) {
    const auto g = got.to_vector();
    for (size_t i = 0; i < in.size(); ++i) {
      const double want = f(static_cast<double>(in[i]));
      REQUIRE(std::fabs(g[i] - want) <= tol * (1 + std::fabs(want)));
    }
  };
  check(
      exp(s), sv, [](double v) { return std::exp(v); }, 1e-6);
  check(
      log(x), xv, [](double v) { return std::log(v); }, 1e-6);
  check(
      sqrt(x), xv, [](double v) { return std::sqrt(v); }, 1e-7);
  check(
      rsqrt(x), xv, [](double v) { return 1 / std::sqrt(v); }, 1e-6);
  check(
      abs(s), sv, [](double v) { return std::fabs(v); }, 0);
  check(
      square(s), sv, [](double v) { return v * v; }, 1e-6);
  check(
      sin(s), sv, [](double v) { return std::sin(v); }, 1e-6);
  check(
      cos(s), sv, [](double v) { return std::cos(v); }, 1e-6);
  check(
      tanh(s), sv, [](double v) { return std::tanh(v); }, 1e-6);
  check(
      sigmoid(s), sv, [](double v) { return 1 / (1 + std::exp(-v)); }, 1e-6);
  check(
      relu(s), sv, [](double v) { return v > 0 ? v : 0; }, 0);
  check(
      gelu(s), sv,
      [](double v) {
        return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      },
      1e-6);
  check(
      silu(s), sv, [](double v) { return v / (1 + std::exp(-v)); }, 1e-6);
  check(
      pow(x, 1.5f), xv, [](double v) { return std::pow(v, 1.5); }, 1e-6);
  check(
      clamp(s, -1.0f, 1.0f), sv, [](double v) { return std::min(1.0, std::max(-1.0, v)); }, 0);
  CHECK_THROWS_AS(clamp(s, 1.0f, -1.0f), ValueError);
  // Strided input goes through the same functions.
  const FloatTensor m = randn({6, 7}, gen);
  CHECK(max_abs_diff(gelu(m.t()), gelu(m.t().contiguous())) == 0.0);
}

TEST_CASE("reductions along each dimension, with and without keepdim", "[ops]") {
  Generator gen(8);
  const FloatTensor x = randn({3, 4, 5}, gen);
  for (int dim = -3; dim < 3; ++dim) {
    const int d = dim < 0 ? dim + 3 : dim;
    for (bool keep : {false, true}) {
      const FloatTensor s = sum(x, dim, keep), m = mean(x, dim, keep), mx = max(x, dim, keep);
      const Tensor<int32_t> am = argmax(x, dim, keep);
      Shape want = x.shape();
      if (keep)
        want[d] = 1;
      else
        want.erase(d);
      REQUIRE(s.shape() == want);
      REQUIRE(am.shape() == want);
      // Oracle: walk the reduced dimension for every output position.
      const FloatTensor sk = keep ? s : s.unsqueeze(d);
      const FloatTensor mk = keep ? mx : mx.unsqueeze(d);
      const Tensor<int32_t> ak = keep ? am : am.unsqueeze(d);
      Shape outer = x.shape();
      outer[d] = 1;
      for_each_index(outer, [&](const std::vector<int64_t>& idx) {
        double tot = 0, best = -INFINITY;
        int64_t arg = 0;
        std::vector<int64_t> j = idx;
        for (int64_t k = 0; k < x.shape()[d]; ++k) {
          j[static_cast<size_t>(d)] = k;
          const double v = x.at({j[0], j[1], j[2]});
          tot += v;
          if (v > best) best = v, arg = k;
        }
        REQUIRE(sk.at({idx[0], idx[1], idx[2]}) == Approx(tot).margin(1e-5));
        REQUIRE(mk.at({idx[0], idx[1], idx[2]}) == best);
        REQUIRE(ak.at({idx[0], idx[1], idx[2]}) == arg);
      });
      CHECK(max_abs_diff(m, s / static_cast<float>(x.shape()[d])) < 1e-6);
    }
  }
  CHECK(sum_all(x) == Approx(sum(sum(sum(x, 0), 0), 0).item()).margin(1e-4));
  CHECK_THROWS_AS(sum(x, 3), IndexError);
  CHECK_THROWS_AS(max(FloatTensor::zeros({2, 0}), 1), ShapeError);
  CHECK(sum(FloatTensor::zeros({2, 0}), 1).to_vector() == std::vector<float>{0, 0});
}

TEST_CASE("reductions over large tensors split across threads give the same result", "[ops]") {
  Generator gen(9);
  const FloatTensor x = randn({64, 300, 17}, gen);
  set_num_threads(1);
  const FloatTensor s1 = sum(x, 1), m1 = max(x, 0);
  set_num_threads(2);
  const FloatTensor s2 = sum(x, 1), m2 = max(x, 0);
  CHECK(max_abs_diff(s1, s2) == 0.0);
  CHECK(max_abs_diff(m1, m2) == 0.0);
  set_num_threads(0);
}

TEST_CASE("softmax and log_softmax along any dimension", "[ops]") {
  Generator gen(10);
  const FloatTensor x = randn({4, 6, 9}, gen, 0.0f, 4.0f);
  for (int dim = 0; dim < 3; ++dim) {
    const FloatTensor p = softmax(x, dim), lp = log_softmax(x, dim);
    REQUIRE(p.shape() == x.shape());
    CHECK(max_abs_diff(sum(p, dim), FloatTensor::ones(sum(p, dim).shape())) < 2e-6);
    CHECK(max_abs_diff(exp(lp), p) < 2e-6);
    // Oracle on one slice.
    Shape outer = x.shape();
    outer[dim] = 1;
    for_each_index(outer, [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> j = idx;
      double m = -INFINITY, z = 0;
      for (int64_t k = 0; k < x.shape()[dim]; ++k) {
        j[static_cast<size_t>(dim)] = k;
        m = std::max(m, double{x.at({j[0], j[1], j[2]})});
      }
      for (int64_t k = 0; k < x.shape()[dim]; ++k) {
        j[static_cast<size_t>(dim)] = k;
        z += std::exp(x.at({j[0], j[1], j[2]}) - m);
      }
      for (int64_t k = 0; k < x.shape()[dim]; ++k) {
        j[static_cast<size_t>(dim)] = k;
        const double want = std::exp(x.at({j[0], j[1], j[2]}) - m) / z;
        REQUIRE(p.at({j[0], j[1], j[2]}) == Approx(want).epsilon(2e-6).margin(1e-12));
      }
    });
  }
}

TEST_CASE("allclose and max_abs_diff", "[ops]") {
  const FloatTensor a = FloatTensor::from({3}, {1.0f, 2.0f, NAN});
  const FloatTensor b = FloatTensor::from({3}, {1.0f, 2.001f, NAN});
  CHECK(!allclose(a, b));
  CHECK(std::isnan(max_abs_diff(a, FloatTensor::from({3}, {1, 2, 3}))));
  CHECK(max_abs_diff(a.slice(0, 0, 2), b.slice(0, 0, 2)) == Approx(0.001).epsilon(1e-3));
  CHECK(allclose(a.slice(0, 0, 2), b.slice(0, 0, 2), 1e-3));
}

TEST_CASE("op errors name the op and both shapes", "[ops]") {
  const FloatTensor a = FloatTensor::zeros({2, 3}), b = FloatTensor::zeros({4});
  CHECK_THROWS_WITH(a + b,
                    Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(a * b, Catch::Contains("mul"));
  CHECK_THROWS_AS(a + FloatTensor(), ValueError);
  CHECK_THROWS_AS(softmax(a, 2), IndexError);
}
