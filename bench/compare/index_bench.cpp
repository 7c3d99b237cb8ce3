// HNSW engines side by side in one process: builds scholar::index::Hnsw, hnswlib's HierarchicalNSW
// and FAISS IndexHNSWFlat (M = 16, ef_construction = 200, 2 threads) one after another on the same
// data, then measures single-thread queries/s and recall@10 over a sweep of ef, the engines taking
// turns pass by pass. Prints one JSON object. bench/compare/index.py runs it in rounds (the build
// order alternating) and makes the table and the plot.
//
//   index_bench [--engines scholar,hnswlib,faiss] --data a|b [--cache DIR] [--efs 10,16,...]
//               [--index-file PREFIX]   (load the indexes from PREFIX.<engine> if there, else save)
//
// Datasets (seeded, identical for every engine):
//   a: 200,000 x 128 floats from a mixture of 1,000 Gaussian clusters, L2, 1,000 queries
//   b: 100,000 x 384 unit vectors from 500 clusters, cosine (inner product of unit vectors)
// Memory is what each build leaves allocated (see heap_bytes).
#include <malloc.h>
#include <omp.h>

#include <faiss/IndexHNSW.h>
#include <faiss/index_io.h>
#include <hnswlib/hnswlib.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "scholar/index/hnsw.hpp"
#include "scholar/parallel.hpp"

