// Each kernel three ways on the same data, one thread: scholar's dispatched SIMD kernel, a plain
// scalar loop, and the equivalent Eigen array expression. Sizes 768 and 4096 (a GPT-2 small row
// and a wide MLP row). Throughput is reported as bytes/s over the arrays each call reads and
// writes.
//
// Run through bench/kernels_table.py, which interleaves repetitions and prints the ratios. The
// conversion kernels count the bytes of their float side only.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <cmath>
#include <cstring>
#include <random>
#include <unsupported/Eigen/SpecialFunctions>  // Eigen arrays' erfc
#include <vector>

#include "scholar/kernels/kernels.hpp"
#include "scholar/tensor/dtype.hpp"

namespace {

using scholar::kernels::active;
using Arr = Eigen::Map<Eigen::ArrayXf>;
using CArr = Eigen::Map<const Eigen::ArrayXf>;
using Bf16Arr = Eigen::Map<Eigen::Array<Eigen::bfloat16, Eigen::Dynamic, 1>>;
using HalfArr = Eigen::Map<Eigen::Array<Eigen::half, Eigen::Dynamic, 1>>;

constexpr float kEps = 1e-5f;
constexpr float kGeluK = 0.7978845608028654f, kGeluC = 0.044715f;

// Seven arrays of n floats (64-byte aligned), filled with values in a realistic range.
struct Data {
  size_t n;
  std::vector<float, Eigen::aligned_allocator<float>> a, b, c, d, e, w, o;
  std::vector<uint16_t> h;
  explicit Data(size_t n_) : n(n_), a(n), b(n), c(n), d(n), e(n), w(n), o(n), h(n) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f), pos(0.5f, 1.5f);
    for (size_t i = 0; i < n; ++i) {
      a[i] = u(rng), b[i] = u(rng), c[i] = std::cos(0.01f * i), d[i] = u(rng), e[i] = u(rng),
      w[i] = pos(rng), o[i] = 0.0f;
      h[i] = scholar::bf16::from_float(a[i]);
    }
  }
};

using Body = void (*)(Data&);

void run(benchmark::State& state, size_t arrays, Body body) {
  Data data(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    body(data);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(arrays * data.n * sizeof(float)));
}

// Registers name/{scholar,scalar,eigen} at sizes 768 and 4096.
void add(const char* name, size_t arrays, Body ours, Body loop, Body eigen) {
  const std::pair<const char*, Body> impls[] = {
      {"scholar", ours}, {"scalar", loop}, {"eigen", eigen}};
  for (const auto& [impl, body] : impls) {
    const std::string full = std::string(name) + "/" + impl;
    benchmark::RegisterBenchmark(full.c_str(),
                                 [arrays, b = body](benchmark::State& st) { run(st, arrays, b); })
        ->Arg(768)
        ->Arg(4096);
  }
}

#define N D.n
#define A CArr(D.a.data(), N)
#define B CArr(D.b.data(), N)
#define O Arr(D.o.data(), N)

