// scholar::matmul against a raw cblas_sgemm call on the same operands, one thread. Square sizes and
// the shapes of a GPT-2 small layer: M tokens (1 = decoding, 64, 512 = prefill) x 768 x 768 or
// 3072. matmul allocates its result, as users call it; matmul_into writes into an existing tensor.
// gemm_bf16 is scholar's bf16 product (operands rounded to bf16, f32 sums) in the three layouts a
// training step uses: nn (X W), nt (X W^T, the forward pass) and tn (X^T dY, the weight gradient).
// peak/* are the arithmetic ceilings of one core: independent f32 FMAs and bf16 dot products on
// registers, the denominators of "% of peak".
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "scholar/kernels/kernels.hpp"
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

void BM_gemm_bf16(benchmark::State& state, bool ta, bool tb) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  Operands op(M, N, K);  // the same element counts; only the layout the kernel reads differs
  for (auto _ : state) {
    scholar::kernels::gemm_bf16(ta, tb, M, N, K, 1.0f, op.a.data(), ta ? M : K, op.b.data(),
                                tb ? K : N, 0.0f, op.c.data(), N);
    benchmark::ClobberMemory();
  }
  set_flops(state, M, N, K);
}

// gemm in f32 on scholar's own AVX-512 kernel (own) or on the build's BLAS (blas), in the three
// layouts of a training step.
void BM_gemm_f32(benchmark::State& state, bool ta, bool tb, bool own) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  scholar::kernels::set_own_f32_gemm(own);
  if (own && !scholar::kernels::has_own_f32_gemm())
    return state.SkipWithError("scholar's own f32 kernel needs AVX-512");
  Operands op(M, N, K);
  for (auto _ : state) {
    scholar::kernels::gemm(ta, tb, M, N, K, 1.0f, op.a.data(), ta ? M : K, op.b.data(), tb ? K : N,
                           0.0f, op.c.data(), N);
    benchmark::ClobberMemory();
  }
  scholar::kernels::set_own_f32_gemm(true);
  set_flops(state, M, N, K);
}

#if defined(__x86_64__)
// 12 independent accumulators in registers (inline assembly, so no compiler can spill them), enough
// that latency never limits the rate; `instr` is one multiply-add instruction on zmm registers. The
// operands start at zero, so no subnormal or NaN input can slow the arithmetic.
#define SCHOLAR_PEAK_LOOP(instr)                                                                 \
  __asm__ volatile(                                                                              \
      "vpxord %%zmm30,%%zmm30,%%zmm30\nvpxord %%zmm31,%%zmm31,%%zmm31\n"                         \
      "vpxord %%zmm0,%%zmm0,%%zmm0\nvmovdqa64 %%zmm0,%%zmm1\n"                                   \
      "vmovdqa64 %%zmm0,%%zmm2\nvmovdqa64 %%zmm0,%%zmm3\n"                                       \
      "vmovdqa64 %%zmm0,%%zmm4\nvmovdqa64 %%zmm0,%%zmm5\n"                                       \
      "vmovdqa64 %%zmm0,%%zmm6\nvmovdqa64 %%zmm0,%%zmm7\n"                                       \
      "vmovdqa64 %%zmm0,%%zmm8\nvmovdqa64 %%zmm0,%%zmm9\n"                                       \
      "vmovdqa64 %%zmm0,%%zmm10\nvmovdqa64 %%zmm0,%%zmm11\n"                                     \
      "1:\n" instr " %%zmm30,%%zmm31,%%zmm0\n" instr " %%zmm30,%%zmm31,%%zmm1\n" instr           \
      " %%zmm30,%%zmm31,%%zmm2\n" instr " %%zmm30,%%zmm31,%%zmm3\n" instr                        \
      " %%zmm30,%%zmm31,%%zmm4\n" instr " %%zmm30,%%zmm31,%%zmm5\n" instr                        \
      " %%zmm30,%%zmm31,%%zmm6\n" instr " %%zmm30,%%zmm31,%%zmm7\n" instr                        \
      " %%zmm30,%%zmm31,%%zmm8\n" instr " %%zmm30,%%zmm31,%%zmm9\n" instr                        \
      " %%zmm30,%%zmm31,%%zmm10\n" instr                                                         \
      " %%zmm30,%%zmm31,%%zmm11\n"                                                               \
      "sub $1,%0\njnz 1b\n"                                                                      \
      : "+r"(n)                                                                                  \
      :                                                                                          \
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
        "xmm11", "xmm30", "xmm31", "cc")

