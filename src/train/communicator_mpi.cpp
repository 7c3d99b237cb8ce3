// The MPI communicator (built with SCHOLAR_MPI=ON): MPI_COMM_WORLD, duplicated so scholar's
// messages never meet the application's. Every collective is non-blocking underneath and waited
// for by polling, so a rank that died or hangs gives a CommunicatorError after the timeout
// instead of a process that waits forever.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "scholar/train/communicator.hpp"

namespace scholar::train {

namespace {

constexpr int64_t kMaxChunk = INT_MAX / 2;  // elements per MPI call (counts are ints)

std::once_flag g_init_once;
std::atomic<bool> g_any_failed{false};  // a communicator failed: end the job, do not finalize

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // MPI_Finalize waits for the other ranks, which a failure left stuck elsewhere.
  if (g_any_failed.load()) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
}

void ensure_initialized() {
  std::call_once(g_init_once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      scholar::fail<CommunicatorError>("mpi_world: MPI_Init_thread failed");
    std::atexit(finalize_at_exit);
  });
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) scholar::fail<CommunicatorError>("mpi_world: MPI was already finalized");
}

std::string error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(code, text, &n);
  return std::string(text, static_cast<size_t>(n));
}

class Mpi final : public Communicator {
 public:
  class Pending final : public Request {
   public:
    Pending(Mpi& owner, std::string what) : owner_(owner), what_(std::move(what)) {}
    ~Pending() override {
      // An abandoned request is waited for (a collective cannot be cancelled), unless the
      // communicator failed: then the job is being stopped anyway.
      if (!owner_.failed()) try {
          wait();
        } catch (...) {
        }
    }
    bool test() override {
      int done = 0;
      MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
      return done != 0;
    }
    void wait() override { owner_.wait_all(requests_, what_); }
    std::vector<MPI_Request> requests_;

   private:
    Mpi& owner_;
    std::string what_;
  };

  Mpi() {
    ensure_initialized();
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    if (const char* t = std::getenv("SCHOLAR_MPI_TIMEOUT")) {
      char* end = nullptr;
      const double v = std::strtod(t, &end);
      if (end == t || *end != '\0' || !(v > 0))
        scholar::fail<ValueError>("SCHOLAR_MPI_TIMEOUT must be a positive number of seconds, got '",
                                  t, "'");
      timeout_ = v;
    }
  }
  ~Mpi() override {
    if (failed()) {
      std::fflush(stderr);
      MPI_Abort(comm_, 1);  // the other ranks cannot be met again: end the job
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  void on_failure() override { g_any_failed.store(true); }

  void allreduce_sum(std::span<float> data) override { start_allreduce_sum(data)->wait(); }
  void allreduce_sum(std::span<double> data) override {
    check_usable("allreduce");
    start("allreduce", data.size(), [&](size_t at, int n, MPI_Request* r) {
      check(MPI_Iallreduce(MPI_IN_PLACE, data.data() + at, n, MPI_DOUBLE, MPI_SUM, comm_, r),
            "MPI_Iallreduce");
    })->wait();
  }
  std::unique_ptr<Request> start_allreduce_sum(std::span<float> data) override {
    check_usable("allreduce");
    return start("allreduce", data.size(), [&](size_t at, int n, MPI_Request* r) {
      check(MPI_Iallreduce(MPI_IN_PLACE, data.data() + at, n, MPI_FLOAT, MPI_SUM, comm_, r),
            "MPI_Iallreduce");
    });
  }
  void broadcast(std::span<float> data, int root) override { start_broadcast(data, root)->wait(); }
  std::unique_ptr<Request> start_broadcast(std::span<float> data, int root) override {
    check_usable("broadcast");
    check_rank(root, "broadcast");
    return start("broadcast", data.size(), [&](size_t at, int n, MPI_Request* r) {
      check(MPI_Ibcast(data.data() + at, n, MPI_FLOAT, root, comm_, r), "MPI_Ibcast");
    });
  }
  void send(std::span<const float> data, int dest) override {
    check_usable("send");
    check_rank(dest, "send");
    start("send", data.size(), [&](size_t at, int n, MPI_Request* r) {
      check(MPI_Isend(data.data() + at, n, MPI_FLOAT, dest, kTag, comm_, r), "MPI_Isend");
    })->wait();
  }
  void recv(std::span<float> data, int source) override {
    check_usable("recv");
    check_rank(source, "recv");
    start("receive", data.size(), [&](size_t at, int n, MPI_Request* r) {
      check(MPI_Irecv(data.data() + at, n, MPI_FLOAT, source, kTag, comm_, r), "MPI_Irecv");
    })->wait();
  }
  std::vector<std::string> allgather(const std::string& mine) override {
    check_usable("allgather");
    if (mine.size() > static_cast<size_t>(INT_MAX / std::max(size_, 1)))
      scholar::fail<ValueError>("Communicator::allgather: ", mine.size(), " bytes is too much");
    std::vector<int> lengths(static_cast<size_t>(size_));
    int len = static_cast<int>(mine.size());
    {
      Pending p(*this, "allgather of lengths");
      p.requests_.emplace_back();
      check(
          MPI_Iallgather(&len, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_, &p.requests_.back()),
          "MPI_Iallgather");
      p.wait();
    }
    std::vector<int> offsets(lengths.size());
    int total = 0;
    for (size_t r = 0; r < lengths.size(); ++r) {
      offsets[r] = total;
      total += lengths[r];
    }
    std::string all(static_cast<size_t>(total), '\0');
    {
      Pending p(*this, "allgather");
      p.requests_.emplace_back();
      check(MPI_Iallgatherv(mine.data(), len, MPI_CHAR, all.data(), lengths.data(), offsets.data(),
                            MPI_CHAR, comm_, &p.requests_.back()),
            "MPI_Iallgatherv");
      p.wait();
    }
    std::vector<std::string> out;
    for (size_t r = 0; r < lengths.size(); ++r)
      out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(lengths[r])));
    return out;
  }
  void barrier() override {
    check_usable("barrier");
    Pending p(*this, "barrier");
    p.requests_.emplace_back();
    check(MPI_Ibarrier(comm_, &p.requests_.back()), "MPI_Ibarrier");
    p.wait();
  }
  std::string describe() const override {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(version, &n);
    std::string v(version, static_cast<size_t>(n));
    if (const auto cut = v.find(','); cut != std::string::npos) v.resize(cut);
    return "MPI (" + v + "), " + std::to_string(size_) + (size_ == 1 ? " rank" : " ranks");
  }

