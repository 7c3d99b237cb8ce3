// The two kinds of checks: user errors throw scholar::Error subclasses with what and where; broken
// invariants (SCHOLAR_ASSERT) stop the process with the condition and the place.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <string>

#include "scholar/error.hpp"

using namespace scholar;

namespace {

// Runs fn in a child process; returns its stderr and whether it stopped abnormally (SIGABRT; under
// ThreadSanitizer, whose abort handler exits with its own status instead).
std::pair<std::string, bool> run_child(void (*fn)()) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    fn();
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const bool abnormal = (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
                        (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  return {out, abnormal};
}

}  // namespace

TEST_CASE("fail throws the requested Error subclass with the pieces of its message", "[error]") {
  CHECK_THROWS_AS(fail<ShapeError>("x"), ShapeError);
  CHECK_THROWS_AS(fail<FormatError>("x"), Error);
  CHECK_THROWS_WITH(fail<ValueError>("top_k must be >= 0, got ", -3, " (", 0.5, ")"),
                    "top_k must be >= 0, got -3 (0.5)");
}

TEST_CASE("SCHOLAR_ASSERT passes silently and aborts with the condition and place", "[error]") {
  int evaluated = 0;
  SCHOLAR_ASSERT(++evaluated == 1, "never shown");
  CHECK(evaluated == 1);
  const auto [err, aborted] = run_child([] {
    const int rows = 3;
    SCHOLAR_ASSERT(rows % 8 == 0, "rows ", rows, " are not a multiple of 8");
  });
  CHECK(aborted);
  CHECK_THAT(err, Catch::Contains("internal check failed: rows % 8 == 0") &&
                      Catch::Contains("test_error.cpp") &&
                      Catch::Contains("rows 3 are not a multiple of 8"));
  const auto [err2, aborted2] = run_child([] { SCHOLAR_ASSERT(1 + 1 == 3); });
  CHECK(aborted2);
  CHECK_THAT(err2, Catch::Contains("1 + 1 == 3"));
}

TEST_CASE("SCHOLAR_DEBUG_ASSERT evaluates nothing when NDEBUG is set", "[error]") {
  int evaluated = 0;
  SCHOLAR_DEBUG_ASSERT(++evaluated > 0);
#ifdef NDEBUG
  CHECK(evaluated == 0);
#else
  CHECK(evaluated == 1);
#endif
}
