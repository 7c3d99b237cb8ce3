// A data-parallel run in which rank 1 fails at step 3, for the tests that check how the other
// ranks stop (tests/CMakeLists.txt runs it under mpiexec -np 2 and matches what it prints):
//   mpi_faults hang    rank 1 stops responding: rank 0 times out (SCHOLAR_MPI_TIMEOUT) and says so
//   mpi_faults throw   rank 1's objective throws: it says so, and the job ends
//   mpi_faults die     rank 1's process exits: the job ends
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "scholar/train/communicator.hpp"
#include "scholar/train/trainer.hpp"

using namespace scholar;

namespace {

// The language-model loss, except that rank 1's third call throws.
class Failing final : public train::Objective {
 public:
  explicit Failing(int rank) : rank_(rank) {}
  autograd::Var loss(nn::TransformerLM& model, const train::Batch& batch, Generator* dropout,
                     train::LossParts& parts) override {
    if (rank_ == 1 && ++calls_ == 3) fail<FormatError>("a corrupt batch in shard 1 (test)");
    return lm_.loss(model, batch, dropout, parts);
  }
  std::string name() const override { return "lm"; }

 private:
  train::LmObjective lm_;
  int rank_;
  int calls_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || (std::strcmp(argv[1], "hang") && std::strcmp(argv[1], "throw") &&
                    std::strcmp(argv[1], "die"))) {
    std::fprintf(stderr, "usage: mpi_faults hang|throw|die\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
    auto world = train::mpi_world();
    std::vector<int32_t> tokens;
    for (int i = 0; i < 4000; ++i) tokens.push_back((i * 7 + i / 13) % 50);
    train::TokenDataset data(tokens, std::vector<int32_t>(tokens.begin(), tokens.begin() + 400));
    nn::TransformerLM model(nn::TransformerConfig::gpt2(64, 32, 1, 32, 4), 1);
    train::TrainerOptions o;
    o.batch_size = 2;
    o.context = 16;
    o.max_steps = 10;
    o.eval_every = 0;
    o.progress = false;
    train::Trainer trainer(model, data, o);
    trainer.communicator = world.get();
    Failing failing(world->rank());
    if (mode == "throw") trainer.objective = &failing;
    trainer.on_step = [&](const train::StepInfo& info) {
      if (info.step != 3 || world->rank() != 1) return;
      if (mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(300));
      if (mode == "die") std::_Exit(3);
    };
    trainer.fit();
    std::printf("rank %d finished\n", world->rank());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_faults: %s\n", e.what());
    return 1;
  }
}
