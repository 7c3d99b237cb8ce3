// Data-parallel training step through the Trainer, for bench/compare/distributed.py:
//   distributed [--config small|gpt2-small] [--steps N] [--warmup N] [--shard]
// Run it as one process (SCHOLAR_NUM_THREADS=2) or under `mpiexec -np R` (one thread per rank):
// the global batch is the same either way (each rank takes batch / R rows), so the runs do the
// same work. Rank 0 prints one JSON line: tokens/s over all ranks, seconds per step, the mean
// seconds per step that a rank waited for gradient averages (and weight broadcasts when sharded),
// peak resident memory and optimizer state per rank (the largest of the ranks), the gradient
// bytes averaged per step, and the loss.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "scholar/parallel.hpp"
#include "scholar/system.hpp"
#include "scholar/train/communicator.hpp"
#include "scholar/train/trainer.hpp"
#include "step_configs.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  int steps = 5, warmup = 2;
  bool shard = false;
  std::string config = "small";
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!std::strcmp(argv[i], "--config") && has_value)
      config = argv[++i];
    else if (!std::strcmp(argv[i], "--steps") && has_value)
      steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--warmup") && has_value)
      warmup = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--shard"))
      shard = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--config small|gpt2-small] [--steps N] [--warmup N] [--shard]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    std::unique_ptr<train::Communicator> world;
    if (train::launched_by_mpi()) world = train::mpi_world();
    train::Communicator& comm = world ? *world : train::single_process();
    const auto sc = bench::step_config(config);
    if (!sc || config == "llama") {
      std::fprintf(stderr, "unknown --config %s (small or gpt2-small)\n", config.c_str());
      return 2;
    }
    const int64_t B = sc->batch, T = sc->context, V = sc->vocab;
    const nn::TransformerConfig& cfg = sc->model;
    if (B % comm.size() != 0) {
      std::fprintf(stderr, "the batch of %lld rows does not split over %d ranks\n",
                   static_cast<long long>(B), comm.size());
      return 2;
    }
    // Random tokens: the step's cost does not depend on what they say.
    Generator gen(2);
    std::vector<int32_t> tokens(static_cast<size_t>(1 << 20));
    for (auto& t : tokens) t = static_cast<int32_t>(gen.below(static_cast<uint64_t>(V)));
    train::TokenDataset data(tokens, std::vector<int32_t>(tokens.begin(), tokens.begin() + 4096));
    nn::TransformerLM model(cfg, 1);
    train::TrainerOptions o;
    o.batch_size = B / comm.size();
    o.context = T;
    o.max_steps = warmup + steps;
    o.warmup_steps = 1;
    o.eval_every = 0;
    o.progress = false;
    train::Trainer trainer(model, data, o);
    trainer.communicator = &comm;
    trainer.distributed.shard_optimizer = shard;
    std::chrono::steady_clock::time_point t0;
    double comm_seconds = 0, loss = 0;
    trainer.on_step = [&](const train::StepInfo& info) {
      if (info.step == warmup) t0 = std::chrono::steady_clock::now();
      if (info.step > warmup) comm_seconds += info.comm_seconds;
      loss = info.loss;
    };
    trainer.fit();
    const double dt =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    // The largest per-rank figures, and the mean wait.
    double rss = static_cast<double>(ru.ru_maxrss) / 1024.0,
           state = static_cast<double>(trainer.optimizer_state_bytes()) / 1e6;
    for (const std::string& each :
         comm.allgather(std::to_string(rss) + " " + std::to_string(state))) {
      double r = 0, s = 0;
      if (std::sscanf(each.c_str(), "%lf %lf", &r, &s) == 2) {
        rss = std::max(rss, r);
        state = std::max(state, s);
      }
    }
    std::vector<double> wait{comm_seconds / steps};
    comm.allreduce_sum(wait);
    int64_t trainable = 0;
    for (const auto& p : model.parameters()) trainable += p.value().numel();
    if (comm.rank() == 0)
      std::printf(
          "{\"impl\": \"scholar\", \"config\": \"%s\", \"ranks\": %d, \"threads_per_rank\": %d, "
          "\"sharded\": %s, \"tokens_per_s\": %.1f, \"s_per_step\": %.4f, "
          "\"comm_s_per_step\": %.4f, \"peak_rss_mb_per_rank\": %.1f, "
          "\"optimizer_state_mb_per_rank\": %.1f, \"allreduce_mb_per_step\": %.1f, "
          "\"loss\": %.4f, \"summary\": \"%s\"}\n",
          config.c_str(), comm.size(), num_threads(), shard ? "true" : "false",
          static_cast<double>(B * T) / dt, dt, wait[0] / comm.size(), rss, state,
          static_cast<double>(trainable) * 4 / 1e6, loss, trainer.distributed_summary().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed: %s\n", e.what());
    return 1;
  }
}
