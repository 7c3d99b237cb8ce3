// scholar::matmul against a raw cblas_sgemm call on the same operands, one thread. Square sizes and
// the shapes of a GPT-2 small layer: M tokens (1 = decoding, 64, 512 = prefill) x 768 x 768 or
// 3072. matmul allocates its result, as users call it; matmul_into writes into an existing tensor.
// gemm_bf16 is scholar's bf16 product (operands rounded to bf16, f32 sums) in the three layouts a
// training step uses: nn (X W), nt (X W^T, the forward pass) and tn (X^T dY, the weight gradient).
// peak/* are the arithmetic ceilings of one core: independent f32 FMAs and bf16 dot products on
// registers, the denominators of "% of peak".
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <vector>

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

// The f32 products of one whole training step, in the order and with the strides train_step gives
// kernels::gemm (recorded from its calls; counts per step): each linear layer's forward (X W),
// input gradient (dY W^T) and weight gradient (X^T dY), the LM head's three, and attention's
// products per sequence, head and 64-row chunk of causal queries (scores, P V, and their
// gradients, some accumulating into C). "own" is scholar's kernel, "blas" the build's BLAS through
// the same gemm(), "cblas" a raw cblas_sgemm per call (the anchors' OpenBLAS), "mkl" Intel MKL's
// (where libmkl_rt.so is installed, on one thread; skipped otherwise). GFLOP/s over the whole list:
// the rate of "the GEMMs of the step".
struct StepCall {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  int beta, count;
};
// GPT-2 small, batch 4 x 256 (train_step --config gpt2-small).
const std::vector<StepCall> kGpt2SmallStep = {
    {false, false, 1024, 2304, 768, 768, 2304, 2304, 0, 12},
    {false, true, 64, 64, 64, 768, 768, 256, 0, 1152},
    {false, false, 64, 64, 64, 256, 768, 768, 0, 1152},
    {false, true, 64, 128, 64, 768, 768, 256, 0, 1152},
    {false, false, 64, 64, 128, 256, 768, 768, 0, 1152},
    {false, true, 64, 192, 64, 768, 768, 256, 0, 1152},
    {false, false, 64, 64, 192, 256, 768, 768, 0, 1152},
    {false, true, 64, 256, 64, 768, 768, 256, 0, 1152},
    {false, false, 64, 64, 256, 256, 768, 768, 0, 1152},
    {false, false, 1024, 768, 768, 768, 768, 768, 0, 12},
    {false, false, 1024, 3072, 768, 768, 3072, 3072, 0, 12},
    {false, false, 1024, 768, 3072, 3072, 768, 768, 0, 12},
    {false, true, 1024, 50257, 768, 768, 768, 50257, 0, 1},
    {false, false, 1024, 768, 50257, 50257, 768, 768, 0, 1},
    {true, false, 50257, 768, 1024, 50257, 768, 768, 0, 1},
    {false, true, 1024, 3072, 768, 768, 768, 3072, 0, 12},
    {true, false, 3072, 768, 1024, 3072, 768, 768, 0, 12},
    {false, true, 1024, 768, 3072, 3072, 3072, 768, 0, 12},
    {true, false, 768, 3072, 1024, 768, 3072, 3072, 0, 12},
    {false, true, 1024, 768, 768, 768, 768, 768, 0, 12},
    {true, false, 768, 768, 1024, 768, 768, 768, 0, 12},
    {true, false, 64, 64, 64, 256, 768, 768, 1, 1152},
    {true, false, 128, 64, 64, 256, 768, 768, 1, 1152},
    {true, false, 192, 64, 64, 256, 768, 768, 1, 1152},
    {true, false, 256, 64, 64, 256, 768, 768, 1, 1152},
    {false, true, 1024, 768, 2304, 2304, 2304, 768, 0, 12},
    {true, false, 768, 2304, 1024, 768, 2304, 2304, 0, 12},
};
// The Llama-style model, batch 4 x 512 (train_step --config llama).
const std::vector<StepCall> kLlamaStep = {
    {false, true, 2048, 256, 512, 512, 512, 256, 0, 16},
    {false, true, 2048, 512, 512, 512, 512, 512, 0, 16},
    {false, true, 64, 64, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 64, 512, 256, 512, 0, 512},
    {false, true, 64, 128, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 128, 512, 256, 512, 0, 512},
    {false, true, 64, 192, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 192, 512, 256, 512, 0, 512},
    {false, true, 64, 256, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 256, 512, 256, 512, 0, 512},
    {false, true, 64, 320, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 320, 512, 256, 512, 0, 512},
    {false, true, 64, 384, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 384, 512, 256, 512, 0, 512},
    {false, true, 64, 448, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 448, 512, 256, 512, 0, 512},
    {false, true, 64, 512, 64, 512, 256, 512, 0, 512},
    {false, false, 64, 64, 512, 512, 256, 512, 0, 512},
    {false, true, 2048, 1408, 512, 512, 512, 1408, 0, 16},
    {false, true, 2048, 512, 1408, 1408, 1408, 512, 0, 8},
    {false, true, 2048, 32000, 512, 512, 512, 32000, 0, 1},
    {false, false, 2048, 512, 32000, 32000, 512, 512, 0, 1},
    {true, false, 32000, 512, 2048, 32000, 512, 512, 0, 1},
    {false, false, 2048, 1408, 512, 512, 1408, 1408, 0, 8},
    {true, false, 512, 1408, 2048, 512, 1408, 1408, 0, 8},
    {false, false, 2048, 512, 1408, 1408, 512, 512, 0, 16},
    {true, false, 1408, 512, 2048, 1408, 512, 512, 0, 16},
    {false, false, 2048, 512, 512, 512, 512, 512, 0, 16},
    {true, false, 512, 512, 2048, 512, 512, 512, 0, 16},
    {true, false, 64, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 128, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 192, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 256, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 320, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 384, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 448, 64, 64, 512, 512, 256, 1, 512},
    {true, false, 512, 64, 64, 512, 512, 256, 1, 512},
    {false, false, 2048, 512, 256, 256, 512, 512, 0, 16},
    {true, false, 256, 512, 2048, 256, 512, 512, 0, 16},
};