namespace {

struct Dataset {
  size_t n, dim, nq;
  bool cosine;
  std::vector<float> x, q;
};

Dataset make(char which) {
  Dataset d;
  const size_t clusters = which == 'a' ? 1000 : 500;
  d.n = which == 'a' ? 200000 : 100000;
  d.dim = which == 'a' ? 128 : 384;
  d.nq = 1000;
  d.cosine = which == 'b';
  std::mt19937_64 rng(which == 'a' ? 42 : 43);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> centers(clusters * d.dim);
  for (float& c : centers) c = g(rng);
  // Points spread around their centre about as far as centres lie from each other, as topics in
  // real embeddings overlap.
  auto sample = [&](size_t m) {
    std::vector<float> out(m * d.dim);
    for (size_t i = 0; i < m; ++i) {
      const size_t c = rng() % clusters;
      double norm = 0;
      for (size_t j = 0; j < d.dim; ++j) {
        const float v = centers[c * d.dim + j] + 0.7f * g(rng);
        out[i * d.dim + j] = v;
        norm += double{v} * v;
      }
      if (d.cosine)
        for (size_t j = 0; j < d.dim; ++j) out[i * d.dim + j] /= float(std::sqrt(norm));
    }
    return out;
  };
  d.x = sample(d.n);
  d.q = sample(d.nq);
  return d;
}

// Exact top 10 of every query, cached on disk (computed with scholar's FlatIndex, 2 threads).
std::vector<std::vector<uint64_t>> ground_truth(const Dataset& d, const std::string& cache) {
  std::vector<std::vector<uint64_t>> gt(d.nq, std::vector<uint64_t>(10));
  std::ifstream in(cache, std::ios::binary);
  if (in) {
    for (auto& r : gt) in.read(reinterpret_cast<char*>(r.data()), 80);
    if (in) return gt;
  }
  scholar::index::FlatIndex flat(
      d.dim, d.cosine ? scholar::index::Space::inner_product : scholar::index::Space::l2);
  for (size_t i = 0; i < d.n; ++i)
    flat.add(i, std::span<const float>(d.x.data() + i * d.dim, d.dim));
  const auto res = flat.search_batch(d.q, 10);
  for (size_t i = 0; i < d.nq; ++i)
    for (size_t j = 0; j < 10; ++j) gt[i][j] = res[i][j].label;
  std::ofstream out(cache + ".tmp", std::ios::binary);
  for (auto& r : gt) out.write(reinterpret_cast<const char*>(r.data()), 80);
  out.close();
  std::rename((cache + ".tmp").c_str(), cache.c_str());
  return gt;
}

// Bytes allocated with malloc and not yet freed, over all arenas (glibc's mallinfo2): the growth
// across a build is the memory the index keeps, whatever it touched and freed on the way.
size_t heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

std::vector<std::string> split(const std::string& v) {
  std::vector<std::string> out;
  for (size_t p = 0; p <= v.size();) {
    size_t e = v.find(',', p);
    if (e == std::string::npos) e = v.size();
    if (e > p) out.push_back(v.substr(p, e - p));
    p = e + 1;
  }
  return out;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// An engine: build(x), then search(q, ef) -> 10 labels.
struct Engine {
  std::string file;  // --index-file: load the index from here if it exists, else build and save
  virtual ~Engine() = default;
  virtual void build(const Dataset& d) = 0;
  virtual void search(const float* q, size_t ef, uint64_t* out) = 0;
  // All nq queries (row after row), 10 labels each into out: one call per query, as an application
  // answering requests would; FAISS overrides it with one batched call, its fastest way.
  virtual void search_all(const float* q, size_t nq, size_t dim, size_t ef, uint64_t* out) {
    for (size_t i = 0; i < nq; ++i) search(q + i * dim, ef, out + i * 10);
  }
};

struct Scholar : Engine {
  std::unique_ptr<scholar::index::Hnsw> h;
  void build(const Dataset& d) override {
    if (!file.empty() && std::ifstream(file)) {
      h = std::make_unique<scholar::index::Hnsw>(scholar::index::Hnsw::load(file));
      return;
    }
    h = std::make_unique<scholar::index::Hnsw>(
        d.dim, d.cosine ? scholar::index::Space::cosine : scholar::index::Space::l2,
        scholar::index::HnswParams{.M = 16, .ef_construction = 200, .initial_capacity = d.n});
    std::vector<uint64_t> labels(d.n);
    for (size_t i = 0; i < d.n; ++i) labels[i] = i;
    h->add_batch(labels, d.x);
    if (!file.empty()) h->save(file);
  }
  void search(const float* q, size_t ef, uint64_t* out) override {
    const auto r = h->search(std::span<const float>(q, h->dim()), 10, ef);
    for (size_t i = 0; i < 10; ++i) out[i] = i < r.size() ? r[i].label : ~0ull;
  }
};

struct Hnswlib : Engine {
  std::unique_ptr<hnswlib::SpaceInterface<float>> space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> h;
  void build(const Dataset& d) override {
    if (d.cosine)
      space = std::make_unique<hnswlib::InnerProductSpace>(d.dim);
    else
      space = std::make_unique<hnswlib::L2Space>(d.dim);
    if (!file.empty() && std::ifstream(file)) {
      h = std::make_unique<hnswlib::HierarchicalNSW<float>>(space.get(), file);
      return;
    }
    h = std::make_unique<hnswlib::HierarchicalNSW<float>>(space.get(), d.n, 16, 200, 100);
    // hnswlib's own ParallelFor (python bindings): threads take the next item from a counter.
    std::atomic<size_t> next{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; ++t)
      ts.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < d.n;) h->addPoint(d.x.data() + i * d.dim, i);
      });
    for (auto& t : ts) t.join();
    if (!file.empty()) h->saveIndex(file);
  }
  void search(const float* q, size_t ef, uint64_t* out) override {
    h->setEf(ef);
    auto pq = h->searchKnn(q, 10);
    size_t i = pq.size();
    for (size_t j = i; j < 10; ++j) out[j] = ~0ull;
    while (!pq.empty()) {
      out[--i] = pq.top().second;
      pq.pop();
    }
  }
};

