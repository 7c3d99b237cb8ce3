// scholar/tensor/random.hpp: a seeded, counter-based random number generator.
//
// Generator is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"): the
// key is the seed, and each block of four 32-bit outputs is a pure function of (seed, counter).
// Normal variates use Box-Muller with scholar's own log/sin/cos written in basic IEEE arithmetic,
// so a seed gives the same numbers on every run, compiler and platform. The state is two integers
// plus a position, and state()/set_state() restore it exactly (checkpoints rely on this).
//
//   Generator gen(42);
//   auto w = randn({768, 768}, gen, 0.0f, 0.02f);
//   auto u = rand({10}, gen);                       // uniform in [0, 1)
//
// Thread-safety: a Generator is not shared between threads; give each thread its own (for example
// seeded with seed + thread index).
#pragma once

#include <cstdint>

#include "scholar/tensor/tensor.hpp"

namespace scholar {

/// Philox4x32-10 stream of random bits and the distributions scholar uses.
class Generator {
 public:
  /// Complete state: seed, index of the next Philox block, and how many of the current block's four
  /// words were used (0..4; 4 means the next draw starts a new block).
  struct State {
    uint64_t seed = 0;
    uint64_t counter = 0;
    uint32_t used = 4;
    friend bool operator==(const State&, const State&) = default;
  };

  explicit Generator(uint64_t seed = 0) { state_.seed = seed; }

  State state() const noexcept { return state_; }
  /// Restores a state returned by state(); throws ValueError if `used` is not in 0..4.
  void set_state(const State& s);
  uint64_t seed() const noexcept { return state_.seed; }

  /// Next 32 random bits.
  uint32_t next_u32();
  /// Next 64 random bits (two words).
  uint64_t next_u64();
  /// Uniform in [0, 1) with 24 random bits (every value is a multiple of 2^-24).
  float uniform();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform_double();
  /// Uniform integer in [0, n) without modulo bias (n >= 1).
  uint64_t below(uint64_t n);
  /// One standard normal variate (consumes four 32-bit words).
  double normal();
  /// Two independent standard normal variates from four 32-bit words.
  void normal_pair(double& z0, double& z1);

 private:
  void refill();
  State state_;
  uint32_t block_[4] = {};
};

/// The Philox4x32-10 block for a 128-bit counter and a 64-bit key (as 32-bit words, lowest first).
/// Generator uses counter = (block index low, high, 0, 0) and key = (seed low, high).
void philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/// Fills t with uniform values in [lo, hi). Throws ValueError if lo or hi is not finite or lo > hi.
void uniform_(const Tensor<float>& t, Generator& gen, float lo = 0.0f, float hi = 1.0f);
/// Fills t with normal values of the given mean and standard deviation (std >= 0, both finite).
void normal_(const Tensor<float>& t, Generator& gen, float mean = 0.0f, float std = 1.0f);
/// Fills t with normal values (mean, std) redrawn until they fall inside [a, b] (a < b, and the
/// interval must hold at least 1e-6 of the probability mass, else ValueError).
void trunc_normal_(const Tensor<float>& t, Generator& gen, float mean = 0.0f, float std = 1.0f,
                   float a = -2.0f, float b = 2.0f);

/// A fresh tensor of uniform values in [lo, hi).
Tensor<float> rand(const Shape& shape, Generator& gen, float lo = 0.0f, float hi = 1.0f);
/// A fresh tensor of normal values.
Tensor<float> randn(const Shape& shape, Generator& gen, float mean = 0.0f, float std = 1.0f);
/// A fresh tensor of truncated normal values.
Tensor<float> trunc_normal(const Shape& shape, Generator& gen, float mean = 0.0f, float std = 1.0f,
                           float a = -2.0f, float b = 2.0f);

namespace detail {
/// Natural log, sine and cosine from +, -, *, / only (bit-identical on every IEEE-754 platform).
/// log: x > 0 finite; sincos_2pi: angle = 2 pi t for t in [0, 1).
double portable_log(double x);
void portable_sincos_2pi(double t, double& s, double& c);
}  // namespace detail

}  // namespace scholar