enum class StepEngine { own, blas, cblas, mkl };

// A row-major SGEMM with cblas_sgemm's interface.
using Sgemm = decltype(&cblas_sgemm);

// Intel MKL's cblas_sgemm (the same interface and enum values), loaded at run time from
// libmkl_rt.so where it is installed (Debian's non-free libmkl-rt), set to one thread: the vendor's
// own GEMM as a second anchor. Null where it is not. Prints MKL's version once.
Sgemm mkl_sgemm() {
  static const Sgemm f = [] {
    void* lib = dlopen("libmkl_rt.so", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return Sgemm{nullptr};
    if (auto threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "MKL_Set_Num_Threads")))
      threads(1);
    if (auto version =
            reinterpret_cast<void (*)(char*, int)>(dlsym(lib, "MKL_Get_Version_String"))) {
      char text[256] = {};
      version(text, sizeof text - 1);
      std::fprintf(stderr, "anchor: %s\n", text);
    }
    return reinterpret_cast<Sgemm>(dlsym(lib, "cblas_sgemm"));
  }();
  return f;
}

void BM_step_gemms(benchmark::State& state, const std::vector<StepCall>* calls, StepEngine engine) {
  scholar::kernels::set_own_f32_gemm(engine == StepEngine::own);
  if (engine == StepEngine::own && !scholar::kernels::has_own_f32_gemm())
    return state.SkipWithError("scholar's own f32 kernel needs AVX-512");
  // The anchors' SGEMM: raw OpenBLAS or MKL (null: scholar's gemm()).
  const Sgemm sgemm = engine == StepEngine::mkl     ? mkl_sgemm()
                      : engine == StepEngine::cblas ? &cblas_sgemm
                                                    : nullptr;
  if (engine == StepEngine::mkl && sgemm == nullptr)
    return state.SkipWithError("libmkl_rt.so is not installed (Debian non-free: libmkl-rt)");
  int64_t a_size = 0, b_size = 0, c_size = 0;
  double flops = 0;
  for (const StepCall& c : *calls) {
    a_size = std::max(a_size, (c.ta ? c.K : c.M) * c.lda);
    b_size = std::max(b_size, (c.tb ? c.N : c.K) * c.ldb);
    c_size = std::max(c_size, c.M * c.ldc);
    flops += 2.0 * static_cast<double>(c.M * c.N * c.K) * c.count;
  }
  scholar::Generator g(1);
  FloatTensor a = scholar::randn({a_size}, g), b = scholar::randn({b_size}, g);
  FloatTensor c = FloatTensor::zeros({c_size});
  for (auto _ : state) {
    for (const StepCall& k : *calls)
      for (int i = 0; i < k.count; ++i) {
        if (sgemm != nullptr)
          sgemm(CblasRowMajor, k.ta ? CblasTrans : CblasNoTrans, k.tb ? CblasTrans : CblasNoTrans,
                static_cast<int>(k.M), static_cast<int>(k.N), static_cast<int>(k.K), 1.0f, a.data(),
                static_cast<int>(k.lda), b.data(), static_cast<int>(k.ldb),
                static_cast<float>(k.beta), c.data(), static_cast<int>(k.ldc));
        else
          scholar::kernels::gemm(k.ta, k.tb, k.M, k.N, k.K, 1.0f, a.data(), k.lda, b.data(), k.ldb,
                                 static_cast<float>(k.beta), c.data(), k.ldc);
      }
    benchmark::ClobberMemory();
  }
  scholar::kernels::set_own_f32_gemm(true);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
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

// The 8 x 48 micro-kernel's own mix (gemm_f32_avx512.cpp): per iteration 3 vector loads and 8
// single-float broadcasts from L1, and 24 multiply-adds, with no other instruction than the loop's.
// The ceiling of that loop on this CPU: on the Sapphire Rapids host about 0.91 of peak/fma_f32, as
// loads, not FMAs, bound it (docs/performance.md).
void BM_peak_fma_f32_tile(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) return state.SkipWithError("the CPU lacks AVX-512");
  constexpr long kLoops = 50000;
  alignas(64) static float src[64] = {};
  // clang-format off
#define SCHOLAR_PEAK_ROW(I, Z, C0, C1, C2)                                      \
  "vbroadcastss 4*" #I "(%1), %%zmm" #Z "\n"                                    \
  "vfmadd231ps %%zmm" #Z ", %%zmm29, %%zmm" #C0 "\n"                            \
  "vfmadd231ps %%zmm" #Z ", %%zmm30, %%zmm" #C1 "\n"                            \
  "vfmadd231ps %%zmm" #Z ", %%zmm31, %%zmm" #C2 "\n"
  // clang-format on
  for (auto _ : state) {
    long n = kLoops;
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n"
        "vmovdqa64 %%zmm0, %%zmm1\nvmovdqa64 %%zmm0, %%zmm2\nvmovdqa64 %%zmm0, %%zmm3\n"
        "vmovdqa64 %%zmm0, %%zmm4\nvmovdqa64 %%zmm0, %%zmm5\nvmovdqa64 %%zmm0, %%zmm6\n"
        "vmovdqa64 %%zmm0, %%zmm7\nvmovdqa64 %%zmm0, %%zmm8\nvmovdqa64 %%zmm0, %%zmm9\n"
        "vmovdqa64 %%zmm0, %%zmm10\nvmovdqa64 %%zmm0, %%zmm11\nvmovdqa64 %%zmm0, %%zmm12\n"
        "vmovdqa64 %%zmm0, %%zmm13\nvmovdqa64 %%zmm0, %%zmm14\nvmovdqa64 %%zmm0, %%zmm15\n"
        "vmovdqa64 %%zmm0, %%zmm16\nvmovdqa64 %%zmm0, %%zmm17\nvmovdqa64 %%zmm0, %%zmm18\n"
        "vmovdqa64 %%zmm0, %%zmm19\nvmovdqa64 %%zmm0, %%zmm20\nvmovdqa64 %%zmm0, %%zmm21\n"
        "vmovdqa64 %%zmm0, %%zmm22\nvmovdqa64 %%zmm0, %%zmm23\n"
        "1:\n"
        "vmovaps 64(%1), %%zmm29\nvmovaps 128(%1), %%zmm30\nvmovaps 192(%1), "
        "%%zmm31\n" SCHOLAR_PEAK_ROW(0, 24, 0, 1, 2) SCHOLAR_PEAK_ROW(1, 25, 3, 4, 5)
            SCHOLAR_PEAK_ROW(2, 26, 6, 7, 8) SCHOLAR_PEAK_ROW(3, 27, 9, 10, 11)
                SCHOLAR_PEAK_ROW(4, 24, 12, 13, 14) SCHOLAR_PEAK_ROW(5, 25, 15, 16, 17)
                    SCHOLAR_PEAK_ROW(6, 26, 18, 19, 20)
                        SCHOLAR_PEAK_ROW(7, 27, 21, 22, 23) "sub $1, %0\njnz 1b\n"
        : "+r"(n)
        : "r"(src)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
          "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20",
          "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm29", "xmm30", "xmm31",
          "cc", "memory");
  }
