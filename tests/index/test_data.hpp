// A seeded synthetic vector set: a mixture of Gaussian clusters (as real embeddings cluster by
// topic), with queries drawn from the same mixture.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace scholar::test {

struct Clustered {
  size_t n, dim;
  uint64_t first_label = 1000;
  std::vector<uint64_t> labels;
  std::vector<float> values;   // n * dim
  std::vector<float> centers;  // clusters * dim
  uint64_t seed;

  Clustered(size_t n_, size_t dim_, size_t clusters, uint64_t seed_)
      : n(n_), dim(dim_), seed(seed_) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    centers.resize(clusters * dim);
    for (float& c : centers) c = 3.0f * g(rng);
    values = sample(n, rng);
    for (size_t i = 0; i < n; ++i) labels.push_back(first_label + i);
  }
  std::vector<float> sample(size_t m, std::mt19937_64& rng) const {
    std::normal_distribution<float> g(0.0f, 1.0f);
    const size_t clusters = centers.size() / dim;
    std::vector<float> out(m * dim);
    for (size_t i = 0; i < m; ++i) {
      const size_t c = rng() % clusters;
      for (size_t j = 0; j < dim; ++j) out[i * dim + j] = centers[c * dim + j] + g(rng);
    }
    return out;
  }
  std::span<const float> row(size_t i) const { return {values.data() + i * dim, dim}; }
  /// m queries, row after row (the same m queries on every call).
  std::vector<float> queries(size_t m) const {
    std::mt19937_64 rng(seed + 1);
    return sample(m, rng);
  }
  std::vector<float> query(size_t i) const {
    auto q = queries(i + 1);
    return {q.end() - static_cast<std::ptrdiff_t>(dim), q.end()};
  }
};

}  // namespace scholar::test
