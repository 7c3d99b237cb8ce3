// scholar::matmul against a raw cblas_sgemm call on the same operands, one thread. Square sizes and
// the shapes of a GPT-2 small layer: M tokens (1 = decoding, 64, 512 = prefill) x 768 x 768 or
// 3072. matmul allocates its result, as users call it; matmul_into writes into an existing tensor.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/random.hpp"

namespace {

using scholar::FloatTensor;

void set_flops(benchmark::State& state, int64_t M, int64_t N, int64_t K) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * M * N * K) * static_cast<double>(state.iterations()) * 1e-9,
      benchmark::Counter::kIsRate);
}

struct Operands {
  FloatTensor a, b, c;
  Operands(int64_t M, int64_t N, int64_t K) {
    scholar::Generator g(1);
    a = scholar::randn({M, K}, g);
    b = scholar::randn({K, N}, g);
    c = FloatTensor::zeros({M, N});
  }
};

void BM_matmul_scholar(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  Operands op(M, N, K);
  for (auto _ : state) {
    FloatTensor c = scholar::matmul(op.a, op.b);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, M, N, K);
}

void BM_matmul_into_scholar(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  Operands op(M, N, K);
  for (auto _ : state) {
    scholar::matmul_into(op.c, op.a, op.b);
    benchmark::ClobberMemory();
  }
  set_flops(state, M, N, K);
}

void BM_matmul_cblas(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  Operands op(M, N, K);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M), static_cast<int>(N),
                static_cast<int>(K), 1.0f, op.a.data(), static_cast<int>(K), op.b.data(),
                static_cast<int>(N), 0.0f, op.c.data(), static_cast<int>(N));
    benchmark::ClobberMemory();
  }
  set_flops(state, M, N, K);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {256, 512, 1024}) b->Args({n, n, n});
  for (int64_t m : {1, 64, 512})
    for (int64_t n : {768, 3072}) b->Args({m, n, 768});
  b->ArgNames({"M", "N", "K"});
}

// Names follow <op>/<implementation>/<args> so bench/compare.py can pair them.
BENCHMARK(BM_matmul_scholar)->Name("matmul/scholar")->Apply(shapes);
BENCHMARK(BM_matmul_into_scholar)->Name("matmul/scholar_into")->Apply(shapes);
BENCHMARK(BM_matmul_cblas)->Name("matmul/cblas")->Apply(shapes);

}  // namespace

int main(int argc, char** argv) {
  scholar::set_num_threads(1);
  openblas_set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
