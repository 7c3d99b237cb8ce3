// Philox4x32-10 and portable distributions. Compiled with -ffp-contract=off: every operation below
// rounds exactly as IEEE-754 says, so results are bit-identical across compilers and platforms.
#include "scholar/tensor/random.hpp"

#include <cmath>

namespace scholar {

void philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt 3)
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t{kM0} * c0, p1 = uint64_t{kM1} * c2;
    const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void Generator::set_state(const State& s) {
  if (s.used > 4) fail<ValueError>("Generator::set_state: used must be in 0..4, got ", s.used);
  state_ = s;
  if (s.used < 4) {
    // The current block is the one before `counter`.
    const uint64_t c = s.counter - 1;
    const uint32_t ctr[4] = {static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0, 0};
    const uint32_t key[2] = {static_cast<uint32_t>(s.seed), static_cast<uint32_t>(s.seed >> 32)};
    philox4x32(ctr, key, block_);
  }
}

void Generator::refill() {
  const uint64_t c = state_.counter++;
  const uint32_t ctr[4] = {static_cast<uint32_t>(c), static_cast<uint32_t>(c >> 32), 0, 0};
  const uint32_t key[2] = {static_cast<uint32_t>(state_.seed),
                           static_cast<uint32_t>(state_.seed >> 32)};
  philox4x32(ctr, key, block_);
  state_.used = 0;
}

uint32_t Generator::next_u32() {
  if (state_.used >= 4) refill();
  return block_[state_.used++];
}

uint64_t Generator::next_u64() {
  const uint64_t lo = next_u32();
  return (uint64_t{next_u32()} << 32) | lo;
}

float Generator::uniform() {
  return static_cast<float>(next_u32() >> 8) * 0x1.0p-24f;
}

double Generator::uniform_double() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

uint64_t Generator::below(uint64_t n) {
  if (n == 0) fail<ValueError>("Generator::below: n must be >= 1");
  // Rejection of the top partial range keeps every value equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    const uint64_t v = next_u64();
    if (v < limit) return v % n;
  }
}

namespace detail {

double portable_log(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // x = m 2^e, m in [0.5, 1): exact
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1), |s| < 0.172.
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double series = 1.0 / 23.0;
  for (int k = 21; k >= 1; k -= 2) series = 1.0 / k + s2 * series;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 split so e * kLn2Hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double de = static_cast<double>(e);
  return de * kLn2Hi + (de * kLn2Lo + 2.0 * s * series);
}

void portable_sincos_2pi(double t, double& s, double& c) {
  const double x = t * 4.0;  // quadrant units: exact
  const double q = std::floor(x);
  const double f = x - q;  // position within the quadrant, [0, 1): exact
  const bool mirror = f > 0.5;
  const double g = mirror ? 1.0 - f : f;         // exact (Sterbenz)
  const double th = g * 1.57079632679489661923;  // angle in [0, pi/4]
  const double th2 = th * th;
  // Taylor series: sin th = th S(th^2), cos th = C(th^2), with terms to th^17 and th^18; the
  // remainder is below 1e-19 on [0, pi/4]. Coefficients (-1)^j / (2j+1)! and (-1)^j / (2j)!.
  static constexpr double kSin[] = {1.0,
                                    -1.0 / 6.0,
                                    1.0 / 120.0,
                                    -1.0 / 5040.0,
                                    1.0 / 362880.0,
                                    -1.0 / 39916800.0,
                                    1.0 / 6227020800.0,
                                    -1.0 / 1307674368000.0,
                                    1.0 / 355687428096000.0};
  static constexpr double kCos[] = {1.0,
                                    -1.0 / 2.0,
                                    1.0 / 24.0,
                                    -1.0 / 720.0,
                                    1.0 / 40320.0,
                                    -1.0 / 3628800.0,
                                    1.0 / 479001600.0,
                                    -1.0 / 87178291200.0,
                                    1.0 / 20922789888000.0,
                                    -1.0 / 6402373705728000.0};
  double ps = kSin[8];
  for (int j = 7; j >= 0; --j) ps = kSin[j] + th2 * ps;
  double pc = kCos[9];
  for (int j = 8; j >= 0; --j) pc = kCos[j] + th2 * pc;
  const double sn = th * ps, cs = pc;
  double sp = mirror ? cs : sn, cp = mirror ? sn : cs;  // sin and cos of the in-quadrant angle
  switch (static_cast<int>(q) & 3) {
    case 0:
      s = sp;
      c = cp;
      break;
    case 1:
      s = cp;
      c = -sp;
      break;
    case 2:
      s = -sp;
      c = -cp;
      break;
    default:
      s = -cp;
      c = sp;
      break;
  }
}

}  // namespace detail

