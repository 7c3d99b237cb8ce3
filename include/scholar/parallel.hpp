// scholar/parallel.hpp: thread pools, owned by the caller or the default one.
//
// All of scholar's parallel work runs on a ThreadPool. An application that does not care uses the
// default pool (sized by set_num_threads, SCHOLAR_NUM_THREADS, or the number of hardware threads).
// An application that does (a server with several sessions, an index build beside a chat) creates
// its own pools and hands one to each session, trainer or index call (SessionOptions::pool,
// TrainerOptions::pool, PoolScope): each gets the threads it was given, at the same time.
//
//   ThreadPool chat(2), indexing(1);
//   infer::Session s(model, {.pool = &chat});    // decodes on `chat`
//   { PoolScope use(indexing); hnsw.add_batch(...); }   // builds on `indexing`
//
// The calling thread takes part in the work, so a pool of n threads starts n - 1 workers. After a
// loop, workers watch for the next one for at most 500 microseconds (set_spin_microseconds,
// SCHOLAR_SPIN_US; 0 never spins), then sleep on a condition variable: token-by-token inference
// and prompt or encoder batches, which dispatch a loop every few tens to hundreds of microseconds,
// never pay for a wake-up, and an idle pool gives its cores back half a millisecond after its last
// loop. A caller whose loop's last tasks still run on workers waits four times as long before it
// sleeps. OpenBLAS is held to one thread and called from
// inside the pools' tasks, so BLAS and scholar never oversubscribe the cores.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

namespace scholar {

/// A fixed-size pool of worker threads that run fork-join loops (they spin briefly between loops,
/// then sleep).
///
/// Thread-safety: run() and parallel_for() may be called from any thread. One loop runs at a time:
/// a call made while the pool is busy with another caller's loop, or from inside one of the pool's
/// own tasks, runs inline on the calling thread (so nested parallel loops never deadlock). Give
/// concurrent users pools of their own.
class ThreadPool {
 public:
  /// Starts a pool of n_threads (>= 1) threads, counting the caller: n_threads - 1 workers.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Number of threads that take part in a loop, the caller included.
  int size() const noexcept;

  /// Calls task(i) once for every i in [0, n_tasks), spread over the pool; returns when all are
  /// done. If tasks throw, the first exception is rethrown here after the others finish.
  void run(int64_t n_tasks, const std::function<void(int64_t)>& task);

  /// Splits [begin, end) into at most size() contiguous chunks of at least `grain` items and calls
  /// body(chunk_begin, chunk_end) for each. Runs inline when the range is smaller than 2 * grain.
  template <class Body>
  void parallel_for(int64_t begin, int64_t end, int64_t grain, Body&& body) {
    const int64_t n = end - begin;
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = n / grain;
    if (chunks > size()) chunks = size();
    if (chunks <= 1) {
      body(begin, end);
      return;
    }
    run(chunks, [&](int64_t c) {
      const int64_t b = begin + n * c / chunks;
      const int64_t e = begin + n * (c + 1) / chunks;
      body(b, e);
    });
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The default pool (created on first use).
ThreadPool& default_pool();

/// The pool that parallel work started on this thread runs on: the pool of the innermost PoolScope
/// alive on this thread, else the default pool. Every parallel loop inside scholar uses it.
ThreadPool& thread_pool();

/// Makes `pool` this thread's pool (thread_pool()) until the scope ends; scopes nest. Sessions and
/// trainers given a pool open one around each call, so their kernels run on it.
///
/// Thread-safety: a scope affects only the thread that created it; destroy it on that thread.
class PoolScope {
 public:
  explicit PoolScope(ThreadPool& pool) noexcept;
  /// A null pool leaves the current one in place.
  explicit PoolScope(ThreadPool* pool) noexcept;
  ~PoolScope();
  PoolScope(const PoolScope&) = delete;
  PoolScope& operator=(const PoolScope&) = delete;

 private:
  ThreadPool* previous_;
};

/// Resizes the default pool to n threads (n >= 1; 0 means the number of hardware threads). Must
/// not be called while another thread is running work on the default pool.
void set_num_threads(int n);

/// Threads in the default pool.
int num_threads();

/// How long (microseconds, in [0, 1000000]) pool threads keep checking for the next loop before
/// they sleep (a caller waits four times as long for the end of its loop); default 500, or
/// SCHOLAR_SPIN_US. 0 never spins: every loop then wakes sleeping threads, which costs speed
/// (two-thread decoding of the 124M benchmark model measured F32 77 against 86 tokens/s with
/// 50 us, Q8_0 152 against 245; two-thread bf16 sentence embedding 169 against 190-200 with 50 us
/// and 226-233 with 500 us) but never takes a core another busy thread of the application wants.
/// Applies to every pool at once; safe to call from any thread at any time.
void set_spin_microseconds(int us);
int spin_microseconds();

/// Shorthand for thread_pool().parallel_for(begin, end, grain, body): the current pool.
template <class Body>
void parallel_for(int64_t begin, int64_t end, int64_t grain, Body&& body) {
  thread_pool().parallel_for(begin, end, grain, std::forward<Body>(body));
}

}  // namespace scholar
