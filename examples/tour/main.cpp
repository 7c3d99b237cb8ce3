// A tour of scholar's base layers: tensors and views, broadcasting arithmetic, the random number
// generator, the SIMD kernels (timed against their scalar twins) and matrix products (timed on one
// thread and on all of them), and a safetensors round trip.
//
//   tour [--quick]
#include <scholar/scholar.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

using namespace scholar;
using Clock = std::chrono::steady_clock;

namespace {

bool g_quick = false;

// Median seconds per call of f, over repeated batches lasting about `budget` seconds in all.
double time_it(const std::function<void()>& f, double budget = 0.25) {
  if (g_quick) budget /= 5;
  f();  // warm up
  std::vector<double> samples;
  const auto start = Clock::now();
  while (samples.size() < 5 ||
         std::chrono::duration<double>(Clock::now() - start).count() < budget) {
    int reps = 1;
    double t = 0;
    for (;;) {
      const auto t0 = Clock::now();
      for (int i = 0; i < reps; ++i) f();
      t = std::chrono::duration<double>(Clock::now() - t0).count();
      if (t > 2e-3 || reps > (1 << 20)) break;
      reps *= 4;
    }
    samples.push_back(t / reps);
    if (samples.size() > 200) break;
  }
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return samples[samples.size() / 2];
}

void section(const char* title) {
  std::printf("\n== %s ==\n", title);
}

void tensors_and_views() {
  section("Tensors and views");
  auto x = Tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  std::cout << "x = " << x << "\n";
  auto xt = x.t();  // a view: no copy
  std::cout << "x.t() (strides " << xt.strides() << ", shares storage: " << std::boolalpha
            << xt.shares_storage_with(x) << ") = " << xt << "\n";
  auto col = x.slice(1, 1, 3);
  col.fill(0.0f);  // writes through to x
  std::cout << "after x.slice(1, 1, 3).fill(0): x = " << x << "\n";
  try {
    (void)xt.reshape({6});
  } catch (const ShapeError& e) {
    std::cout << "xt.reshape({6}) -> ShapeError: " << e.what() << "\n";
  }
  std::cout << "xt.contiguous().reshape({6}) = " << xt.contiguous().reshape({6}) << "\n";
  auto h = Tensor<float>::from({3}, {1.0f, 1.00390625f, 65520.0f}).to<f16>();
  std::cout << "as f16, back to float: " << h.to<float>() << "  (65520 rounds to inf in f16)\n";
}

void arithmetic() {
  section("Broadcasting arithmetic, reductions, softmax");
  auto a = Tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  auto b = Tensor<float>::from({3}, {10, 20, 30});
  std::cout << "a + b  (b broadcast over rows) = " << (a + b) << "\n";
  std::cout << "sum(a, 1) = " << sum(a, 1) << ",  mean(a, 0) = " << mean(a, 0) << "\n";
  std::cout << "softmax(a, -1) = " << softmax(a, -1) << "\n";
  try {
    (void)(a + Tensor<float>::zeros({4}));
  } catch (const ShapeError& e) {
    std::cout << "a + zeros({4}) -> ShapeError: " << e.what() << "\n";
  }
}

void random_numbers() {
  section("Random numbers (Philox4x32-10, identical on every platform)");
  Generator g(42);
  std::cout << "randn({2, 4}, seed 42) = " << randn({2, 4}, g) << "\n";
  Generator g2(42);
  const auto first = randn({8}, g2).to_vector();
  Generator g3(42);
  const auto again = randn({8}, g3).to_vector();
  std::cout << "same seed, same numbers: " << std::boolalpha
            << (std::memcmp(first.data(), again.data(), 32) == 0) << "\n";
}

void kernels_timing() {
  section("SIMD kernels vs their scalar twins (4096 floats, one thread)");
  const auto& k = kernels::active();
  const auto& s = kernels::ref::table();
  constexpr size_t n = 4096;
  Generator g(1);
  auto x = randn({int64_t{n}}, g), y = randn({int64_t{n}}, g),
       w = rand({int64_t{n}}, g, 0.5f, 1.5f);
  auto out = Tensor<float>::zeros({int64_t{n}});
  float* o = out.data();
  const float *px = x.data(), *py = y.data(), *pw = w.data();
  float mean, rstd;
  struct Row {
    const char* name;
    std::function<void(const kernels::KernelTable&)> run;
  } rows[] = {
      {"add", [&](auto& t) { t.add(o, px, py, n); }},
      {"dot",
       [&](auto& t) {
         volatile float r = t.dot(px, py, n);
         (void)r;
       }},
      {"softmax", [&](auto& t) { t.softmax(o, px, n); }},
      {"layernorm_forward",
       [&](auto& t) { t.layernorm_forward(o, &mean, &rstd, px, pw, py, n, 1e-5f); }},
      {"rmsnorm_forward", [&](auto& t) { t.rmsnorm_forward(o, &rstd, px, pw, n, 1e-6f); }},
      {"gelu_forward", [&](auto& t) { t.gelu_forward(o, px, n); }},
      {"swiglu_forward", [&](auto& t) { t.swiglu_forward(o, px, py, n); }},
      {"rope (half)",
       [&](auto& t) { t.rope(o, px, py, pw, n / 2, kernels::RopeStyle::half, false); }},
  };
  std::printf("%-20s %12s %12s %9s\n", "kernel", "scalar (us)", "simd (us)", "speedup");
  for (const Row& r : rows) {
    const double ts = time_it([&] { r.run(s); }, 0.1);
    const double tk = time_it([&] { r.run(k); }, 0.1);
    std::printf("%-20s %12.2f %12.2f %8.1fx\n", r.name, ts * 1e6, tk * 1e6, ts / tk);
  }
}

void matmul_timing() {
  section("Matrix products (GPT-2 MLP shape: 512 x 768 times 768 x 3072)");
  Generator g(2);
  auto a = randn({512, 768}, g), w = randn({3072, 768}, g, 0.0f, 0.02f);
  const double flops = 2.0 * 512 * 768 * 3072;
  const int all = num_threads();
  for (int threads : {1, all}) {
    set_num_threads(threads);
    const double t = time_it([&] { auto c = matmul(a, w.t()); });  // w.t(): a view, no copy
    std::printf("%d thread%s: %7.2f ms  %6.1f GFLOP/s\n", threads, threads == 1 ? " " : "s",
                t * 1e3, flops / t * 1e-9);
    if (all == 1) break;
  }
  set_num_threads(all);
  auto c = matmul(a, w.t());
  std::cout << "result shape " << c.shape() << ", checksum " << sum_all(c) << "\n";
}

void safetensors_roundtrip() {
  section("safetensors: atomic save, zero-copy load");
  Generator g(3);
  auto w = randn({1024, 1024}, g);
  const auto path = (std::filesystem::temp_directory_path() / "scholar_tour.safetensors").string();
  io::SafetensorsWriter out;
  out.add("w", w);
  out.set_metadata("source", "examples/tour");
  const double ts = time_it([&] { out.save(path); }, 0.1);
  const auto f = io::SafetensorsFile::open(path);
  const auto back = f.load<float>("w");
  std::printf("4 MiB tensor: save %.2f ms; load is a view of the mapped file; max |diff| = %g\n",
              ts * 1e3, max_abs_diff(back, w));
  std::filesystem::remove(path);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  try {
    std::printf("%s\n", system_info().c_str());
    tensors_and_views();
    arithmetic();
    random_numbers();
    kernels_timing();
    matmul_timing();
    safetensors_roundtrip();
    std::printf("\nDone.\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
