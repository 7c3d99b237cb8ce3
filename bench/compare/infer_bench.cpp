// Inference speed on a model file, measured the way llama.cpp's llama-bench does: pp N (prompt
// processing: one batch of N tokens into an empty cache) and tg N (generation: N tokens decoded one
// at a time after an empty cache), in tokens per second. Prints one JSON line per test with the
// median of --reps runs (after one warm-up). bench/compare/infer.py runs it beside llama-bench.
//   infer_bench MODEL [--threads N] [--pp 128] [--tg 128] [--reps 5] [--mmap 1] [--interleave 1]
//                     [--depth 0] [--cache-type f32]
//     (--mmap 0: read the file into memory on huge pages instead of mapping it; --interleave 0:
//     no interleaved copy of quantized matrices; --depth N: tg runs after an N-token prompt, as
//     llama-bench's -d; --cache-type: the KV cache's storage, as llama-bench's -ctk/-ctv)
//   infer_bench --bandwidth [--threads N]   memory read bandwidth: sums a 1 GiB buffer
//   infer_bench MODEL --sessions S [--threads N] [--tg 128] [--shared-pool 0]
//     S sessions decode at once, each from its own thread on a pool of N / S threads of its own
//     (--shared-pool 1: all on the default pool of N threads instead); prints the tokens/s of
//     each and their sum
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "scholar/infer/model.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s MODEL [--threads N] [--pp 128] [--tg 128] [--reps 5] [--mmap 0|1] "
                 "[--interleave 0|1]\n",
                 argv[0]);
    return 2;
  }
  int threads = 1, pp = 128, tg = 128, reps = 5, mmap = 1, interleave = 1, depth = 0;
  int sessions = 0, shared_pool = 0;
  WeightType cache_type = WeightType::f32;
  for (int i = 2; i + 1 < argc; i += 2) {
    const int v = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--cache-type")) {
      const auto t = parse_weight_type(argv[i + 1]);
      if (!t) {
        std::fprintf(stderr, "infer_bench: unknown cache type %s\n", argv[i + 1]);
        return 2;
      }
      cache_type = *t;
    }
    if (!std::strcmp(argv[i], "--depth")) depth = v;
    if (!std::strcmp(argv[i], "--sessions")) sessions = v;
    if (!std::strcmp(argv[i], "--shared-pool")) shared_pool = v;
    if (!std::strcmp(argv[i], "--threads"))
      threads = v;
    else if (!std::strcmp(argv[i], "--pp"))
      pp = v;
    else if (!std::strcmp(argv[i], "--tg"))
      tg = v;
    else if (!std::strcmp(argv[i], "--reps"))
      reps = v;
    else if (!std::strcmp(argv[i], "--mmap"))
      mmap = v;
    else if (!std::strcmp(argv[i], "--interleave"))
      interleave = v;
  }
  try {
    set_num_threads(threads);
    if (!std::strcmp(argv[1], "--bandwidth")) {
      // Read bandwidth: the threads each sum their share of a 1 GiB buffer, best of 5.
      const size_t n = size_t{1} << 28;
      std::vector<float> buf(n, 1.0f);
      double best = 0;
      std::vector<float> part(static_cast<size_t>(threads));
      for (int r = 0; r < 5; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        thread_pool().run(threads, [&](int64_t p) {
          const size_t b = n * static_cast<size_t>(p) / static_cast<size_t>(threads);
          const size_t e = n * static_cast<size_t>(p + 1) / static_cast<size_t>(threads);
          part[static_cast<size_t>(p)] =
              kernels::sum(std::span<const float>(buf.data() + b, e - b));
        });
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, static_cast<double>(n * sizeof(float)) / s);
      }
      std::printf(
          "{\"impl\": \"scholar\", \"test\": \"bandwidth\", \"threads\": %d, "
          "\"bytes_per_s\": %.4g, \"check\": %.0f}\n",
          threads, best, static_cast<double>(part[0]));
      return 0;
    }
    const auto model =
        infer::Model::load(argv[1], {.access = mmap ? io::FileAccess::map : io::FileAccess::copy,
                                     .interleave = interleave != 0});
    if (sessions > 0) {
      // Concurrent sessions: each decodes tg tokens greedily from its own thread.
      std::vector<std::unique_ptr<ThreadPool>> pools;
      std::vector<infer::Session> ss;
      for (int i = 0; i < sessions; ++i) {
        if (!shared_pool)
          pools.push_back(std::make_unique<ThreadPool>(std::max(1, threads / sessions)));
        ss.emplace_back(model,
                        infer::SessionOptions{.n_ctx = tg + 8,
                                              .pool = shared_pool ? nullptr : pools.back().get()});
      }
      std::vector<double> rate(static_cast<size_t>(sessions));
      auto decode = [&](int i) {
        infer::Session& s = ss[static_cast<size_t>(i)];
        const auto t0 = std::chrono::steady_clock::now();
        int32_t id = 1 + i;
        for (int k = 0; k < tg; ++k) {
          const auto l = s.decode_one(id);
          id = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
        }
        rate[static_cast<size_t>(i)] =
            tg / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      };
      std::vector<std::thread> ts;
      for (int i = 0; i < sessions; ++i) ts.emplace_back(decode, i);
      for (auto& t : ts) t.join();
      double sum = 0;
      std::printf(
          "{\"impl\": \"scholar\", \"test\": \"sessions\", \"sessions\": %d, "
          "\"threads\": %d, \"shared_pool\": %d, \"tokens_per_s\": [",
          sessions, threads, shared_pool);
      for (int i = 0; i < sessions; ++i) {
        std::printf("%s%.2f", i ? ", " : "", rate[static_cast<size_t>(i)]);
        sum += rate[static_cast<size_t>(i)];
      }
      std::printf("], \"sum\": %.2f}\n", sum);
      return 0;
    }
    infer::Session s(model, {.n_ctx = std::max(pp, depth) + tg + 8,
                             .max_batch = std::max({pp, depth, 1}),
                             .cache_type = cache_type});
    const int32_t V = static_cast<int32_t>(model->arch().vocab_size);
    std::vector<int32_t> prompt(static_cast<size_t>(pp));
    for (int i = 0; i < pp; ++i) prompt[static_cast<size_t>(i)] = (i * 7919 + 13) % V;
    auto now = [] { return std::chrono::steady_clock::now(); };
    auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    auto report = [&](const char* test, int n, std::vector<double> t) {
      std::sort(t.begin(), t.end());
      std::printf(
          "{\"impl\": \"scholar\", \"test\": \"%s%d\", \"threads\": %d, \"type\": \"%s\", "
          "\"mmap\": %d, "
          "\"tokens_per_s\": %.2f, \"weight_bytes\": %zu, \"bytes_per_token\": %zu, "
          "\"depth\": %d, \"cache_type\": \"%s\", \"cache_bytes\": %zu}\n",
          test, n, threads, model->weight_type_summary().c_str(), mmap, n / t[t.size() / 2],
          model->weight_bytes(), model->bytes_per_token(), depth,
          std::string(weight_type_name(cache_type)).c_str(), s.cache_bytes());
      std::fflush(stdout);
    };
    if (pp > 0) {
      std::vector<double> t;
      for (int r = 0; r <= reps; ++r) {
        s.clear();
        const auto t0 = now();
        s.prefill(prompt);
        if (r > 0) t.push_back(secs(t0, now()));
      }
      report("pp", pp, t);
    }
    if (tg > 0) {
      std::vector<double> t;
      infer::Batch b;
      b.add(0, 0, 0, true);
      std::vector<int32_t> context(static_cast<size_t>(depth));
      for (int i = 0; i < depth; ++i) context[static_cast<size_t>(i)] = (i * 7919 + 13) % V;
      for (int r = 0; r <= reps; ++r) {
        s.clear();
        if (depth > 0) s.prefill(context);
        const auto t0 = now();
        int32_t id = 1;
        for (int i = 0; i < tg; ++i) {
          b.tokens[0] = id;
          b.pos[0] = depth + i;
          auto logits = s.decode(b);
          id =
              static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        }
        if (r > 0) t.push_back(secs(t0, now()));
      }
      report("tg", tg, t);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
