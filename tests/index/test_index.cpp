// FlatIndex and Hnsw: recall against the exact oracle, deletions, filters, files, bad input.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <unordered_set>

#include "index/test_data.hpp"
#include "scholar/error.hpp"
#include "scholar/index/hnsw.hpp"
#include "scholar/index/index.hpp"
#include "scholar/io/file.hpp"

using namespace scholar;
using namespace scholar::index;
using scholar::test::Clustered;

namespace {

// Exact distances in double, by the definitions in index.hpp.
double true_distance(Space s, std::span<const float> q, std::span<const float> x) {
  double d = 0, qq = 0, xx = 0, qx = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    d += (double{q[i]} - x[i]) * (double{q[i]} - x[i]);
    qq += double{q[i]} * q[i];
    xx += double{x[i]} * x[i];
    qx += double{q[i]} * x[i];
  }
  if (s == Space::l2) return d;
  if (s == Space::inner_product) return 1 - qx;
  return 1 - qx / std::sqrt(qq * xx);
}

FlatIndex flat_of(const Clustered& data, Space s) {
  FlatIndex f(data.dim, s);
  for (size_t i = 0; i < data.n; ++i) f.add(data.labels[i], data.row(i));
  return f;
}

// recall@k of `got` against `want` (the exact answer), averaged over queries.
double recall(const std::vector<std::vector<Neighbor>>& got,
              const std::vector<std::vector<Neighbor>>& want) {
  size_t hit = 0, total = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    std::unordered_set<uint64_t> w;
    for (const Neighbor& n : want[i]) w.insert(n.label);
    for (const Neighbor& n : got[i]) hit += w.count(n.label);
    total += want[i].size();
  }
  return total ? double(hit) / double(total) : 1.0;
}

std::string temp_path(const std::string& name) {
  return "/tmp/scholar_test_index_" + std::to_string(::getpid()) + "_" + name;
}

}  // namespace

TEST_CASE("FlatIndex returns the exact k nearest in every space", "[index]") {
  const Clustered data(600, 20, 12, 7);
  for (Space s : {Space::l2, Space::inner_product, Space::cosine}) {
    INFO(space_name(s));
    FlatIndex f = flat_of(data, s);
    CHECK(f.size() == data.n);
    for (size_t qi = 0; qi < 10; ++qi) {
      auto q = data.query(qi);
      auto got = f.search(q, 7);
      REQUIRE(got.size() == 7);
      std::vector<std::pair<double, uint64_t>> all;
      for (size_t i = 0; i < data.n; ++i)
        all.push_back({true_distance(s, q, data.row(i)), data.labels[i]});
      std::sort(all.begin(), all.end());
      for (size_t j = 0; j < 7; ++j) {
        CHECK(got[j].label == all[j].second);
        CHECK(got[j].distance == Approx(all[j].first).margin(1e-4));
      }
    }
  }
}

TEST_CASE("FlatIndex update, remove and k beyond the size", "[index]") {
  FlatIndex f(2, Space::l2);
  f.add(1, std::vector<float>{0, 0});
  f.add(2, std::vector<float>{1, 0});
  f.add(3, std::vector<float>{5, 5});
  CHECK(f.remove(1));
  CHECK_FALSE(f.remove(1));
  CHECK_FALSE(f.contains(1));
  f.update(3, std::vector<float>{0.5f, 0});
  auto r = f.search(std::vector<float>{0.4f, 0}, 10);
  REQUIRE(r.size() == 2);
  CHECK(r[0].label == 3);
  CHECK(r[1].label == 2);
  f.add(1, std::vector<float>{0.4f, 0});  // a removed label may come back
  CHECK(f.search(std::vector<float>{0.4f, 0}, 1)[0].label == 1);
  CHECK_THROWS_AS(f.update(99, std::vector<float>{0, 0}), IndexError);
}