#undef SCHOLAR_PEAK_ROW
  state.counters["GFLOP/s"] =
      benchmark::Counter(24.0 * 16 * 2 * kLoops * static_cast<double>(state.iterations()) * 1e-9,
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
BENCHMARK_CAPTURE(BM_step_gemms, gpt2_small_own, &kGpt2SmallStep, StepEngine::own)
    ->Name("step/gpt2_small/own")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, gpt2_small_blas, &kGpt2SmallStep, StepEngine::blas)
    ->Name("step/gpt2_small/blas")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, gpt2_small_cblas, &kGpt2SmallStep, StepEngine::cblas)
    ->Name("step/gpt2_small/cblas")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, gpt2_small_mkl, &kGpt2SmallStep, StepEngine::mkl)
    ->Name("step/gpt2_small/mkl")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, llama_own, &kLlamaStep, StepEngine::own)
    ->Name("step/llama/own")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, llama_blas, &kLlamaStep, StepEngine::blas)
    ->Name("step/llama/blas")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, llama_cblas, &kLlamaStep, StepEngine::cblas)
    ->Name("step/llama/cblas")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_step_gemms, llama_mkl, &kLlamaStep, StepEngine::mkl)
    ->Name("step/llama/mkl")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_gemm_bf16, nn, false, false)->Name("gemm_bf16/nn")->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_bf16, nt, false, true)->Name("gemm_bf16/nt")->Apply(shapes);
BENCHMARK_CAPTURE(BM_gemm_bf16, tn, true, false)->Name("gemm_bf16/tn")->Apply(shapes);
#if defined(__x86_64__)
BENCHMARK(BM_peak_fma_f32)->Name("peak/fma_f32");
BENCHMARK(BM_peak_fma_f32_loads)->Name("peak/fma_f32_loads");
BENCHMARK(BM_peak_fma_f32_tile)->Name("peak/fma_f32_tile");
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
