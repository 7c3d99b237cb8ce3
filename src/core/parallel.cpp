// Thread pools: sleeping workers, fork-join loops, the caller takes part; the default pool and
// the per-thread current pool.
#include "scholar/parallel.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "scholar/error.hpp"

namespace scholar {

namespace {
// True on a pool worker, and on a caller while it runs its share of a loop: a parallel call made
// there runs inline instead of waiting for workers that are all busy with the outer loop.
thread_local bool tls_inside_pool = false;

// How long a worker keeps checking for the next loop before it sleeps. Token-by-token inference
// dispatches a loop every 10-100 us, and a prefill or an encoder batch a loop every few hundred;
// waking a sleeping thread costs 50-200 us here (a virtual machine's idle core) and, worse, puts
// the two sides out of step: a late worker makes the caller sleep at the end of its loop, whose
// late wake-up makes the worker sleep before the next one. 500 us keeps the threads ready between
// those loops (two-thread bf16 sentence embedding: 190-200 -> 226-233 sentences/s against 50 us)
// and gives the core back half a millisecond after the last loop. The caller, whose loop's last
// tasks are still running on workers, is on the critical path and waits kCallerSpinFactor times as
// long before it sleeps. set_spin_microseconds() and SCHOLAR_SPIN_US change it; 0 never spins.
constexpr int kDefaultSpinUs = 500;
constexpr int kCallerSpinFactor = 4;

int spin_from_env() {
  const char* env = std::getenv("SCHOLAR_SPIN_US");
  if (env == nullptr || *env == '\0') return kDefaultSpinUs;
  char* end = nullptr;
  const long us = std::strtol(env, &end, 10);
  if (*end != '\0' || us < 0 || us > 1000000)
    fail<ValueError>("SCHOLAR_SPIN_US='", env, "': expected an integer in [0, 1000000]");
  return static_cast<int>(us);
}

std::atomic<int>& spin_us() {
  static std::atomic<int> us{spin_from_env()};
  return us;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Calls ready() until it returns true or `factor` times the spin time passes; returns its last
// answer.
template <class Ready>
bool spin_until(Ready&& ready, int factor = 1) {
  const int us = spin_us().load(std::memory_order_relaxed) * factor;
  if (us == 0) return ready();
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (int i = 0;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > end) return ready();
  }
}
}  // namespace

struct ThreadPool::Impl {
  std::mutex mutex;                 // guards everything below except `next` and `pending`
  std::condition_variable work_cv;  // workers wait here for a new generation
  std::condition_variable done_cv;  // the caller waits here for the loop to finish
  std::mutex busy;                  // held by the one caller whose loop the workers run
  std::vector<std::thread> workers;
  uint64_t generation = 0;             // bumped once per loop
  std::atomic<uint64_t> published{0};  // generation, readable without the mutex (for spinning)
  std::atomic<bool> stopping{false};
  const std::function<void(int64_t)>* task = nullptr;
  int64_t n_tasks = 0;
  std::atomic<int64_t> next{0};     // next task index to hand out
  std::atomic<int64_t> pending{0};  // tasks not yet finished
  int active = 0;                   // workers holding a snapshot of the current loop
  bool stop = false;
  std::exception_ptr error;

