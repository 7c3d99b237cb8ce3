// Helpers shared by the test programs: seeded data, comparisons that report the first mismatch,
// and the list of kernel tables this CPU can run.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "scholar/kernels/kernels.hpp"

namespace test {

/// A fresh, empty directory <tmp>/scholar_<program>_<pid>/<name> (removed first if it exists).
inline std::string temp_dir(const std::string& program, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("scholar_" + program + "_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

/// A small corpus of 60 short paragraphs (five sentences in turn, from sentence `variant` on),
/// for the training, distillation and data-parallel tests.
inline std::string tiny_corpus(int variant = 0) {
  std::string s;
  const char* lines[] = {"the cat sat on the mat", "a dog ran in the park",
                         "birds sing in the morning", "the sun rises in the east",
                         "rain falls on the green hills"};
  for (int i = 0; i < 60; ++i)
    s += std::string(lines[(i + variant) % 5]) + " number " + std::to_string(i % 7) + "\n\n";
  return s;
}

/// Every kernel table this build and CPU can run (scalar always; the others when supported).
inline std::vector<const scholar::kernels::KernelTable*> all_tables() {
  using scholar::kernels::Isa;
  std::vector<const scholar::kernels::KernelTable*> v;
  for (auto isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512_vnni})
    if (auto* t = scholar::kernels::table_for(isa)) v.push_back(t);
  return v;
}

/// Floats at an arbitrary offset (in elements) from a 64-byte boundary.
struct Buf {
  std::vector<float> storage;
  float* p;
  size_t n;
  Buf(size_t n_, size_t offset) : storage(n_ + offset + 16), n(n_) {
    auto base = reinterpret_cast<uintptr_t>(storage.data());
    const size_t skip = ((64 - base % 64) % 64) / sizeof(float);
    p = storage.data() + skip + offset;
  }
  float& operator[](size_t i) { return p[i]; }
};

inline void fill_uniform(float* p, size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  for (size_t i = 0; i < n; ++i) p[i] = d(rng);
}

/// Checks |got - want| <= atol + rtol * |want| element by element (NaN must match NaN, infinities
/// must match exactly); reports the first failure with its index.
inline void check_close(const float* got, const float* want, size_t n, double rtol, double atol,
                        const std::string& what) {
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w) || std::isnan(g))
      ok = std::isnan(w) && std::isnan(g);
    else if (std::isinf(w) || std::isinf(g))
      ok = g == w;
    else
      ok = std::fabs(g - w) <= atol + rtol * std::fabs(w);
    if (!ok) {
      if (first == n) first = i;
      ++bad;
    }
  }
  if (bad) {
    INFO(what << ": " << bad << " of " << n << " elements differ; first at " << first << ": got "
              << got[first] << ", want " << want[first]);
    CHECK(bad == 0);
  } else {
    SUCCEED();
  }
}

inline void check_close(const std::vector<float>& got, const std::vector<float>& want, double rtol,
                        double atol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  check_close(got.data(), want.data(), got.size(), rtol, atol, what);
}

}  // namespace test
