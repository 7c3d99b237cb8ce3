// One training configuration timed in scholar, AdamW, forward + backward + clipping + step:
//   small       GPT-2 style, vocab 8192, context 256, 6 layers x 384, 6 heads, batch 8 (default)
//   gpt2-small  GPT-2 small (124M): vocab 50257, 12 layers x 768, 12 heads, batch 4 x 256
//   llama       Llama style: vocab 32000, 8 x 512, 8 heads (4 KV), SwiGLU 1408, batch 4 x 512
// Prints one JSON line: tokens/s, seconds per step and peak resident memory. The matrix products
// run at the precision SCHOLAR_MATMUL_PRECISION names (f32 or bf16). bench/compare/train_step.py
// runs it beside the same model in PyTorch.
//   train_step [--config NAME] [--threads N] [--steps N] [--warmup N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/parallel.hpp"
#include "scholar/system.hpp"
#include "step_configs.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  int threads = 1, steps = 5, warmup = 2;
  std::string config = "small";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--config"))
      config = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--warmup"))
      warmup = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--config small|gpt2-small|llama] [--threads N] [--steps N] "
                   "[--warmup N]\n",
                   argv[0]);
      return 2;
    }
  }
  set_num_threads(threads);
  const auto sc = bench::step_config(config);
  if (!sc) {
    std::fprintf(stderr, "unknown --config %s (small, gpt2-small or llama)\n", config.c_str());
    return 2;
  }
  const int64_t B = sc->batch, T = sc->context, V = sc->vocab;
  const nn::TransformerConfig& cfg = sc->model;
  nn::TransformerLM model(cfg, 1);
  optim::AdamW opt(model.named_parameters(),
                   {.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .weight_decay = 0.1f});
  Generator gen(2);
  Tensor<int32_t> x = Tensor<int32_t>::empty({B, T}), y = Tensor<int32_t>::empty({B, T});
  for (int64_t i = 0; i < B * T; ++i) {
    x.data()[i] = static_cast<int32_t>(gen.below(V));
    y.data()[i] = static_cast<int32_t>(gen.below(V));
  }
  double loss = 0;
  auto step = [&] {
    opt.zero_grad();
    autograd::Var l = model.loss(x, y);
    loss = l.value().item();
    l.backward();
    optim::clip_grad_norm(model.parameters(), 1.0);
    opt.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double dt =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"impl\": \"scholar\", \"config\": \"%s\", \"threads\": %d, \"tokens_per_s\": %.1f, "
      "\"s_per_step\": %.4f, "
      "\"peak_rss_mb\": %.1f, \"loss\": %.4f, \"params\": %lld, \"system\": \"%s\"}\n",
      config.c_str(), threads, static_cast<double>(B * T) / dt, dt,
      static_cast<double>(ru.ru_maxrss) / 1024.0, loss,
      static_cast<long long>(model.parameter_count()), system_info().c_str());
  return 0;
}