TEST_CASE("Hnsw recall at 10 is at least 0.95 for every space and storage", "[index]") {
  const Clustered data(4000, 32, 40, 11);
  const size_t nq = 100;
  for (Space s : {Space::l2, Space::inner_product, Space::cosine}) {
    FlatIndex f = flat_of(data, s);
    const auto want = f.search_batch(data.queries(nq), 10);
    for (Storage st : {Storage::f32, Storage::bf16, Storage::int8}) {
      for (bool keep : {true, false}) {
        if (st == Storage::f32 && !keep) continue;
        HnswParams p{.M = 16, .ef_construction = 200, .storage = st, .keep_f32 = keep};
        Hnsw h(data.dim, s, p);
        h.add_batch(data.labels, data.values);
        const auto got = h.search_batch(data.queries(nq), 10, 64);
        const double r = recall(got, want);
        INFO(space_name(s) << " " << storage_name(st) << " keep_f32=" << keep << " recall " << r
                           << " bytes/vector " << h.bytes_per_vector());
        // Without the f32 copy, int8 ranks by its own 8-bit distances.
        CHECK(r >= (st == Storage::int8 && !keep ? 0.85 : 0.95));
        CHECK(h.size() == data.n);
        if (keep || st == Storage::f32) {  // distances are exact f32 ones
          for (size_t qi = 0; qi < 5; ++qi)
            for (const Neighbor& n : got[qi])
              CHECK(n.distance ==
                    Approx(true_distance(s, data.query(qi), data.row(n.label - data.first_label)))
                        .margin(2e-4));
        }
      }
    }
  }
}

TEST_CASE("Hnsw compact storage really is smaller", "[index]") {
  const Clustered data(1000, 128, 10, 3);
  auto bytes = [&](Storage st, bool keep) {
    Hnsw h(data.dim, Space::l2, {.storage = st, .keep_f32 = keep, .initial_capacity = 1000});
    h.add_batch(data.labels, data.values);
    return h.bytes_per_vector();
  };
  const double f32 = bytes(Storage::f32, true), bf16 = bytes(Storage::bf16, false),
               int8 = bytes(Storage::int8, false);
  INFO("bytes per vector: f32 " << f32 << ", bf16 " << bf16 << ", int8 " << int8);
  CHECK(f32 - bf16 == Approx(256).margin(8));
  CHECK(f32 - int8 == Approx(384 - 8).margin(8));
  CHECK(bytes(Storage::int8, true) > f32);
}

TEST_CASE("Hnsw deletions: tombstones never return, slots are reused, compact frees", "[index]") {
  const Clustered data(3000, 24, 30, 5);
  for (bool replace : {false, true}) {
    INFO("replace_deleted=" << replace);
    Hnsw h(data.dim, Space::l2, {.replace_deleted = replace});
    h.add_batch(data.labels, data.values);
    std::mt19937 rng(9);
    std::set<uint64_t> gone;
    while (gone.size() < data.n * 3 / 10) gone.insert(data.labels[rng() % data.n]);
    for (uint64_t l : gone) CHECK(h.remove(l));
    CHECK(h.deleted_count() == gone.size());
    CHECK(h.size() == data.n - gone.size());
    // Replacements: new labels at the positions of the deleted ones, slightly moved.
    FlatIndex f(data.dim, Space::l2);
    for (size_t i = 0; i < data.n; ++i)
      if (!gone.count(data.labels[i])) f.add(data.labels[i], data.row(i));
    size_t j = 0;
    for (uint64_t l : gone) {
      std::vector<float> v(data.row(l - data.first_label).begin(),
                           data.row(l - data.first_label).end());
      v[j % data.dim] += 0.01f;
      h.add(1000000 + j, v);
      f.add(1000000 + j, v);
      ++j;
    }
    CHECK(h.deleted_count() == (replace ? 0 : gone.size()));
    CHECK(h.slot_count() == (replace ? data.n : data.n + gone.size()));
    const auto want = f.search_batch(data.queries(100), 10);
    auto got = h.search_batch(data.queries(100), 10, 64);
    for (const auto& r : got)
      for (const Neighbor& n : r) CHECK(!gone.count(n.label));
    CHECK(recall(got, want) >= 0.95);
    const size_t before = h.memory_usage();
    h.compact();
    CHECK(h.deleted_count() == 0);
    CHECK(h.size() == data.n);
    CHECK(h.slot_count() == data.n);
    if (!replace) CHECK(h.memory_usage() < before);
    got = h.search_batch(data.queries(100), 10, 64);
    CHECK(recall(got, want) >= 0.95);
    for (uint64_t l : gone) CHECK_FALSE(h.contains(l));
  }
}

