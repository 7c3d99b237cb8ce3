// One distillation step timed in scholar, beside a plain training step of the same student. GPT-2
// style student 2 x 128 (4 heads) and teacher 6 x 384 (6 heads), vocabulary 8192, batch 16 x 128,
// AdamW. Prints one JSON line. bench/compare/distill_step.py runs it beside PyTorch.
//   distill_step --mode plain|cache|live [--threads N] [--steps N] [--warmup N] [--k 32]
//     plain  student forward + cross-entropy + backward + AdamW (the reference step)
//     cache  the same with autograd::distill_loss against top-K soft labels read from a
//            soft-label cache file (built first, not timed)
//     live   the teacher's forward (infer::ModelTeacher: the inference engine) + the student's
//            step with distill_loss on the full logits; also reports the teacher's share
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "scholar/distill/distill.hpp"
#include "scholar/infer/teacher.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/parallel.hpp"
#include "scholar/system.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  int threads = 1, steps = 5, warmup = 2, k = 32;
  std::string mode = "plain";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--warmup"))
      warmup = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--k"))
      k = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--mode"))
      mode = argv[i + 1];
    else {
      std::fprintf(stderr,
                   "usage: %s --mode plain|cache|live [--threads N] [--steps N] [--warmup N] "
                   "[--k N]\n",
                   argv[0]);
      return 2;
    }
  }
  if (mode != "plain" && mode != "cache" && mode != "live") {
    std::fprintf(stderr, "distill_step: unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  set_num_threads(threads);
  const int64_t B = 16, T = 128, V = 8192;
  nn::TransformerLM student(nn::TransformerConfig::gpt2(V, T, 2, 128, 4), 1);
  optim::AdamW opt(student.named_parameters(),
                   {.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .weight_decay = 0.1f});
  // Data: random tokens, as many windows as the steps use.
  const int n_batches = warmup + steps;
  Generator gen(2);
  std::vector<int32_t> tokens(static_cast<size_t>(n_batches * B * T + 1));
  for (auto& t : tokens) t = static_cast<int32_t>(gen.below(V));
  const train::TokenDataset data(tokens, {});

  std::unique_ptr<nn::TransformerLM> teacher_lm;
  std::shared_ptr<const infer::Model> teacher_model;
  std::unique_ptr<infer::ModelTeacher> teacher;
  if (mode != "plain") {
    teacher_lm =
        std::make_unique<nn::TransformerLM>(nn::TransformerConfig::gpt2(V, T, 6, 384, 6), 3);
    teacher_model = infer::Model::from_module(*teacher_lm);
    teacher_lm.reset();
    teacher = std::make_unique<infer::ModelTeacher>(teacher_model, B * T);
  }
  std::unique_ptr<distill::SoftLabelCache> cache;
  const std::string cache_path = std::filesystem::temp_directory_path() /
                                 ("scholar_distill_step_" + std::to_string(::getpid()) + ".slc");
  if (mode == "cache") {
    distill::SoftLabelCache::build(*teacher, data, train::Split::train, T, cache_path,
                                   {.k = k, .temperature = 2.0f, .batch = B, .progress = false});
    cache = std::make_unique<distill::SoftLabelCache>(distill::SoftLabelCache::open(cache_path));
  }
  const autograd::DistillOptions kd{.temperature = 2.0f, .alpha = 0.5f};
  double loss = 0, teacher_seconds = 0;
  int batch_index = 0;
  auto step = [&] {
    std::vector<int64_t> which;
    for (int64_t b = 0; b < B; ++b) which.push_back(batch_index * B + b);
    ++batch_index;
    const train::Batch batch = data.windows_at(train::Split::train, T, which);
    opt.zero_grad();
    autograd::Var l;
    if (mode == "plain") {
      l = student.loss(batch.inputs, batch.targets);
    } else if (mode == "cache") {
      const autograd::SoftTargets soft = cache->lookup(batch.windows);
      l = autograd::distill_loss(student.forward(batch.inputs), soft, batch.targets, kd);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      const Tensor<float> t = teacher->logits(batch.inputs);
      teacher_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      l = autograd::distill_loss(student.forward(batch.inputs), autograd::SoftTargets::full(t),
                                 batch.targets, kd);
    }
    loss = l.value().item();
    l.backward();
    optim::clip_grad_norm(student.parameters(), 1.0);
    opt.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  teacher_seconds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double dt =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  if (cache) std::filesystem::remove(cache_path);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"impl\": \"scholar\", \"mode\": \"%s\", \"threads\": %d, \"tokens_per_s\": %.1f, "
      "\"s_per_step\": %.4f, \"teacher_s_per_step\": %.4f, \"peak_rss_mb\": %.1f, \"loss\": %.4f, "
      "\"system\": \"%s\"}\n",
      mode.c_str(), threads, static_cast<double>(B * T) / dt, dt, teacher_seconds / steps,
      static_cast<double>(ru.ru_maxrss) / 1024.0, loss, system_info().c_str());
  return 0;
}
