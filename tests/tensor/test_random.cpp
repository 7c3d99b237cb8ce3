// The random number generator: Philox known-answer vectors, bit-for-bit agreement with an
// independent Python implementation (tests/reference/make_rng_fixtures.py), state round trips, and
// the distributions' statistics.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "scholar/io/safetensors.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/random.hpp"

using namespace scholar;

namespace {

const io::SafetensorsFile& expected() {
  static const io::SafetensorsFile f =
      io::SafetensorsFile::open(SCHOLAR_TEST_DATA "/rng_expected.safetensors");
  return f;
}

std::vector<double> doubles(const std::string& name) {
  const auto w = expected().load<int32_t>(name).to_vector();
  std::vector<double> d(w.size() / 2);
  for (size_t i = 0; i < d.size(); ++i) {
    const uint64_t bits =
        static_cast<uint32_t>(w[2 * i]) | (uint64_t{static_cast<uint32_t>(w[2 * i + 1])} << 32);
    std::memcpy(&d[i], &bits, 8);
  }
  return d;
}

bool same_bits(float a, float b) {
  return std::memcmp(&a, &b, 4) == 0;
}

}  // namespace

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors", "[random]") {
  uint32_t out[4];
  const uint32_t zero_ctr[4] = {0, 0, 0, 0}, zero_key[2] = {0, 0};
  philox4x32(zero_ctr, zero_key, out);
  CHECK(out[0] == 0x6627e8d5u);
  CHECK(out[1] == 0xe169c58du);
  CHECK(out[2] == 0xbc57ac4cu);
  CHECK(out[3] == 0x9b00dbd8u);
  const uint32_t ones_ctr[4] = {~0u, ~0u, ~0u, ~0u}, ones_key[2] = {~0u, ~0u};
  philox4x32(ones_ctr, ones_key, out);
  CHECK(out[0] == 0x408f276du);
  CHECK(out[1] == 0x41c83b0eu);
  CHECK(out[2] == 0xa20bc7c6u);
  CHECK(out[3] == 0x6d5451fdu);
  const uint32_t pi_ctr[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  const uint32_t pi_key[2] = {0xa4093822u, 0x299f31d0u};
  philox4x32(pi_ctr, pi_key, out);
  CHECK(out[0] == 0xd16cfe09u);
  CHECK(out[1] == 0x94fdccebu);
  CHECK(out[2] == 0x5001e420u);
  CHECK(out[3] == 0x24126ea1u);
}

TEST_CASE("the generator agrees bit for bit with the independent Python implementation",
          "[random]") {
  Generator g(42);
  for (int32_t w : expected().load<int32_t>("u32.seed42").to_vector())
    CHECK(g.next_u32() == static_cast<uint32_t>(w));
  Generator u(7);
  const auto uni = rand({10}, u).to_vector();
  const auto uni_want = expected().load<float>("uniform.seed7").to_vector();
  for (size_t i = 0; i < uni.size(); ++i) CHECK(same_bits(uni[i], uni_want[i]));
  Generator n(2026);
  const auto nv = randn({10}, n).to_vector();
  const auto nv_want = expected().load<float>("randn.seed2026").to_vector();
  for (size_t i = 0; i < nv.size(); ++i) CHECK(same_bits(nv[i], nv_want[i]));
  Generator big(0xDEADBEEFCAFEull);
  const auto bv = randn({10}, big, 0.5f, 0.02f).to_vector();
  const auto bv_want = expected().load<float>("randn.seed_big").to_vector();
  for (size_t i = 0; i < bv.size(); ++i) CHECK(same_bits(bv[i], bv_want[i]));

  const auto xs = doubles("log.x"), ys = doubles("log.y");
  for (size_t i = 0; i < xs.size(); ++i) {
    const double got = detail::portable_log(xs[i]);
    CHECK(std::memcmp(&got, &ys[i], 8) == 0);
    CHECK(got == Approx(std::log(xs[i])).epsilon(1e-15).margin(1e-300));
  }
  const auto ts = doubles("sincos.t"), sc = doubles("sincos.sc");
  for (size_t i = 0; i < ts.size(); ++i) {
    double s, c;
    detail::portable_sincos_2pi(ts[i], s, c);
    CHECK(std::memcmp(&s, &sc[2 * i], 8) == 0);
    CHECK(std::memcmp(&c, &sc[2 * i + 1], 8) == 0);
    CHECK(s == Approx(std::sin(2 * M_PI * ts[i])).margin(1e-15));
    CHECK(c == Approx(std::cos(2 * M_PI * ts[i])).margin(1e-15));
  }
}