struct Faiss : Engine {
  std::unique_ptr<faiss::IndexHNSWFlat> h;
  void build(const Dataset& d) override {
    if (!file.empty() && std::ifstream(file)) {
      h.reset(dynamic_cast<faiss::IndexHNSWFlat*>(faiss::read_index(file.c_str())));
      omp_set_num_threads(1);
      return;
    }
    omp_set_num_threads(2);
    h = std::make_unique<faiss::IndexHNSWFlat>(
        int(d.dim), 16, d.cosine ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2);
    h->hnsw.efConstruction = 200;
    h->add(faiss::Index::idx_t(d.n), d.x.data());
    if (!file.empty()) faiss::write_index(h.get(), file.c_str());
    omp_set_num_threads(1);
  }
  void search(const float* q, size_t ef, uint64_t* out) override { search_all(q, 1, 0, ef, out); }
  void search_all(const float* q, size_t nq, size_t, size_t ef, uint64_t* out) override {
    // FAISS 1.7.3 applies SearchParametersHNSW::efSearch only in part (recall stops growing past
    // hnsw.efSearch), so the index's own setting is changed too.
    h->hnsw.efSearch = int(ef);
    faiss::SearchParametersHNSW sp;
    sp.efSearch = int(ef);
    std::vector<float> dist(nq * 10);
    std::vector<faiss::Index::idx_t> ids(nq * 10);
    h->search(faiss::Index::idx_t(nq), q, 10, dist.data(), ids.data(), &sp);
    for (size_t i = 0; i < nq * 10; ++i) out[i] = ids[i] < 0 ? ~0ull : uint64_t(ids[i]);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string engines_arg = "scholar,hnswlib,faiss", cache = "/tmp", index_file;
  char data = 'a';
  std::vector<size_t> efs = {10, 12,  16,  20,  24,  32,  40,  48,  64, 80,
                             96, 128, 160, 192, 256, 320, 384, 512, 768};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--engines" || k == "--engine")
      engines_arg = v;
    else if (k == "--data")
      data = v[0];
    else if (k == "--cache")
      cache = v;
    else if (k == "--index-file")
      index_file = v;
    else if (k == "--efs") {
      efs.clear();
      for (const auto& x : split(v)) efs.push_back(std::stoul(x));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (data != 'a' && data != 'b') return 2;
  scholar::set_num_threads(2);
  const Dataset d = make(data);
  const auto gt = ground_truth(d, cache + "/index_gt_" + data + ".bin");

  const std::vector<std::string> names = split(engines_arg);
  std::vector<std::unique_ptr<Engine>> engines;
  for (const auto& name : names) {
    if (name == "scholar")
      engines.push_back(std::make_unique<Scholar>());
    else if (name == "hnswlib")
      engines.push_back(std::make_unique<Hnswlib>());
    else if (name == "faiss")
      engines.push_back(std::make_unique<Faiss>());
    else
      return 2;
    if (!index_file.empty()) engines.back()->file = index_file + "." + name;
  }
  // Builds one after another, in the order given.
  std::vector<double> build_s(engines.size());
  std::vector<size_t> mem(engines.size());
  for (size_t e = 0; e < engines.size(); ++e) {
    const size_t m0 = heap_bytes();
    const double t0 = now();
    engines[e]->build(d);
    build_s[e] = now() - t0;
    mem[e] = heap_bytes() - m0;
    std::fprintf(stderr, "  %s: built in %.1f s\n", names[e].c_str(), build_s[e]);
  }
  // Queries: for each ef, three passes over all queries per engine, the engines taking turns pass
  // by pass (A B C A B C ...), so a drift in the machine's speed touches all alike; best pass
  // counts.
  std::vector<std::vector<double>> qps(engines.size()), rec(engines.size());
  std::vector<uint64_t> got(d.nq * 10);
  for (size_t k = 0; k < efs.size(); ++k) {
    std::vector<double> best(engines.size(), 1e30);
    for (auto& e : engines) e->search(d.q.data(), efs[k], got.data());  // warm
    for (int rep = 0; rep < 3; ++rep)
      for (size_t e = 0; e < engines.size(); ++e) {
        const double s0 = now();
        engines[e]->search_all(d.q.data(), d.nq, d.dim, efs[k], got.data());
        best[e] = std::min(best[e], now() - s0);
        if (rep == 2) {
          size_t hit = 0;
          for (size_t i = 0; i < d.nq; ++i) {
            std::unordered_set<uint64_t> want(gt[i].begin(), gt[i].end());
            for (size_t j = 0; j < 10; ++j) hit += want.count(got[i * 10 + j]);
          }
          rec[e].push_back(double(hit) / double(d.nq * 10));
          qps[e].push_back(double(d.nq) / best[e]);
        }
      }
  }
  std::printf("{\"data\": \"%c\", \"n\": %zu, \"dim\": %zu, \"engines\": {", data, d.n, d.dim);
  for (size_t e = 0; e < engines.size(); ++e) {
    std::printf("%s\"%s\": {\"build_s\": %.3f, \"memory_bytes\": %zu, \"sweep\": [", e ? ", " : "",
                names[e].c_str(), build_s[e], mem[e]);
    for (size_t k = 0; k < efs.size(); ++k)
      std::printf("%s{\"ef\": %zu, \"recall\": %.4f, \"qps\": %.1f}", k ? ", " : "", efs[k],
                  rec[e][k], qps[e][k]);
    std::printf("]}");
  }
  std::printf("}}\n");
  return 0;
}