  // Takes task indices until none are left. Runs on workers and on the caller.
  void work(const std::function<void(int64_t)>* fn, int64_t n) {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
      }
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void worker_main() {
    tls_inside_pool = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t)>* fn;
      int64_t n;
      spin_until([&] {
        return stopping.load(std::memory_order_acquire) ||
               published.load(std::memory_order_acquire) != seen;
      });
      {
        std::unique_lock lock(mutex);
        work_cv.wait(lock, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
        fn = task;
        n = n_tasks;
        ++active;  // the caller may not retire this loop while we hold its snapshot
      }
      work(fn, n);
      {
        std::lock_guard lock(mutex);
        --active;
        if (active == 0) done_cv.notify_all();
      }
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : impl_(std::make_unique<Impl>()) {
  if (n_threads < 1) fail<ValueError>("ThreadPool: n_threads must be >= 1, got ", n_threads);
  impl_->workers.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) impl_->workers.emplace_back([this] { impl_->worker_main(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stop = true;
    impl_->stopping.store(true, std::memory_order_release);
  }
  impl_->work_cv.notify_all();
  for (auto& t : impl_->workers) t.join();
}

int ThreadPool::size() const noexcept {
  return static_cast<int>(impl_->workers.size()) + 1;
}

void ThreadPool::run(int64_t n_tasks, const std::function<void(int64_t)>& task) {
  if (n_tasks <= 0) return;
  auto run_inline = [&] {
    for (int64_t i = 0; i < n_tasks; ++i) task(i);
  };
  if (n_tasks == 1 || impl_->workers.empty() || tls_inside_pool) return run_inline();
  std::unique_lock busy(impl_->busy, std::try_to_lock);
  if (!busy.owns_lock()) return run_inline();  // another thread's loop owns the workers

  Impl& s = *impl_;
  {
    std::unique_lock lock(s.mutex);
    // A worker that woke late for the previous loop may still hold its snapshot (and will find no
    // task left); resetting `next` under it would hand it an index of this loop with the old task.
    s.done_cv.wait(lock, [&] { return s.active == 0; });
    s.task = &task;
    s.n_tasks = n_tasks;
    s.next.store(0, std::memory_order_relaxed);
    s.pending.store(n_tasks, std::memory_order_relaxed);
    s.error = nullptr;
    ++s.generation;
    s.published.store(s.generation, std::memory_order_release);
  }
  s.work_cv.notify_all();
  tls_inside_pool = true;
  s.work(&task, n_tasks);
  tls_inside_pool = false;
  spin_until([&] { return s.pending.load(std::memory_order_acquire) == 0; }, kCallerSpinFactor);
  std::exception_ptr error;
  {
    std::unique_lock lock(s.mutex);
    s.done_cv.wait(lock, [&] { return s.active == 0 && s.pending.load() == 0; });
    s.task = nullptr;
    error = std::exchange(s.error, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

namespace {

int default_thread_count() {
  if (const char* env = std::getenv("SCHOLAR_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096)
      fail<ValueError>("SCHOLAR_NUM_THREADS='", env, "': expected an integer in [1, 4096]");
    return static_cast<int>(n);
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool> g_pool;
std::atomic<ThreadPool*> g_pool_ptr{nullptr};

}  // namespace

thread_local ThreadPool* tls_pool = nullptr;  // the innermost PoolScope's pool on this thread

ThreadPool& thread_pool() {
  if (tls_pool != nullptr) return *tls_pool;
  return default_pool();
}

PoolScope::PoolScope(ThreadPool& pool) noexcept : previous_(tls_pool) {
  tls_pool = &pool;
}
PoolScope::PoolScope(ThreadPool* pool) noexcept : previous_(tls_pool) {
  if (pool != nullptr) tls_pool = pool;
}
PoolScope::~PoolScope() {
  tls_pool = previous_;
}

ThreadPool& default_pool() {
  if (ThreadPool* p = g_pool_ptr.load(std::memory_order_acquire)) return *p;
  std::lock_guard lock(g_pool_mutex);
  if (!g_pool) {
    g_pool = std::make_unique<ThreadPool>(default_thread_count());
    g_pool_ptr.store(g_pool.get(), std::memory_order_release);
  }
  return *g_pool;
}

void set_num_threads(int n) {
  if (n < 0) fail<ValueError>("set_num_threads: n must be >= 0 (0 = hardware threads), got ", n);
  if (n == 0) {
    const unsigned hw = std::thread::hardware_concurrency();
    n = hw == 0 ? 1 : static_cast<int>(hw);
  }
  std::lock_guard lock(g_pool_mutex);
  if (g_pool && g_pool->size() == n) return;
  g_pool_ptr.store(nullptr, std::memory_order_release);
  g_pool.reset();  // joins the old workers before the new ones start
  g_pool = std::make_unique<ThreadPool>(n);
  g_pool_ptr.store(g_pool.get(), std::memory_order_release);
}

int num_threads() {
  return default_pool().size();
}

void set_spin_microseconds(int us) {
  if (us < 0 || us > 1000000)
    fail<ValueError>("set_spin_microseconds: expected [0, 1000000] microseconds, got ", us);
  spin_us().store(us, std::memory_order_relaxed);
}

int spin_microseconds() {
  return spin_us().load(std::memory_order_relaxed);
}

}  // namespace scholar
