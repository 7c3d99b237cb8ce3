// A LoRA training step timed in scholar: the GPT-2 style model of train_step.cpp (vocab 8192,
// context 256, 6 layers, width 384, 6 heads, batch 8), LoRA r = 8, alpha 16 on the attention and
// MLP projections (c_attn, attn.c_proj, c_fc, mlp.c_proj), everything else frozen, AdamW on the
// adapters. --base q8_0 or q4_0 keeps the frozen projections quantized (QLoRA); --full trains every
// parameter instead (the same model, for the memory comparison). Prints one JSON line: tokens/s,
// seconds per step and peak resident memory. bench/compare/lora_step.py runs it beside PyTorch.
//   lora_step [--threads N] [--steps N] [--warmup N] [--base f32|q8_0|q4_0] [--full]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "scholar/nn/lora.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/parallel.hpp"
#include "scholar/system.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  int threads = 1, steps = 5, warmup = 2;
  std::string base = "f32";
  bool full = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--full")) {
      full = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [--threads N] [--steps N] [--warmup N] [--base T] [--full]\n",
                   argv[0]);
      return 2;
    }
    if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--warmup"))
      warmup = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--base"))
      base = argv[++i];
    else {
      std::fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
      return 2;
    }
  }
  set_num_threads(threads);
  const int64_t B = 8, T = 256, V = 8192;
  const auto cfg = nn::TransformerConfig::gpt2(V, T, 6, 384, 6);
  nn::TransformerLM model(cfg, 1);
  if (!full) {
    nn::LoraConfig lc;
    lc.r = 8;
    lc.lora_alpha = 16;
    lc.target_modules = {"c_attn", "c_proj", "c_fc"};  // c_proj: attention's and the MLP's
    nn::apply_lora(model, lc);
    if (base != "f32") nn::quantize_linears(model, *parse_weight_type(base));
  }
  optim::AdamW opt(model.named_parameters(),
                   {.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .weight_decay = 0.0f});
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
      "{\"impl\": \"scholar\", \"threads\": %d, \"base\": \"%s\", \"full\": %s, \"tokens_per_s\": "
      "%.1f, \"s_per_step\": %.4f, \"peak_rss_mb\": %.1f, \"loss\": %.4f, \"trainable\": %lld, "
      "\"system\": \"%s\"}\n",
      threads, base.c_str(), full ? "true" : "false", static_cast<double>(B * T) / dt, dt,
      static_cast<double>(ru.ru_maxrss) / 1024.0, loss,
      static_cast<long long>(model.trainable_parameter_count()), system_info().c_str());
  return 0;
}
