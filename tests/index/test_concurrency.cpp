// The concurrency contract of VectorIndex: searches, adds, updates and removes from several threads
// at once. CI also runs these under ThreadSanitizer (the "tsan" preset), which reports any data
// race even when the results happen to come out right.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <unordered_set>

#include "index/test_data.hpp"
#include "scholar/index/hnsw.hpp"
#include "scholar/index/index.hpp"

using namespace scholar::index;
using scholar::test::Clustered;

namespace {

// Runs writers and readers together on `index`: writer w adds its share of `data` (and removes
// every fifth label it added, and updates every seventh); readers search until the writers finish.
// Returns the labels removed.
std::unordered_set<uint64_t> hammer(VectorIndex& index, const Clustered& data, int writers,
                                    int readers, std::atomic<size_t>& bad_results) {
  std::atomic<int> writing{writers};
  std::vector<std::unordered_set<uint64_t>> removed(writers);
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      const size_t step = static_cast<size_t>(writers);
      for (size_t i = static_cast<size_t>(w); i < data.n; i += step) {
        index.add(data.labels[i], data.row(i));
        if (i % 7 == 3) index.update(data.labels[i], data.row(i));
        if (i % 5 == 0 && i >= 5 * step) {
          const uint64_t victim = data.labels[i - 5 * step];
          if (index.remove(victim)) removed[w].insert(victim);
        }
      }
      writing.fetch_sub(1);
    });
  const auto queries = data.queries(50);
  for (int r = 0; r < readers; ++r)
    threads.emplace_back([&, r] {
      size_t qi = r;
      while (writing.load() > 0) {
        std::span<const float> q(queries.data() + (qi % 50) * data.dim, data.dim);
        const auto hits = index.search(q, 5, 32, [](uint64_t l) { return l % 3 != 0; });
        for (const Neighbor& n : hits)
          if (n.label % 3 == 0 || n.label < data.first_label ||
              n.label >= data.first_label + data.n)
            bad_results.fetch_add(1);
        (void)index.contains(data.labels[qi % data.n]);
        (void)index.size();
        ++qi;
      }
    });
  for (auto& t : threads) t.join();
  std::unordered_set<uint64_t> all;
  for (auto& s : removed) all.insert(s.begin(), s.end());
  return all;
}

}  // namespace

TEST_CASE("Hnsw: concurrent adds, updates, removes and searches", "[index][concurrency]") {
  const Clustered data(1500, 16, 12, 31);
  for (bool replace : {false, true}) {
    INFO("replace_deleted=" << replace);
    Hnsw h(data.dim, Space::l2,
           {.M = 8, .ef_construction = 64, .initial_capacity = 64, .replace_deleted = replace});
    std::atomic<size_t> bad{0};
    const auto removed = hammer(h, data, 2, 2, bad);
    CHECK(bad.load() == 0);
    CHECK(h.size() == data.n - removed.size());
    for (size_t i = 0; i < data.n; ++i)
      CHECK(h.contains(data.labels[i]) != removed.count(data.labels[i]));
    // Every live vector is found as its own nearest neighbour.
    size_t found = 0, live = 0;
    for (size_t i = 0; i < data.n; ++i) {
      if (removed.count(data.labels[i])) continue;
      ++live;
      const auto r = h.search(data.row(i), 1, 64);
      found += !r.empty() && r[0].label == data.labels[i];
    }
    CHECK(double(found) / double(live) >= 0.98);
  }
}

TEST_CASE("Hnsw: batch add and batch search run on the pool", "[index][concurrency]") {
  const Clustered data(2000, 16, 20, 32);
  Hnsw h(data.dim, Space::inner_product, {.initial_capacity = 10});
  h.add_batch(data.labels, data.values);
  CHECK(h.size() == data.n);
  CHECK(h.capacity() >= data.n);
  const auto q = data.queries(64);
  const auto batch = h.search_batch(q, 10);
  for (size_t i = 0; i < 64; ++i)
    CHECK(batch[i] == h.search(std::span<const float>(q.data() + i * data.dim, data.dim), 10));
}

TEST_CASE("FlatIndex: concurrent adds, updates, removes and searches", "[index][concurrency]") {
  const Clustered data(800, 8, 8, 33);
  FlatIndex f(data.dim, Space::cosine);
  std::atomic<size_t> bad{0};
  const auto removed = hammer(f, data, 2, 2, bad);
  CHECK(bad.load() == 0);
  CHECK(f.size() == data.n - removed.size());
}
