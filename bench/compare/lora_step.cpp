// A LoRA training step timed in scholar: the GPT-2 style model of train_step.cpp (vocab 8192,
// context 256, 6 layers, width 384, 6 heads, batch 8), LoRA r = 8, alpha 16 on the attention and
// MLP projections (c_attn, attn.c_proj, c_fc, mlp.c_proj), everything else frozen, AdamW on the
// adapters. --base q8_0 or q4_0 keeps the frozen projections quantized (QLoRA); --full trains every
// parameter instead (the same model, for the memory comparison). --model PATH trains LoRA on every
// linear layer of any model file instead (with --batch and --context), which is how memory is
// measured where the weights dominate it. Prints one JSON line: tokens/s, seconds per step, the
// process's peak resident memory, and the peak while training (measured from a reset after the
// model is set up, so a base quantized after loading counts as quantized).
// bench/compare/lora_step.py runs it beside PyTorch.
//   lora_step [--threads N] [--steps N] [--warmup N] [--base f32|q8_0|q4_0] [--full]
//             [--model PATH --batch N --context N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <malloc.h>

#include <fstream>
#include <memory>

#include "scholar/infer/model.hpp"
#include "scholar/nn/lora.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/parallel.hpp"
#include "scholar/system.hpp"
#include "scholar/tensor/tensor.hpp"

using namespace scholar;

namespace {
double status_mb(const char* key) {  // VmRSS or VmHWM from /proc/self/status
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::strlen(key))) / 1024.0;
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 1, steps = 5, warmup = 2;
  std::string base = "f32", model_path;
  bool full = false;
  int64_t B = 8, T = 256;
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
    else if (!std::strcmp(argv[i], "--model"))
      model_path = argv[++i];
    else if (!std::strcmp(argv[i], "--batch"))
      B = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--context"))
      T = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
      return 2;
    }
  }
  set_num_threads(threads);
  std::unique_ptr<nn::TransformerLM> owned =
      model_path.empty()
          ? std::make_unique<nn::TransformerLM>(nn::TransformerConfig::gpt2(8192, T, 6, 384, 6), 1)
          : infer::Model::load(model_path)->to_module();
  nn::TransformerLM& model = *owned;
  const int64_t V = model.config().vocab_size;
  if (!full) {
    nn::LoraConfig lc;
    lc.r = 8;
    lc.lora_alpha = 16;
    if (model_path.empty())
      lc.target_modules = {"c_attn", "c_proj", "c_fc"};  // c_proj: attention's and the MLP's
    else
      lc.target_modules = {"all-linear"};
    nn::apply_lora(model, lc);
    if (base != "f32") {  // the whole frozen base: every linear layer and the tables
      nn::quantize_linears(model, *parse_weight_type(base), ".*");
      nn::quantize_embeddings(model, *parse_weight_type(base));
    }
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
  // Blocks freed while setting up (the tensor cache's, then malloc's) go back to the system, and
  // VmHWM restarts from the current size.
  empty_storage_cache();
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
  for (int i = 0; i < warmup; ++i) step();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double dt =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double peak = static_cast<double>(ru.ru_maxrss) / 1024.0;
  std::printf(
      "{\"impl\": \"scholar\", \"threads\": %d, \"base\": \"%s\", \"full\": %s, \"tokens_per_s\": "
      "%.1f, \"s_per_step\": %.4f, \"peak_rss_mb\": %.1f, \"training_peak_mb\": %.1f, "
      "\"loss\": %.4f, \"trainable\": %lld, \"system\": \"%s\"}\n",
      threads, base.c_str(), full ? "true" : "false", static_cast<double>(B * T) / dt, dt, peak,
      status_mb("VmHWM:"), loss, static_cast<long long>(model.trainable_parameter_count()),
      system_info().c_str());
  return 0;
}