void register_all() {
  add(
      "add", 3, [](Data& D) { active().add(D.o.data(), D.a.data(), D.b.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] + D.b[i];
      },
      [](Data& D) { O = A + B; });
  add(
      "mul", 3, [](Data& D) { active().mul(D.o.data(), D.a.data(), D.b.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] * D.b[i];
      },
      [](Data& D) { O = A * B; });
  add(
      "scale", 2, [](Data& D) { active().scale(D.o.data(), D.a.data(), 0.5f, N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] * 0.5f;
      },
      [](Data& D) { O = A * 0.5f; });
  add(
      "axpy", 3, [](Data& D) { active().axpy(D.o.data(), 1e-3f, D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] += 1e-3f * D.a[i];
      },
      [](Data& D) { O += 1e-3f * A; });
  add(
      "dot", 2, [](Data& D) { benchmark::DoNotOptimize(active().dot(D.a.data(), D.b.data(), N)); },
      [](Data& D) {
        float s = 0;
        for (size_t i = 0; i < N; ++i) s += D.a[i] * D.b[i];
        benchmark::DoNotOptimize(s);
      },
      [](Data& D) { benchmark::DoNotOptimize(A.matrix().dot(B.matrix())); });
  add(
      "l2_squared", 2,
      [](Data& D) { benchmark::DoNotOptimize(active().l2_squared(D.a.data(), D.b.data(), N)); },
      [](Data& D) {
        float s = 0;
        for (size_t i = 0; i < N; ++i) s += (D.a[i] - D.b[i]) * (D.a[i] - D.b[i]);
        benchmark::DoNotOptimize(s);
      },
      [](Data& D) { benchmark::DoNotOptimize((A - B).matrix().squaredNorm()); });
  add(
      "sum", 1, [](Data& D) { benchmark::DoNotOptimize(active().sum(D.a.data(), N)); },
      [](Data& D) {
        float s = 0;
        for (size_t i = 0; i < N; ++i) s += D.a[i];
        benchmark::DoNotOptimize(s);
      },
      [](Data& D) { benchmark::DoNotOptimize(A.sum()); });
  add(
      "max", 1, [](Data& D) { benchmark::DoNotOptimize(active().max(D.a.data(), N)); },
      [](Data& D) {
        float m = D.a[0];  // (without NaN handling)
        for (size_t i = 1; i < N; ++i) m = D.a[i] > m ? D.a[i] : m;
        benchmark::DoNotOptimize(m);
      },
      [](Data& D) { benchmark::DoNotOptimize(A.maxCoeff<Eigen::PropagateNaN>()); });
  add(
      "softmax", 2, [](Data& D) { active().softmax(D.o.data(), D.a.data(), N); },
      [](Data& D) {
        float m = D.a[0];
        for (size_t i = 1; i < N; ++i) m = std::max(m, D.a[i]);
        float s = 0;
        for (size_t i = 0; i < N; ++i) s += (D.o[i] = std::exp(D.a[i] - m));
        for (size_t i = 0; i < N; ++i) D.o[i] /= s;
      },
      [](Data& D) {
        const float m = A.maxCoeff();
        O = (A - m).exp();
        O /= O.sum();
      });
  add(
      "log_softmax", 2, [](Data& D) { active().log_softmax(D.o.data(), D.a.data(), N); },
      [](Data& D) {
        float m = D.a[0];
        for (size_t i = 1; i < N; ++i) m = std::max(m, D.a[i]);
        float s = 0;
        for (size_t i = 0; i < N; ++i) s += std::exp(D.a[i] - m);
        const float l = m + std::log(s);
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] - l;
      },
      [](Data& D) {
        const float m = A.maxCoeff();
        const float l = m + std::log((A - m).exp().sum());
        O = A - l;
      });
  add(
      "layernorm_forward", 4,
      [](Data& D) {
        float mean;
        float rstd;
        active().layernorm_forward(D.o.data(), &mean, &rstd, D.a.data(), D.w.data(), D.b.data(), N,
                                   kEps);
      },
      [](Data& D) {
        float m = 0;
        for (size_t i = 0; i < N; ++i) m += D.a[i];
        m /= N;
        float v = 0;
        for (size_t i = 0; i < N; ++i) v += (D.a[i] - m) * (D.a[i] - m);
        const float r = 1.0f / std::sqrt(v / N + kEps);
        for (size_t i = 0; i < N; ++i) D.o[i] = (D.a[i] - m) * r * D.w[i] + D.b[i];
      },
      [](Data& D) {
        const float m = A.mean();
        const float r = 1.0f / std::sqrt((A - m).square().mean() + kEps);
        O = (A - m) * r * CArr(D.w.data(), N) + B;
      });
  add(
      "layernorm_backward", 7,
      [](Data& D) {
        active().layernorm_backward(D.o.data(), D.d.data(), D.e.data(), D.c.data(), D.a.data(),
                                    D.w.data(), 0.1f, 0.9f, N);
      },
      [](Data& D) {
        float gs = 0, gns = 0;
        for (size_t i = 0; i < N; ++i) {
          const float nn = (D.a[i] - 0.1f) * 0.9f, g = D.w[i] * D.c[i];
          gs += g;
          gns += g * nn;
        }
        gs /= N;
        gns /= N;
        for (size_t i = 0; i < N; ++i) {
          const float nn = (D.a[i] - 0.1f) * 0.9f, g = D.w[i] * D.c[i];
          D.o[i] += 0.9f * (g - gs - nn * gns);
          D.d[i] += D.c[i] * nn;
          D.e[i] += D.c[i];
        }
      },
      [](Data& D) {
        const auto nn = (A - 0.1f) * 0.9f;
        const auto g = CArr(D.w.data(), N) * CArr(D.c.data(), N);
        const float gm = g.mean();
        const float gnm = (g * nn).mean();
        O += 0.9f * (g - gm - nn * gnm);
        Arr(D.d.data(), N) += CArr(D.c.data(), N) * nn;
        Arr(D.e.data(), N) += CArr(D.c.data(), N);
      });
  add(
      "rmsnorm_forward", 3,
      [](Data& D) {
        float rstd;
        active().rmsnorm_forward(D.o.data(), &rstd, D.a.data(), D.w.data(), N, kEps);
      },
      [](Data& D) {
        float ms = 0;
        for (size_t i = 0; i < N; ++i) ms += D.a[i] * D.a[i];
        const float r = 1.0f / std::sqrt(ms / N + kEps);
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] * r * D.w[i];
      },
      [](Data& D) {
        const float r = 1.0f / std::sqrt(A.square().mean() + kEps);
        O = A * r * CArr(D.w.data(), N);
      });
  add(
      "rmsnorm_backward", 6,
      [](Data& D) {
        active().rmsnorm_backward(D.o.data(), D.d.data(), D.c.data(), D.a.data(), D.w.data(), 0.9f,
                                  N);
      },
      [](Data& D) {
        float gx = 0;
        for (size_t i = 0; i < N; ++i) gx += D.w[i] * D.c[i] * D.a[i];
        const float k = 0.9f * 0.9f * 0.9f * gx / N;
        for (size_t i = 0; i < N; ++i) {
          D.o[i] += 0.9f * D.w[i] * D.c[i] - D.a[i] * k;
          D.d[i] += D.a[i] * 0.9f * D.c[i];
        };
      },
      [](Data& D) {
        const auto wd = CArr(D.w.data(), N) * CArr(D.c.data(), N);
        const float k = 0.9f * 0.9f * 0.9f * (wd * A).mean();
        O += 0.9f * wd - A * k;
        Arr(D.d.data(), N) += A * 0.9f * CArr(D.c.data(), N);
      });
  add(
      "gelu_forward", 2, [](Data& D) { active().gelu_forward(D.o.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) {
          const float x = D.a[i];
          D.o[i] = 0.5f * x * (1.0f + std::tanh(kGeluK * (x + kGeluC * x * x * x)));
        };
      },
      [](Data& D) { O = 0.5f * A * (1.0f + (kGeluK * (A + kGeluC * A.cube())).tanh()); });
  add(
      "gelu_erf_forward", 2, [](Data& D) { active().gelu_erf_forward(D.o.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] * 0.5f * std::erfc(-0.70710678f * D.a[i]);
      },
      [](Data& D) { O = A * 0.5f * (-0.70710678f * A).erfc(); });
  add(
      "gelu_backward", 3,
      [](Data& D) { active().gelu_backward(D.o.data(), D.c.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) {
          const float x = D.a[i];
          const float t = std::tanh(kGeluK * (x + kGeluC * x * x * x));
          D.o[i] += D.c[i] *
                    (0.5f * (1 + t) + 0.5f * x * (1 - t * t) * kGeluK * (1 + 3 * kGeluC * x * x));
        };
      },
      [](Data& D) {
        Eigen::Map<Eigen::ArrayXf> t(D.e.data(), N);
        t = (kGeluK * (A + kGeluC * A.cube())).tanh();
        O += CArr(D.c.data(), N) * (0.5f * (1 + t) + 0.5f * A * (1 - t.square()) * kGeluK *
                                                         (1 + 3 * kGeluC * A.square()));
      });
  add(
      "silu_forward", 2, [](Data& D) { active().silu_forward(D.o.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] / (1.0f + std::exp(-D.a[i]));
      },
      [](Data& D) { O = A * A.logistic(); });
  add(
      "silu_backward", 3,
      [](Data& D) { active().silu_backward(D.o.data(), D.c.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) {
          const float s = 1.0f / (1.0f + std::exp(-D.a[i]));
          D.o[i] += D.c[i] * s * (1 + D.a[i] * (1 - s));
        };
      },
      [](Data& D) {
        Eigen::Map<Eigen::ArrayXf> s(D.e.data(), N);
        s = A.logistic();
        O += CArr(D.c.data(), N) * s * (1 + A * (1 - s));
      });
  add(
      "swiglu_forward", 3,
      [](Data& D) { active().swiglu_forward(D.o.data(), D.a.data(), D.b.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = D.a[i] / (1.0f + std::exp(-D.a[i])) * D.b[i];
      },
      [](Data& D) { O = A * A.logistic() * B; });
  add(
      "swiglu_backward", 5,
      [](Data& D) {
        active().swiglu_backward(D.o.data(), D.d.data(), D.c.data(), D.a.data(), D.b.data(), N);
      },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) {
          const float s = 1.0f / (1.0f + std::exp(-D.a[i]));
          D.o[i] += D.c[i] * D.b[i] * s * (1 + D.a[i] * (1 - s));
          D.d[i] += D.c[i] * D.a[i] * s;
        };
      },
      [](Data& D) {
        Eigen::Map<Eigen::ArrayXf> s(D.e.data(), N);
        s = A.logistic();
        O += CArr(D.c.data(), N) * B * s * (1 + A * (1 - s));
        Arr(D.d.data(), N) += CArr(D.c.data(), N) * A * s;
      });
  // RoPE on one vector of N values in the half layout (pairs (i, i + N/2)), angles given.
  add(
      "rope", 3,
      [](Data& D) {
        active().rope(D.o.data(), D.a.data(), D.c.data(), D.d.data(), N / 2,
                      scholar::kernels::RopeStyle::half, false);
      },
      [](Data& D) {
        const size_t P = N / 2;
        for (size_t i = 0; i < P; ++i) {
          const float a = D.a[i], b = D.a[i + P], c = D.c[i], s = D.d[i];
          D.o[i] = a * c - b * s;
          D.o[i + P] = a * s + b * c;
        }
      },
      [](Data& D) {
        const auto P = static_cast<Eigen::Index>(N / 2);
        const CArr a(D.a.data(), P), b(D.a.data() + P, P), c(D.c.data(), P), s(D.d.data(), P);
        Arr(D.o.data(), P) = a * c - b * s;
        Arr(D.o.data() + P, P) = a * s + b * c;
      });
  add(
      "f32_to_bf16", 1, [](Data& D) { active().f32_to_bf16(D.h.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.h[i] = scholar::bf16::from_float(D.a[i]);
      },
      [](Data& D) {
        Bf16Arr(reinterpret_cast<Eigen::bfloat16*>(D.h.data()), N) = A.cast<Eigen::bfloat16>();
      });
  add(
      "bf16_to_f32", 1, [](Data& D) { active().bf16_to_f32(D.o.data(), D.h.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i)
          D.o[i] = static_cast<float>(scholar::bf16::from_bits(D.h[i]));
      },
      [](Data& D) {
        O = Bf16Arr(reinterpret_cast<Eigen::bfloat16*>(D.h.data()), N).cast<float>();
      });
  add(
      "f32_to_f16", 1, [](Data& D) { active().f32_to_f16(D.h.data(), D.a.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.h[i] = scholar::f16::from_float(D.a[i]);
      },
      [](Data& D) {
        HalfArr(reinterpret_cast<Eigen::half*>(D.h.data()), N) = A.cast<Eigen::half>();
      });
  add(
      "f16_to_f32", 1, [](Data& D) { active().f16_to_f32(D.o.data(), D.h.data(), N); },
      [](Data& D) {
        for (size_t i = 0; i < N; ++i) D.o[i] = scholar::f16::to_float(D.h[i]);
      },
      [](Data& D) { O = HalfArr(reinterpret_cast<Eigen::half*>(D.h.data()), N).cast<float>(); });
}

#undef N
#undef A
#undef B
#undef O

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("scholar_isa", std::string(scholar::kernels::isa_name(active().isa)));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
