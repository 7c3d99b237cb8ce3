// The Communicator's common part, the single-process communicator, and (in builds without MPI)
// the MPI entry points that say MPI is missing.
#include "scholar/train/communicator.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace scholar::train {

void Communicator::set_timeout_seconds(double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds))
    scholar::fail<ValueError>("Communicator: timeout must be a positive number of seconds, got ",
                              seconds);
  timeout_ = seconds;
}

void Communicator::fail(const std::string& message) {
  if (failed_) return;
  failed_ = true;
  failure_ = message;
  if (size() > 1)
    std::fprintf(stderr, "scholar: rank %d of %d: %s; stopping all ranks\n", rank(), size(),
                 message.c_str());
  on_failure();
}

void Communicator::check_usable(const char* what) const {
  if (failed_)
    scholar::fail<CommunicatorError>(what, ": the communicator failed earlier (", failure_, ")");
}

namespace {

// Rank 0 of 1: every collective is the identity.
class SingleProcess final : public Communicator {
 public:
  struct Done final : Request {
    bool test() override { return true; }
    void wait() override {}
  };
  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  std::unique_ptr<Request> start_allreduce_sum(std::span<float>) override {
    return std::make_unique<Done>();
  }
  void broadcast(std::span<float>, int root) override { check_root(root); }
  std::unique_ptr<Request> start_broadcast(std::span<float>, int root) override {
    check_root(root);
    return std::make_unique<Done>();
  }
  void send(std::span<const float>, int dest) override {
    scholar::fail<ValueError>("Communicator::send: rank ", dest,
                              " does not exist in a single process");
  }
  void recv(std::span<float>, int source) override {
    scholar::fail<ValueError>("Communicator::recv: rank ", source,
                              " does not exist in a single process");
  }
  std::vector<std::string> allgather(const std::string& mine) override { return {mine}; }
  void barrier() override {}
  std::string describe() const override { return "single process"; }

 private:
  static void check_root(int root) {
    if (root != 0)
      scholar::fail<ValueError>("Communicator::broadcast: root ", root,
                                " is not a rank of a single process");
  }
};

}  // namespace

Communicator& single_process() {
  static SingleProcess world;
  return world;
}

bool launched_by_mpi() noexcept {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

#ifndef SCHOLAR_HAVE_MPI
bool mpi_available() noexcept {
  return false;
}

std::unique_ptr<Communicator> mpi_world() {
  scholar::fail<ValueError>(
      "mpi_world: this scholar was built without MPI (configure it with -DSCHOLAR_MPI=ON, "
      "after scripts/deps.sh mpi)");
}
#endif

}  // namespace scholar::train
