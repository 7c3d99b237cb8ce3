// autograd::distill_loss: against PyTorch (tests/reference/make_distill_fixtures.py, Debian's
// python3-torch), against finite differences, its special cases, and its errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "gradcheck.hpp"
#include "scholar/io/safetensors.hpp"
#include "support.hpp"

using namespace scholar;
using autograd::Var;
namespace ag = scholar::autograd;

namespace {

const io::SafetensorsFile& fixture() {
  static const io::SafetensorsFile f =
      io::SafetensorsFile::open(SCHOLAR_TEST_DATA "/distill_torch.safetensors");
  return f;
}

Tensor<float> rnd(const Shape& s, uint64_t seed, float stddev = 1.0f) {
  Generator g(seed);
  return randn(s, g, 0.0f, stddev);
}

// The loss and the student's gradient.
std::pair<float, Tensor<float>> run(const Tensor<float>& student, const ag::SoftTargets& teacher,
                                    const Tensor<int32_t>& targets, const ag::DistillOptions& o,
                                    ag::DistillTerms* terms = nullptr) {
  Var s(student.clone(), true);
  Var loss = ag::distill_loss(s, teacher, targets, o, terms);
  loss.backward();
  return {loss.value().item(), s.grad().contiguous()};
}

}  // namespace

TEST_CASE(
    "distill_loss matches PyTorch: every divergence, T 1/2/4, full and top-K, ignored "
    "positions",
    "[autograd][torch]") {
  const auto& f = fixture();
  const Tensor<float> student = f.load<float>("student"), teacher = f.load<float>("teacher");
  const Tensor<int32_t> targets = f.load<int32_t>("targets");
  int cases = 0;
  for (const char* T : {"1", "2", "4"}) {
    const Tensor<int32_t> ids = f.load<int32_t>(std::string("T") + T + ".top_ids");
    const Tensor<float> lp = f.load<float>(std::string("T") + T + ".top_log_probs");
    for (const auto& [kind, beta] : {std::pair<std::string, float>{"forward_kl", 0.5f},
                                     {"reverse_kl", 0.5f},
                                     {"jsd", 0.5f},
                                     {"jsd", 0.1f}}) {
      for (const char* alpha : {"0.5", "1"}) {
        for (bool top : {false, true}) {
          std::string key = std::string("T") + T + "." + kind;
          if (kind == "jsd") key += beta == 0.5f ? "0.5" : "0.1";
          key += std::string(".a") + alpha + (top ? ".top" : ".full");
          INFO(key);
          ag::DistillOptions o;
          o.temperature = std::stof(T);
          o.alpha = std::stof(alpha);
          o.divergence = ag::parse_divergence(kind);
          o.beta = beta;
          ag::DistillTerms terms;
          const auto [loss, grad] =
              run(student, top ? ag::SoftTargets::top_k(ids, lp) : ag::SoftTargets::full(teacher),
                  targets, o, &terms);
          const float want = f.load<float>(key + ".loss").to_vector()[0];
          CHECK(std::fabs(loss - want) <= 1e-4 * std::max(1.0f, std::fabs(want)));
          CHECK(std::fabs(terms.soft - f.load<float>(key + ".soft").to_vector()[0]) <= 1e-4);
          CHECK(std::fabs(terms.hard - f.load<float>(key + ".hard").to_vector()[0]) <= 1e-4);
          test::check_close(grad.to_vector(), f.load<float>(key + ".grad").to_vector(), 1e-4, 1e-6,
                            key);
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 48);
}

TEST_CASE("gradcheck: distill_loss, each divergence, full and top-K", "[autograd]") {
  const auto targets = Tensor<int32_t>::from({2, 3}, {1, -100, 6, 0, 3, 2});
  const Tensor<float> teacher = rnd({2, 3, 9}, 7, 2.0f);
  // The teacher's top 3 at T = 2, from its logits.
  Tensor<int32_t> ids = Tensor<int32_t>::zeros({2, 3, 3});
  Tensor<float> lps = Tensor<float>::zeros({2, 3, 3});
  for (int64_t r = 0; r < 6; ++r) {
    std::vector<float> z(9), l(9);
    for (int64_t v = 0; v < 9; ++v) z[static_cast<size_t>(v)] = teacher.data()[r * 9 + v] / 2;
    kernels::active().log_softmax(l.data(), z.data(), 9);
    std::vector<int32_t> order = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return l[static_cast<size_t>(a)] > l[static_cast<size_t>(b)];
    });
    for (int64_t j = 0; j < 3; ++j) {
      ids.data()[r * 3 + j] = order[static_cast<size_t>(j)];
      lps.data()[r * 3 + j] = l[static_cast<size_t>(order[static_cast<size_t>(j)])];
    }
  }
  for (auto div : {ag::Divergence::forward_kl, ag::Divergence::reverse_kl, ag::Divergence::jsd}) {
    for (bool top : {false, true}) {
      ag::DistillOptions o{.temperature = 2.0f, .alpha = 0.7f, .divergence = div, .beta = 0.3f};
      INFO(ag::divergence_name(div) << (top ? " top-K" : " full"));
      const ag::SoftTargets soft =
          top ? ag::SoftTargets::top_k(ids, lps) : ag::SoftTargets::full(teacher);
      test::gradcheck("distill_loss",
                      [&](const auto& v) { return ag::distill_loss(v[0], soft, targets, o); },
                      {rnd({2, 3, 9}, 3, 2.0f)});
    }
  }
}

TEST_CASE("distill_loss: special cases", "[autograd]") {
  const Tensor<float> s = rnd({4, 11}, 1, 2.0f), t = rnd({4, 11}, 2, 2.0f);
  const auto y = Tensor<int32_t>::from({4}, {3, 0, -100, 10});
  SECTION("alpha 0 is cross-entropy") {
    Var a(s.clone(), true), b(s.clone(), true);
    Var l1 = ag::distill_loss(a, ag::SoftTargets::full(t), y, {.alpha = 0.0f});
    Var l2 = ag::cross_entropy(b, y);
    CHECK(l1.value().item() == Approx(l2.value().item()).epsilon(1e-6));
    l1.backward();
    l2.backward();
    test::check_close(a.grad().to_vector(), b.grad().to_vector(), 1e-5, 1e-7, "alpha 0");
  }
  SECTION("a student equal to its teacher has no soft loss and no soft gradient") {
    for (auto div : {ag::Divergence::forward_kl, ag::Divergence::reverse_kl, ag::Divergence::jsd}) {
      ag::DistillTerms terms;
      const auto [loss, grad] =
          run(s, ag::SoftTargets::full(s), y, {.alpha = 1.0f, .divergence = div}, &terms);
      CHECK(std::fabs(terms.soft) < 1e-6);
      for (float g : grad.to_vector()) CHECK(std::fabs(g) < 1e-6);
    }
  }
  SECTION("top-K with K = V is the full loss") {
    Tensor<int32_t> ids = Tensor<int32_t>::zeros({4, 11});
    Tensor<float> lp = Tensor<float>::zeros({4, 11});
    for (int64_t r = 0; r < 4; ++r) {
      std::vector<float> z(11);
      for (int64_t v = 0; v < 11; ++v) z[static_cast<size_t>(v)] = t.data()[r * 11 + v] / 3;
      kernels::active().log_softmax(lp.data() + r * 11, z.data(), 11);
      for (int64_t v = 0; v < 11; ++v) ids.data()[r * 11 + v] = static_cast<int32_t>(10 - v);
      std::reverse(lp.data() + r * 11, lp.data() + r * 11 + 11);
    }
    for (auto div : {ag::Divergence::forward_kl, ag::Divergence::reverse_kl, ag::Divergence::jsd}) {
      const ag::DistillOptions o{.temperature = 3.0f, .divergence = div};
      const auto [l1, g1] = run(s, ag::SoftTargets::full(t), y, o);
      const auto [l2, g2] = run(s, ag::SoftTargets::top_k(ids, lp), y, o);
      CHECK(l1 == Approx(l2).epsilon(1e-5));
      test::check_close(g2.to_vector(), g1.to_vector(), 1e-4, 1e-6, "K = V");
    }
  }
  SECTION("a teacher sliced out of a padded vocabulary is read in place") {
    Tensor<float> padded = rnd({4, 16}, 5);
    const Tensor<float> view = padded.slice(1, 0, 11);
    const auto [l1, g1] = run(s, ag::SoftTargets::full(view), y, {});
    const auto [l2, g2] = run(s, ag::SoftTargets::full(view.contiguous()), y, {});
    CHECK(l1 == l2);
    CHECK(g1.to_vector() == g2.to_vector());
  }
}

TEST_CASE("distill_loss: bad input is a clear error", "[autograd]") {
  const Tensor<float> s = rnd({2, 5}, 1), t = rnd({2, 5}, 2);
  const auto y = Tensor<int32_t>::from({2}, {1, 2});
  Var v(s, true);
  auto full = ag::SoftTargets::full(t);
  CHECK_THROWS_WITH(ag::distill_loss(v, ag::SoftTargets::full(rnd({2, 6}, 3)), y),
                    Catch::Contains("teacher logits [2, 6]") && Catch::Contains("[2, 5]"));
  CHECK_THROWS_AS(ag::distill_loss(v, full, Tensor<int32_t>::from({3}, {1, 2, 3})), ShapeError);
  CHECK_THROWS_AS(ag::distill_loss(v, full, Tensor<int32_t>::from({2}, {-100, -100})), ValueError);
  CHECK_THROWS_WITH(ag::distill_loss(v, full, Tensor<int32_t>::from({2}, {1, 5})),
                    Catch::Contains("target 5"));
  CHECK_THROWS_WITH(ag::distill_loss(v, full, y, {.temperature = 0.0f}),
                    Catch::Contains("temperature"));
  CHECK_THROWS_WITH(ag::distill_loss(v, full, y, {.alpha = 1.5f}), Catch::Contains("alpha"));
  CHECK_THROWS_WITH(ag::distill_loss(v, full, y, {.beta = -0.1f}), Catch::Contains("beta"));
  CHECK_THROWS_WITH(ag::parse_divergence("kl"), Catch::Contains("forward_kl"));
  auto lp = Tensor<float>::from({2, 2}, {-0.5f, -2.0f, -1.0f, -3.0f});
  CHECK_THROWS_WITH(
      ag::distill_loss(v, ag::SoftTargets::top_k(Tensor<int32_t>::from({2, 2}, {1, 1, 0, 2}), lp),
                       y),
      Catch::Contains("appears twice") && Catch::Contains("position 0"));
  CHECK_THROWS_WITH(
      ag::distill_loss(v, ag::SoftTargets::top_k(Tensor<int32_t>::from({2, 2}, {1, 7, 0, 2}), lp),
                       y),
      Catch::Contains("top-K id 7"));
  CHECK_THROWS_WITH(
      ag::distill_loss(v,
                       ag::SoftTargets::top_k(Tensor<int32_t>::from({2, 2}, {1, 3, 0, 2}),
                                              Tensor<float>::from({2, 2}, {2.0f, -1, -1, -1})),
                       y),
      Catch::Contains("not a log-probability"));
  CHECK_THROWS_WITH(
      ag::distill_loss(v,
                       ag::SoftTargets::top_k(Tensor<int32_t>::from({2, 2}, {1, 3, 0, 2}),
                                              Tensor<float>::from({2, 2}, {-0.1f, -0.2f, -1, -1})),
                       y),
      Catch::Contains("sum to"));
  CHECK_THROWS_AS(
      ag::distill_loss(v,
                       ag::SoftTargets::top_k(Tensor<int32_t>::from({2, 2}, {1, 3, 0, 2}),
                                              Tensor<float>::from({2, 1}, {-1, -1})),
                       y),
      ShapeError);
}
