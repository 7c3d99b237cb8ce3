// The out-of-line part of scholar/error.hpp: reporting a broken invariant.
#include "scholar/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace scholar::detail {

void assert_fail(const char* condition, const char* file, int line, const std::string& message) {
  // A bug, not a user error: the process state can no longer be trusted, so say where and stop.
  std::fprintf(stderr, "scholar: internal check failed: %s at %s:%d%s%s\n", condition, file, line,
               message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace scholar::detail