TEST_CASE("Hnsw with k beyond the live count returns what exists", "[index]") {
  Hnsw h(3, Space::l2);
  CHECK(h.search(std::vector<float>{0, 0, 0}, 5).empty());
  h.add(1, std::vector<float>{1, 0, 0});
  h.add(2, std::vector<float>{0, 1, 0});
  h.add(3, std::vector<float>{0, 0, 1});
  h.remove(2);
  auto r = h.search(std::vector<float>{0, 0, 0}, 10, 10);
  REQUIRE(r.size() == 2);
  CHECK(r[0].label + r[1].label == 4);
}

TEST_CASE("Hnsw filters: every result passes and recall holds at 1, 10 and 50 percent", "[index]") {
  const Clustered data(5000, 24, 50, 21);
  FlatIndex f = flat_of(data, Space::l2);
  // Recall of a filtered search against exact filtered search; every result must pass. The filter
  // is unrelated to the clusters: a hash of the label.
  auto filtered_recall = [&](const Hnsw& h, uint64_t percent) {
    Filter filter = [percent](uint64_t l) {
      return (l * 0x9E3779B97F4A7C15ull >> 40) % 100 < percent;
    };
    const auto want = f.search_batch(data.queries(100), 10, 0, filter);
    const auto got = h.search_batch(data.queries(100), 10, 64, filter);
    for (const auto& r : got)
      for (const Neighbor& n : r) CHECK(filter(n.label));
    return recall(got, want);
  };
  Hnsw h(data.dim, Space::l2);
  h.add_batch(data.labels, data.values);
  for (uint64_t percent : {1, 10, 50}) {
    const double r = filtered_recall(h, percent);
    INFO(percent << "% recall " << r);
    CHECK(r >= 0.95);
  }
  // With the exact fallback off, the graph walk alone still returns only passing labels, and at 10%
  // keeps its recall.
  Hnsw walk(data.dim, Space::l2, {.exact_search_below = 0});
  walk.add_batch(data.labels, data.values);
  (void)filtered_recall(walk, 1);
  CHECK(filtered_recall(walk, 10) >= 0.95);
}

