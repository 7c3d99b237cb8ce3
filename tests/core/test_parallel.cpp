// Thread pools: every task runs once, errors come back, nesting and concurrent callers do not
// deadlock, resizing works, and callers with pools of their own run at the same time.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "scholar/error.hpp"
#include "scholar/parallel.hpp"

using namespace scholar;

TEST_CASE("run calls every task exactly once, on several threads", "[parallel]") {
  ThreadPool pool(3);
  CHECK(pool.size() == 3);
  std::vector<std::atomic<int>> hits(1000);
  std::mutex m;
  std::set<std::thread::id> threads;
  pool.run(1000, [&](int64_t i) {
    hits[static_cast<size_t>(i)]++;
    std::lock_guard lock(m);
    threads.insert(std::this_thread::get_id());
  });
  for (auto& h : hits) REQUIRE(h == 1);
  CHECK(threads.size() >= 1);
  pool.run(0, [](int64_t) { FAIL("no tasks expected"); });
}

TEST_CASE("parallel_for covers the range once with contiguous chunks", "[parallel]") {
  ThreadPool pool(2);
  for (int64_t n : {0, 1, 5, 100, 12345}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int> empty_chunks{0};  // (Catch's assertions are not for worker threads)
    pool.parallel_for(0, n, 7, [&](int64_t b, int64_t e) {
      if (b >= e) empty_chunks++;
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    CHECK(empty_chunks == 0);
    for (auto& h : hits) REQUIRE(h == 1);
  }
}

TEST_CASE("the first exception is rethrown after all tasks finish", "[parallel]") {
  ThreadPool pool(2);
  std::atomic<int> done{0};
  CHECK_THROWS_WITH(pool.run(50,
                             [&](int64_t i) {
                               done++;
                               if (i == 13) throw ValueError("task 13 failed");
                             }),
                    "task 13 failed");
  CHECK(done == 50);
  // The pool still works afterwards.
  std::atomic<int> again{0};
  pool.run(10, [&](int64_t) { again++; });
  CHECK(again == 10);
}

TEST_CASE("nested loops and concurrent callers run without deadlock", "[parallel]") {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  pool.run(8, [&](int64_t) { pool.run(8, [&](int64_t) { total++; }); });
  CHECK(total == 64);
  std::atomic<int> sum{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int k = 0; k < 50; ++k) pool.run(20, [&](int64_t) { sum++; });
    });
  for (auto& c : callers) c.join();
  CHECK(sum == 4 * 50 * 20);
}

TEST_CASE("the global pool can be resized", "[parallel]") {
  set_num_threads(1);
  CHECK(num_threads() == 1);
  set_num_threads(2);
  CHECK(num_threads() == 2);
  CHECK_THROWS_AS(set_num_threads(-1), ValueError);
  CHECK_THROWS_AS(ThreadPool(0), ValueError);
  set_num_threads(0);
  CHECK(num_threads() == static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST_CASE("back-to-back short loops never hand a late worker a stale task", "[parallel]") {
  // Workers that wake after the caller has already finished a loop alone must not pick up an index
  // of the next loop with the previous loop's task (a use-after-scope that once crashed here).
  ThreadPool pool(3);
  int64_t total = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::atomic<int64_t> local{0};
    pool.run(2, [&](int64_t i) { local += i + 1; });
    total += local;
  }
  CHECK(total == 20000 * 3);
}

TEST_CASE("without spinning every loop still runs every task once", "[parallel]") {
  const int before = spin_microseconds();
  CHECK(before >= 0);
  set_spin_microseconds(0);
  CHECK(spin_microseconds() == 0);
  ThreadPool pool(3);
  int64_t total = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::atomic<int64_t> local{0};
    pool.run(5, [&](int64_t i) { local += i + 1; });
    total += local;
  }
  CHECK(total == 2000 * 15);
  CHECK_THROWS_WITH(set_spin_microseconds(-1), Catch::Contains("set_spin_microseconds"));
  set_spin_microseconds(before);
  CHECK(spin_microseconds() == before);
}

TEST_CASE("PoolScope makes a pool the thread's current one, nested and per thread", "[parallel]") {
  ThreadPool a(2), b(1);
  CHECK(&thread_pool() == &default_pool());
  {
    PoolScope sa(a);
    CHECK(&thread_pool() == &a);
    {
      PoolScope sb(b);
      CHECK(&thread_pool() == &b);
      PoolScope none(static_cast<ThreadPool*>(nullptr));  // null: keeps the current one
      CHECK(&thread_pool() == &b);
    }
    CHECK(&thread_pool() == &a);
    ThreadPool* seen = nullptr;
    std::thread([&] { seen = &thread_pool(); }).join();  // other threads are not affected
    CHECK(seen == &default_pool());
  }
  CHECK(&thread_pool() == &default_pool());
}

TEST_CASE("two callers with pools of their own each get all their threads at once", "[parallel]") {
  // Each caller runs a loop of two tasks on its own two-thread pool. Every task waits (up to 10 s)
  // until all four have started: that can only happen if both pools run both their tasks at the
  // same time. (With one shared pool the second caller would run inline, one task after the
  // other, and the wait would time out.)
  ThreadPool a(2), b(2);
  std::atomic<int> arrived{0}, together{0};
  std::mutex m;
  std::set<std::thread::id> ids_a, ids_b;
  auto caller = [&](ThreadPool& pool, std::set<std::thread::id>& ids) {
    PoolScope scope(pool);
    parallel_for(0, 2, 1, [&](int64_t, int64_t) {
      {
        std::lock_guard lock(m);
        ids.insert(std::this_thread::get_id());
      }
      arrived++;
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (arrived.load() < 4 && std::chrono::steady_clock::now() < end)
        std::this_thread::yield();
      if (arrived.load() == 4) together++;
    });
  };
  std::thread ta([&] { caller(a, ids_a); }), tb([&] { caller(b, ids_b); });
  ta.join();
  tb.join();
  CHECK(together == 4);
  CHECK(ids_a.size() == 2);
  CHECK(ids_b.size() == 2);
  for (const auto& id : ids_a) CHECK(ids_b.count(id) == 0);
}