TEST_CASE("portable log and sincos are accurate over their whole range", "[random]") {
  Generator g(1);
  double worst_log = 0, worst_trig = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = 1.0 - g.uniform_double();
    worst_log = std::max(worst_log, std::fabs(detail::portable_log(u) - std::log(u)) /
                                        std::max(1e-300, std::fabs(std::log(u))));
    double s, c;
    const double t = g.uniform_double();
    detail::portable_sincos_2pi(t, s, c);
    worst_trig = std::max(
        {worst_trig, std::fabs(s - std::sin(2 * M_PI * t)), std::fabs(c - std::cos(2 * M_PI * t))});
  }
  CHECK(worst_log < 1e-15);
  CHECK(worst_trig < 1e-15);
}

TEST_CASE("state round trips give identical streams, and clones diverge from nothing", "[random]") {
  Generator a(123);
  for (int i = 0; i < 5; ++i) a.next_u32();  // mid-block
  const Generator::State s = a.state();
  const auto first = randn({7}, a).to_vector();
  Generator b(999);
  b.set_state(s);
  CHECK(b.state() == s);
  const auto second = randn({7}, b).to_vector();
  for (size_t i = 0; i < first.size(); ++i) CHECK(same_bits(first[i], second[i]));
  Generator c = b;  // copies are independent
  CHECK(c.next_u64() == b.next_u64());
  CHECK_THROWS_AS(b.set_state(Generator::State{1, 2, 9}), ValueError);
}

TEST_CASE("distributions have the right moments and bounds", "[random]") {
  Generator g(77);
  const FloatTensor u = rand({200000}, g, -2.0f, 6.0f);
  CHECK(mean_all(u) == Approx(2.0).margin(0.03));
  CHECK(mean_all(square(u - 2.0f)) == Approx(64.0 / 12).margin(0.06));
  const auto uv = u.to_vector();
  CHECK(*std::min_element(uv.begin(), uv.end()) >= -2.0f);
  CHECK(*std::max_element(uv.begin(), uv.end()) < 6.0f);
  const FloatTensor n = randn({200000}, g, 1.0f, 3.0f);
  CHECK(mean_all(n) == Approx(1.0).margin(0.03));
  CHECK(std::sqrt(mean_all(square(n - 1.0f))) == Approx(3.0).margin(0.03));
  // Fraction within one standard deviation: 68.27%.
  const auto nv = n.to_vector();
  const double within =
      std::count_if(nv.begin(), nv.end(), [](float v) { return std::fabs(v - 1) < 3; }) / 200000.0;
  CHECK(within == Approx(0.6827).margin(0.005));
  const FloatTensor t = trunc_normal({100000}, g, 0.0f, 1.0f, -1.0f, 2.0f);
  const auto tv = t.to_vector();
  CHECK(*std::min_element(tv.begin(), tv.end()) >= -1.0f);
  CHECK(*std::max_element(tv.begin(), tv.end()) <= 2.0f);
  // Mean of N(0,1) truncated to [-1, 2]: (phi(-1) - phi(2)) / (Phi(2) - Phi(-1)) = 0.2296.
  CHECK(mean_all(t) == Approx(0.2296).margin(0.01));
  // below(): every value equally likely.
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) ++counts[g.below(7)];
  for (int c : counts) CHECK(c == Approx(10000).margin(400));
}

TEST_CASE("strided fills and bad parameters", "[random]") {
  Generator g(5);
  FloatTensor m = FloatTensor::zeros({4, 6});
  normal_(m.t(), g);  // fills the transposed view in its own row-major order
  CHECK(sum_all(abs(m)) > 0);
  CHECK_THROWS_AS(rand({3}, g, 1.0f, 0.0f), ValueError);
  CHECK_THROWS_AS(randn({3}, g, NAN, 1.0f), ValueError);
  CHECK_THROWS_AS(randn({3}, g, 0.0f, -1.0f), ValueError);
  CHECK_THROWS_AS(randn({3}, g, 0.0f, INFINITY), ValueError);
  CHECK_THROWS_AS(trunc_normal({3}, g, 0.0f, 1.0f, 2.0f, 1.0f), ValueError);
  CHECK_THROWS_WITH(trunc_normal({3}, g, 0.0f, 1.0f, 30.0f, 31.0f), Catch::Contains("probability"));
  CHECK_THROWS_AS(g.below(0), ValueError);
}