void Generator::normal_pair(double& z0, double& z1) {
  const double u1 = 1.0 - uniform_double();  // (0, 1]: log is finite
  const double u2 = uniform_double();        // [0, 1)
  const double r = std::sqrt(-2.0 * detail::portable_log(u1));
  double s, c;
  detail::portable_sincos_2pi(u2, s, c);
  z0 = r * c;
  z1 = r * s;
}

double Generator::normal() {
  double z0, z1;
  normal_pair(z0, z1);
  return z0;
}

namespace {

void check_finite(const char* op, const char* name, float v) {
  if (!std::isfinite(v)) fail<ValueError>(op, ": ", name, " must be finite, got ", v);
}

// Fills t in row-major order: directly when contiguous, through a temporary otherwise.
template <class F>
void fill_rowmajor(const Tensor<float>& t, F&& next) {
  if (!t.defined()) fail<ValueError>("random fill: tensor is undefined");
  Tensor<float> dst = t.is_contiguous() ? t : Tensor<float>::empty(t.shape());
  float* p = dst.data();
  const int64_t n = dst.numel();
  next(p, n);
  if (!t.is_contiguous()) t.copy_from(dst);
}

}  // namespace

void uniform_(const Tensor<float>& t, Generator& gen, float lo, float hi) {
  check_finite("uniform_", "lo", lo);
  check_finite("uniform_", "hi", hi);
  if (lo > hi) fail<ValueError>("uniform_: lo (", lo, ") must not exceed hi (", hi, ")");
  fill_rowmajor(t, [&](float* p, int64_t n) {
    const float width = hi - lo;
    for (int64_t i = 0; i < n; ++i) {
      float v = lo + width * gen.uniform();
      if (v >= hi && hi > lo) v = std::nextafter(hi, lo);
      p[i] = v;
    }
  });
}

void normal_(const Tensor<float>& t, Generator& gen, float mean, float std) {
  check_finite("normal_", "mean", mean);
  check_finite("normal_", "std", std);
  if (std < 0) fail<ValueError>("normal_: std must be >= 0, got ", std);
  fill_rowmajor(t, [&](float* p, int64_t n) {
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
      double z0, z1;
      gen.normal_pair(z0, z1);
      p[i] = static_cast<float>(mean + std * z0);
      p[i + 1] = static_cast<float>(mean + std * z1);
    }
    if (i < n) p[i] = static_cast<float>(mean + std * gen.normal());
  });
}

void trunc_normal_(const Tensor<float>& t, Generator& gen, float mean, float std, float a,
                   float b) {
  check_finite("trunc_normal_", "mean", mean);
  check_finite("trunc_normal_", "std", std);
  check_finite("trunc_normal_", "a", a);
  check_finite("trunc_normal_", "b", b);
  if (std < 0) fail<ValueError>("trunc_normal_: std must be >= 0, got ", std);
  if (!(a < b)) fail<ValueError>("trunc_normal_: need a < b, got a = ", a, ", b = ", b);
  if (std == 0) {
    if (mean < a || mean > b)
      fail<ValueError>("trunc_normal_: std = 0 and mean ", mean, " outside [", a, ", ", b, "]");
    return fill_rowmajor(t, [&](float* p, int64_t n) { std::fill_n(p, n, mean); });
  }
  const double za = (double{a} - mean) / std, zb = (double{b} - mean) / std;
  const double mass = 0.5 * (std::erf(zb / std::sqrt(2.0)) - std::erf(za / std::sqrt(2.0)));
  if (mass < 1e-6)
    fail<ValueError>("trunc_normal_: [", a, ", ", b, "] holds only ", mass,
                     " of the probability of N(", mean, ", ", std, "^2); rejection would not end");
  fill_rowmajor(t, [&](float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      for (;;) {
        const float v = static_cast<float>(mean + std * gen.normal());
        if (v >= a && v <= b) {
          p[i] = v;
          break;
        }
      }
    }
  });
}

Tensor<float> rand(const Shape& shape, Generator& gen, float lo, float hi) {
  Tensor<float> t = Tensor<float>::empty(shape);
  uniform_(t, gen, lo, hi);
  return t;
}

Tensor<float> randn(const Shape& shape, Generator& gen, float mean, float std) {
  Tensor<float> t = Tensor<float>::empty(shape);
  normal_(t, gen, mean, std);
  return t;
}

Tensor<float> trunc_normal(const Shape& shape, Generator& gen, float mean, float std, float a,
                           float b) {
  Tensor<float> t = Tensor<float>::empty(shape);
  trunc_normal_(t, gen, mean, std, a, b);
  return t;
}

}  // namespace scholar