TEST_CASE("Hnsw save and load keep results and every parameter", "[index]") {
  const Clustered data(1500, 16, 15, 2);
  for (Storage st : {Storage::f32, Storage::bf16, Storage::int8}) {
    INFO(storage_name(st));
    HnswParams p{.M = 12,
                 .ef_construction = 100,
                 .ef_search = 40,
                 .seed = 77,
                 .storage = st,
                 .keep_f32 = st == Storage::bf16,
                 .initial_capacity = 2000,
                 .allow_growth = false,
                 .replace_deleted = true,
                 .exact_search_below = 0.05};
    Hnsw h(data.dim, Space::cosine, p);
    h.add_batch(data.labels, data.values);
    for (size_t i = 0; i < 100; ++i) h.remove(data.labels[i * 7]);
    const std::string path = temp_path("rt.hnsw");
    h.save(path);
    const auto want = h.search_batch(data.queries(50), 10);
    for (bool mm : {false, true}) {
      INFO("mmap=" << mm);
      Hnsw g = Hnsw::load(path, {.mmap = mm});
      CHECK(g.read_only() == mm);
      const HnswParams& q = g.params();
      CHECK(q.M == p.M);
      CHECK(q.ef_construction == p.ef_construction);
      CHECK(q.ef_search == p.ef_search);
      CHECK(q.seed == p.seed);
      CHECK(q.storage == p.storage);
      CHECK(q.keep_f32 == p.keep_f32);
      CHECK(q.initial_capacity == p.initial_capacity);
      CHECK(q.allow_growth == p.allow_growth);
      CHECK(q.replace_deleted == p.replace_deleted);
      CHECK(q.exact_search_below == p.exact_search_below);
      CHECK(g.space() == Space::cosine);
      CHECK(g.size() == h.size());
      CHECK(g.deleted_count() == 100);
      CHECK(g.search_batch(data.queries(50), 10) == want);
      if (mm) {
        CHECK_THROWS_AS(g.add(1 << 30, data.row(0)), Error);
        CHECK_THROWS_AS(g.remove(data.labels[1]), Error);
      } else {
        g.add(1u << 30, data.row(0));  // reuses a deleted slot
        CHECK(g.deleted_count() == 99);
      }
    }
    std::remove(path.c_str());
  }
}

TEST_CASE("FlatIndex save and load", "[index]") {
  const Clustered data(300, 8, 5, 4);
  FlatIndex f = flat_of(data, Space::inner_product);
  const std::string path = temp_path("flat.idx");
  f.save(path);
  FlatIndex g = FlatIndex::load(path);
  CHECK(g.space() == Space::inner_product);
  CHECK(g.labels() == f.labels());
  CHECK(g.search_batch(data.queries(20), 5) == f.search_batch(data.queries(20), 5));
  std::string bytes = io::read_file(path);
  bytes[bytes.size() / 2] ^= 1;
  io::write_file_atomic(path, bytes);
  CHECK_THROWS_WITH(FlatIndex::load(path), Catch::Contains("checksum"));
  CHECK_THROWS_AS(Hnsw::load(path), FormatError);  // a flat file is not an Hnsw file
  std::remove(path.c_str());
}

TEST_CASE("Hnsw files that are truncated, corrupt or hostile are FormatErrors", "[index]") {
  const Clustered data(200, 8, 4, 8);
  Hnsw h(data.dim, Space::l2, {.M = 4});
  h.add_batch(data.labels, data.values);
  const std::string path = temp_path("bad.hnsw");
  h.save(path);
  const std::string good = io::read_file(path);
  auto load_bytes = [&](const std::string& b, bool verify = true) {
    io::write_file_atomic(path, b);
    return Hnsw::load(path, {.verify_checksum = verify});
  };
  CHECK_NOTHROW(load_bytes(good));
  // Every truncation point.
  for (size_t cut = 0; cut < good.size(); cut += std::max<size_t>(1, good.size() / 97))
    CHECK_THROWS_AS(load_bytes(good.substr(0, cut)), FormatError);
  // Any flipped byte fails the checksum (or an earlier check).
  for (size_t at = 0; at < good.size(); at += good.size() / 31) {
    std::string b = good;
    b[at] ^= 0x40;
    CHECK_THROWS_AS(load_bytes(b), FormatError);
  }
  // With the checksum off, the structural checks still hold: a huge count, a link out of range.
  const size_t header = 16;  // magic, version, kind
  const size_t count_at = header + 8 + 8 * 7;
  {
    std::string b = good;
    const uint64_t huge = 1ull << 40;
    std::memcpy(b.data() + count_at, &huge, 8);
    CHECK_THROWS_WITH(load_bytes(b, false), Catch::Contains("more than the file"));
  }
  {
    std::string b = good;
    const size_t level0_at = (header + 104 + 200 * 10 + 63) / 64 * 64;
    const uint32_t bad = 100000;
    std::memcpy(b.data() + level0_at + 4, &bad, 4);  // slot 0's first link
    CHECK_THROWS_WITH(load_bytes(b, false), Catch::Contains("links to 100000"));
  }
  {
    std::string b = good;
    b[8] = 9;  // version
    CHECK_THROWS_WITH(load_bytes(b), Catch::Contains("version 9"));
  }
  {
    std::string b = good;
    b[0] = 'X';
    CHECK_THROWS_WITH(load_bytes(b), Catch::Contains("bad magic"));
  }
  std::remove(path.c_str());
  CHECK_THROWS_AS(Hnsw::load(path), IoError);
}

