// scholar/train/communicator.hpp: the collective operations data-parallel training needs.
//
// A Communicator connects the ranks (processes) of one training run. The Trainer uses it to give
// each rank its rows of every batch, to average gradients, to shard optimizer state and to let
// rank 0 alone write logs and checkpoints. The default is a single process (rank 0 of 1), whose
// collectives return their input: a library built without MPI, or a run without mpirun, works
// exactly as before.
//
//   auto world = train::mpi_world();           // MPI_COMM_WORLD (ValueError if built without MPI)
//   train::Trainer trainer(model, data, options, &tokenizer);
//   trainer.communicator = world.get();         // batch_size is per rank
//   trainer.fit();                              // $ mpirun -np 4 ./my_trainer
//
// Every collective is called by all ranks in the same order. A collective that does not complete
// within timeout_seconds (a rank died or hangs) throws CommunicatorError on the ranks that wait,
// and marks the communicator failed: its later collectives throw at once, and destroying it ends
// the whole job (MPI_Abort) rather than waiting forever for the missing rank.
//
// Thread-safety: one thread at a time per communicator (the Trainer calls it from the thread that
// runs fit()).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scholar/error.hpp"

namespace scholar::train {

/// A collective that timed out, or a communicator that an earlier failure left unusable.
class CommunicatorError : public Error {
 public:
  using Error::Error;
};

/// The ranks of a data-parallel run and the collectives between them.
class Communicator {
 public:
  /// A collective started by start_allreduce_sum(), finished by wait().
  class Request {
   public:
    virtual ~Request() = default;
    /// Lets the transfer progress; true once it is complete (then wait() returns at once).
    virtual bool test() = 0;
    /// Blocks until complete (CommunicatorError after the communicator's timeout).
    virtual void wait() = 0;
  };

  virtual ~Communicator() = default;
  /// This process's rank, in [0, size()).
  virtual int rank() const noexcept = 0;
  /// The number of ranks (1 for a single process).
  virtual int size() const noexcept = 0;
  /// Replaces every element by its sum over all ranks (blocking).
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  /// Starts an element-wise sum over all ranks of `data` in place; `data` must stay alive and
  /// untouched until the request completes.
  virtual std::unique_ptr<Request> start_allreduce_sum(std::span<float> data) = 0;
  /// Copies root's `data` into every rank's `data` (same length everywhere).
  virtual void broadcast(std::span<float> data, int root) = 0;
  /// Starts a broadcast of root's `data` (as start_allreduce_sum, for several at once).
  virtual std::unique_ptr<Request> start_broadcast(std::span<float> data, int root) = 0;
  /// Sends `data` to rank `dest`, which receives it with recv(.., this rank) (blocking).
  virtual void send(std::span<const float> data, int dest) = 0;
  /// Receives what rank `source` sends with send() into `data` (same length; blocking).
  virtual void recv(std::span<float> data, int source) = 0;
  /// Every rank's string, in rank order, on every rank (they may differ in length).
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
  /// Waits until every rank has called it.
  virtual void barrier() = 0;
  /// "single process", or "MPI (Open MPI v4.1.4), 2 ranks".
  virtual std::string describe() const = 0;

  /// Seconds a collective may wait for the other ranks before CommunicatorError (default 600,
  /// or SCHOLAR_MPI_TIMEOUT). Long enough for rank 0 to write a checkpoint meanwhile.
  double timeout_seconds() const noexcept { return timeout_; }
  void set_timeout_seconds(double seconds);
  /// Marks the communicator failed (after an error that only this rank saw, so the others cannot
  /// be met in the next collective): prints "scholar: rank R of N: <message>; stopping all ranks"
  /// to stderr. Later collectives throw CommunicatorError; destroying an MPI communicator then
  /// ends the job instead of waiting at MPI_Finalize.
  void fail(const std::string& message);
  bool failed() const noexcept { return failed_; }

 protected:
  /// CommunicatorError if the communicator failed earlier.
  void check_usable(const char* what) const;
  /// Called once by fail(), after the message is printed (the MPI communicator remembers, so that
  /// the process ends the job at exit even if the communicator is never destroyed).
  virtual void on_failure() {}
  double timeout_ = 600;
  bool failed_ = false;
  std::string failure_;
};

/// The single-process communicator: rank 0 of 1; collectives return their input.
Communicator& single_process();

/// True if this scholar was built with MPI (SCHOLAR_MPI=ON).
bool mpi_available() noexcept;

/// True if this process was started by mpirun/mpiexec or srun (Open MPI's, MPICH's or Slurm's
/// environment variables say so), whether or not scholar was built with MPI.
bool launched_by_mpi() noexcept;

/// A communicator over (a duplicate of) MPI_COMM_WORLD; each call makes a new one. Initializes
/// MPI (MPI_Init_thread, funneled) unless the application already did, and then finalizes it at
/// exit. ValueError if scholar was built without MPI.
std::unique_ptr<Communicator> mpi_world();

}  // namespace scholar::train