// The micro-kernels' own mix: 12 multiply-adds on zmm registers and 6 single-float broadcasts from
// L1 (one per two multiply-adds, as a 14 x 32 tile's 14 broadcasts and 2 vector loads per 28), so
// the rate this CPU sustains for a GEMM inner loop whose operands are all in L1.
void BM_peak_fma_f32_loads(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) return state.SkipWithError("the CPU lacks AVX-512");
  constexpr long kLoops = 100000;
  alignas(64) static float src[16] = {};
  for (auto _ : state) {
    long n = kLoops;
    __asm__ volatile(
        "vpxord %%zmm30,%%zmm30,%%zmm30\nvpxord %%zmm31,%%zmm31,%%zmm31\n"
        "vpxord %%zmm0,%%zmm0,%%zmm0\nvmovdqa64 %%zmm0,%%zmm1\n"
        "vmovdqa64 %%zmm0,%%zmm2\nvmovdqa64 %%zmm0,%%zmm3\n"
        "vmovdqa64 %%zmm0,%%zmm4\nvmovdqa64 %%zmm0,%%zmm5\n"
        "vmovdqa64 %%zmm0,%%zmm6\nvmovdqa64 %%zmm0,%%zmm7\n"
        "vmovdqa64 %%zmm0,%%zmm8\nvmovdqa64 %%zmm0,%%zmm9\n"
        "vmovdqa64 %%zmm0,%%zmm10\nvmovdqa64 %%zmm0,%%zmm11\n"
        "1:\n"
        "vbroadcastss (%1),%%zmm29\nvfmadd231ps %%zmm29,%%zmm31,%%zmm0\n"
        "vfmadd231ps %%zmm29,%%zmm30,%%zmm1\n"
        "vbroadcastss 4(%1),%%zmm29\nvfmadd231ps %%zmm29,%%zmm31,%%zmm2\n"
        "vfmadd231ps %%zmm29,%%zmm30,%%zmm3\n"
        "vbroadcastss 8(%1),%%zmm29\nvfmadd231ps %%zmm29,%%zmm31,%%zmm4\n"
        "vfmadd231ps %%zmm29,%%zmm30,%%zmm5\n"
        "vbroadcastss 12(%1),%%zmm29\nvfmadd231ps %%zmm29,%%zmm31,%%zmm6\n"
        "vfmadd231ps %%zmm29,%%zmm30,%%zmm7\n"
        "vbroadcastss 16(%1),%%zmm29\nvfmadd231ps %%zmm29,%%zmm31,%%zmm8\n"
        "vfmadd231ps %%zmm29,%%zmm30,%%zmm9\n"
        "vbroadcastss 20(%1),%%zmm29\nvfmadd231ps %%zmm29,%%zmm31,%%zmm10\n"
        "vfmadd231ps %%zmm29,%%zmm30,%%zmm11\n"
        "sub $1,%0\njnz 1b\n"
        : "+r"(n)
        : "r"(src)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm29", "xmm30", "xmm31", "cc", "memory");
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(12.0 * 16 * 2 * kLoops * static_cast<double>(state.iterations()) * 1e-9,
                         benchmark::Counter::kIsRate);
}

void peak(benchmark::State& state, bool supported, bool bf16) {
  if (!supported) return state.SkipWithError("the CPU lacks the instruction");
  constexpr long kLoops = 100000;
  for (auto _ : state) {
    long n = kLoops;
    if (bf16)
      SCHOLAR_PEAK_LOOP("vdpbf16ps");
    else
      SCHOLAR_PEAK_LOOP("vfmadd231ps");
  }
  // 12 instructions x 16 lanes x (2 flops per FMA, 4 per bf16 pair dot product)
  state.counters["GFLOP/s"] = benchmark::Counter(
      12.0 * 16 * (bf16 ? 4 : 2) * kLoops * static_cast<double>(state.iterations()) * 1e-9,
      benchmark::Counter::kIsRate);
}
void BM_peak_fma_f32(benchmark::State& state) {
  peak(state, __builtin_cpu_supports("avx512f"), false);
}
void BM_peak_dpbf16(benchmark::State& state) {
  peak(state, __builtin_cpu_supports("avx512bf16"), true);
}
#endif

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {256, 512, 1024}) b->Args({n, n, n});
  for (int64_t m : {1, 64, 512})
    for (int64_t n : {768, 3072}) b->Args({m, n, 768});
  b->ArgNames({"M", "N", "K"});
}

// The products of a GPT-2 small training step (batch 4 x 256 = 1024 tokens): attention and MLP
// projections, and the 50,257-word LM head.
void train_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {768, 2304, 3072}) b->Args({1024, n, 768});
  b->Args({1024, 768, 3072});
  b->Args({1024, 50257, 768});
  b->ArgNames({"M", "N", "K"});
}

// Names follow <op>/<implementation>/<args> so bench/compare.py can pair them.
BENCHMARK(BM_matmul_scholar)->Name("matmul/scholar")->Apply(shapes);
BENCHMARK(BM_matmul_into_scholar)->Name("matmul/scholar_into")->Apply(shapes);
BENCHMARK(BM_matmul_cblas)->Name("matmul/cblas")->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_f32, own_nn, false, false, true)->Name("gemm_f32/own_nn")->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_f32, blas_nn, false, false, false)
    ->Name("gemm_f32/blas_nn")
    ->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_f32, own_nt, false, true, true)
    ->Name("gemm_f32/own_nt")
    ->Apply(train_shapes);
BENCHMARK_CAPTURE(BM_gemm_f32, blas_nt, false, true, false)
    ->Name("gemm_f32/blas_nt")
    ->Apply(train_shapes);
BENCHMARK_CAPTURE(BM_gemm_f32, own_tn, true, false, true)
    ->Name("gemm_f32/own_tn")
    ->Apply(train_shapes);
BENCHMARK_CAPTURE(BM_gemm_f32, blas_tn, true, false, false)
    ->Name("gemm_f32/blas_tn")
    ->Apply(train_shapes);
BENCHMARK_CAPTURE(BM_gemm_bf16, nn, false, false)->Name("gemm_bf16/nn")->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_bf16, nt, false, true)->Name("gemm_bf16/nt")->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_bf16, tn, true, false)->Name("gemm_bf16/tn")->Apply(shapes);
#if defined(__x86_64__)
BENCHMARK(BM_peak_fma_f32)->Name("peak/fma_f32");
BENCHMARK(BM_peak_fma_f32_loads)->Name("peak/fma_f32_loads");
BENCHMARK(BM_peak_dpbf16)->Name("peak/dpbf16");
#endif

}  // namespace

int main(int argc, char** argv) {
  scholar::set_num_threads(1);
  openblas_set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