TEST_CASE("Hnsw rejects bad input with a clear error", "[index]") {
  Hnsw h(4, Space::cosine, {.initial_capacity = 2, .allow_growth = false});
  const std::vector<float> v{1, 2, 3, 4};
  CHECK_THROWS_AS(h.add(1, std::vector<float>{1, 2, 3}), ShapeError);
  CHECK_THROWS_AS(h.add(1, std::vector<float>{1, 2, NAN, 4}), ValueError);
  CHECK_THROWS_AS(h.add(1, std::vector<float>{0, 0, 0, 0}), ValueError);
  h.add(1, v);
  CHECK_THROWS_WITH(h.add(1, v), Catch::Contains("already in the index"));
  h.add(2, v);
  CHECK_THROWS_WITH(h.add(3, v), Catch::Contains("full"));
  CHECK_THROWS_AS(h.update(7, v), IndexError);
  CHECK_THROWS_AS(h.search(v, 0), ValueError);
  CHECK_THROWS_WITH(h.search(v, 5, 3), Catch::Contains("ef (3) must be at least k (5)"));
  CHECK_THROWS_AS(h.search(std::vector<float>{1, 2}, 1), ShapeError);
  CHECK_THROWS_AS(h.search(std::vector<float>{1, INFINITY, 0, 0}, 1), ValueError);
  CHECK_THROWS_AS(Hnsw(0, Space::l2), ValueError);
  CHECK_THROWS_AS(Hnsw(4, Space::l2, {.M = 1}), ValueError);
  CHECK_THROWS_AS(Hnsw(4, Space::l2, {.exact_search_below = 2}), ValueError);
  const std::vector<uint64_t> dup{5, 5};
  Hnsw g(4, Space::l2);
  CHECK_THROWS_WITH(g.add_batch(dup, std::vector<float>(8, 1.0f)), Catch::Contains("twice"));
  CHECK(g.size() == 0);
}

TEST_CASE("Hnsw update moves a vector", "[index]") {
  const Clustered data(1000, 16, 10, 6);
  Hnsw h(data.dim, Space::l2);
  h.add_batch(data.labels, data.values);
  const auto far = data.row(999);
  h.update(data.labels[0], far);
  auto r = h.search(far, 2);
  std::set<uint64_t> got{r[0].label, r[1].label};
  CHECK(got == std::set<uint64_t>{data.labels[0], data.labels[999]});
  CHECK(r[0].distance == Approx(0).margin(1e-6));
}

TEST_CASE("Hnsw levels depend on the seed and label, not on insertion order", "[index]") {
  const Clustered data(800, 8, 8, 1);
  Hnsw a(data.dim, Space::l2), b(data.dim, Space::l2);
  for (size_t i = 0; i < data.n; ++i) a.add(data.labels[i], data.row(i));
  for (size_t i = data.n; i-- > 0;) b.add(data.labels[i], data.row(i));
  // Same levels means the same upper-level memory.
  CHECK(a.memory_usage() == b.memory_usage());
  // One thread, same order: the same graph, so the same answers.
  Hnsw c(data.dim, Space::l2);
  for (size_t i = 0; i < data.n; ++i) c.add(data.labels[i], data.row(i));
  CHECK(a.search_batch(data.queries(30), 5) == c.search_batch(data.queries(30), 5));
}