  // Polls until every request completes. MPI moves the data of a non-blocking collective inside
  // its test calls, one round at a time, so the poll is tight (yielding the core between tests,
  // in case another process wants it) for the first seconds; a wait longer than that is for a
  // rank that is slow or gone, and sleeps a millisecond between tests. Past the timeout: failed,
  // and thrown.
  void wait_all(std::vector<MPI_Request>& requests, const std::string& what) {
    if (requests.empty()) return;
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (uint64_t polls = 0;; ++polls) {
      int done = 0;
      const int rc = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                                 MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) {
        Communicator::fail(what + " failed: " + error_string(rc));
        scholar::fail<CommunicatorError>("rank ", rank_, " of ", size_, ": ", what,
                                         " failed: ", error_string(rc));
      }
      if (done) return;
      if (polls % 256 != 255) {
        std::this_thread::yield();
        continue;
      }
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (waited > timeout_) {
        char msg[512];
        std::snprintf(msg, sizeof msg,
                      "%s did not complete within %.0f s: another rank died, hangs, or is not "
                      "running the same steps (SCHOLAR_MPI_TIMEOUT sets the limit)",
                      what.c_str(), timeout_);
        Communicator::fail(msg);
        scholar::fail<CommunicatorError>("rank ", rank_, " of ", size_, ": ", msg);
      }
      if (waited > kSpinSeconds) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  static constexpr int kTag = 7301;
  static constexpr double kSpinSeconds = 5;
  static std::string describe_op(const char* op, size_t n) {
    return std::string("MPI ") + op + " of " + std::to_string(n) + " values";
  }
  // One request per chunk of at most kMaxChunk elements (MPI counts are ints), started by
  // start_chunk(offset, count, request).
  template <class StartChunk>
  std::unique_ptr<Pending> start(const char* op, size_t n, StartChunk start_chunk) {
    auto p = std::make_unique<Pending>(*this, describe_op(op, n));
    for (size_t at = 0; at < n; at += kMaxChunk) {
      p->requests_.emplace_back();
      start_chunk(at, static_cast<int>(std::min<size_t>(kMaxChunk, n - at)), &p->requests_.back());
    }
    return p;
  }
  void check(int rc, const char* call) {
    if (rc != MPI_SUCCESS) {
      Communicator::fail(std::string(call) + " failed: " + error_string(rc));
      scholar::fail<CommunicatorError>(call, " failed: ", error_string(rc));
    }
  }
  void check_rank(int r, const char* what) const {
    if (r < 0 || r >= size_)
      scholar::fail<ValueError>("Communicator::", what, ": rank ", r, " is outside [0, ", size_,
                                ")");
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_available() noexcept {
  return true;
}

std::unique_ptr<Communicator> mpi_world() {
  return std::make_unique<Mpi>();
}

}  // namespace scholar::train
