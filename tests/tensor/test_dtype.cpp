// bf16 and f16 conversions against independent oracles: the exact value of every 16-bit pattern
// computed with ldexp, and round-to-nearest-even found by searching the sorted list of all
// representable values in double precision.
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "scholar/tensor/dtype.hpp"

using namespace scholar;

namespace {

double f16_value(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(m, -24);
  else
    v = std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

double bf16_value(uint16_t b) {
  const int s = b >> 15, e = (b >> 7) & 255, m = b & 127;
  double v;
  if (e == 255)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(m, -133);
  else
    v = std::ldexp(128 + m, e - 134);
  return s ? -v : v;
}

// Nearest representable value with ties to even (even = last mantissa bit 0), by search over the
// non-negative finite patterns of a format sorted by value; `overflow` is the smallest magnitude
// that rounds to infinity.
struct Oracle {
  std::vector<std::pair<double, uint16_t>> finite;  // (value, bits), ascending, non-negative
  double overflow;
  uint16_t inf_bits;

  uint16_t round(float x) const {
    const bool neg = std::signbit(x);
    const double a = std::fabs(static_cast<double>(x));
    uint16_t bits;
    if (a >= overflow) {
      bits = inf_bits;
    } else {
      auto it = std::lower_bound(finite.begin(), finite.end(), std::make_pair(a, uint16_t{0}));
      if (it == finite.end()) --it;
      if (it->first == a) {
        bits = it->second;
      } else {
        const auto hi = *it, lo = *(it - 1);
        const double dl = a - lo.first, dh = hi.first - a;
        if (dl < dh)
          bits = lo.second;
        else if (dh < dl)
          bits = hi.second;
        else
          bits = (lo.second & 1) == 0 ? lo.second : hi.second;
      }
    }
    return neg ? static_cast<uint16_t>(bits | 0x8000) : bits;
  }
};

Oracle make_oracle(double (*value)(uint16_t), uint16_t inf_bits) {
  Oracle o;
  o.inf_bits = inf_bits;
  for (uint32_t b = 0; b < inf_bits; ++b)
    o.finite.emplace_back(value(static_cast<uint16_t>(b)), static_cast<uint16_t>(b));
  // Halfway between the largest finite value and the next power of the exponent rounds to inf.
  const double max_finite = o.finite.back().first;
  const double ulp = max_finite - o.finite[o.finite.size() - 2].first;
  o.overflow = max_finite + ulp / 2;
  return o;
}

std::vector<float> test_floats() {
  std::vector<float> v;
  std::mt19937 rng(5);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 400000; ++i) {
    const uint32_t u = bits(rng);
    v.push_back(std::bit_cast<float>(u));
  }
  // Every exponent, with mantissas at and around the rounding points of both formats.
  for (uint32_t e = 0; e < 255; ++e)
    for (uint32_t m : {0u, 1u, 0x0fffu, 0x1000u, 0x1001u, 0x2000u, 0x3000u, 0x7fffu, 0x8000u,
                       0x8001u, 0x18000u, 0x7fffffu, 0x7ff000u})
      for (uint32_t s : {0u, 1u}) v.push_back(std::bit_cast<float>((s << 31) | (e << 23) | m));
  v.push_back(std::numeric_limits<float>::infinity());
  v.push_back(-std::numeric_limits<float>::infinity());
  return v;
}

}  // namespace

TEST_CASE("f16 to float is exact for all 65536 patterns", "[dtype]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const double want = f16_value(static_cast<uint16_t>(b));
    const float got = static_cast<float>(f16::from_bits(static_cast<uint16_t>(b)));
    if (std::isnan(want))
      REQUIRE(std::isnan(got));
    else
      REQUIRE(static_cast<double>(got) == want);
  }
}

TEST_CASE("bf16 to float is exact for all 65536 patterns", "[dtype]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const double want = bf16_value(static_cast<uint16_t>(b));
    const float got = static_cast<float>(bf16::from_bits(static_cast<uint16_t>(b)));
    if (std::isnan(want))
      REQUIRE(std::isnan(got));
    else
      REQUIRE(static_cast<double>(got) == want);
  }
}

TEST_CASE("float to f16 and bf16 round to nearest, ties to even", "[dtype]") {
  const Oracle h = make_oracle(f16_value, 0x7c00);
  const Oracle b = make_oracle(bf16_value, 0x7f80);
  size_t checked = 0;
  for (float x : test_floats()) {
    if (std::isnan(x)) {
      REQUIRE(std::isnan(static_cast<float>(f16(x))));
      REQUIRE(std::isnan(static_cast<float>(bf16(x))));
      continue;
    }
    INFO("x = " << x << " (bits " << std::bit_cast<uint32_t>(x) << ")");
    REQUIRE(f16(x).bits == h.round(x));
    REQUIRE(bf16(x).bits == b.round(x));
    ++checked;
  }
  CHECK(checked > 400000);
}

TEST_CASE("round trips through 16-bit formats are the identity on representable values",
          "[dtype]") {
  for (uint32_t v = 0; v < 65536; ++v) {
    const auto bits = static_cast<uint16_t>(v);
    const float fh = static_cast<float>(f16::from_bits(bits));
    if (!std::isnan(fh)) REQUIRE(f16(fh).bits == bits);
    const float fb = static_cast<float>(bf16::from_bits(bits));
    if (!std::isnan(fb)) REQUIRE(bf16(fb).bits == bits);
  }
  CHECK(dtype_name(DType::bf16) == "bf16");
  CHECK(dtype_size(DType::f16) == 2);
  CHECK(dtype_of<int32_t>() == DType::i32);
}
