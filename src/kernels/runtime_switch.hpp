// A process-wide on/off choice of kernel engine (SCHOLAR_AMX, SCHOLAR_F32_GEMM): read from its
// environment variable at first use, and settable from code afterwards (for benchmarks and tests).
#pragma once

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "scholar/error.hpp"

namespace scholar::kernels::detail {

class RuntimeSwitch {
 public:
  /// `env` holds on_word or 1 (on), off_word or 0 (off); unset or empty means on.
  constexpr RuntimeSwitch(const char* env, std::string_view on_word, std::string_view off_word)
      : env_(env), on_word_(on_word), off_word_(off_word) {}

  /// The current setting; throws ValueError naming the variable if its value is neither word.
  bool on() {
    int s = state_.load(std::memory_order_relaxed);
    if (s < 0) {
      s = from_env() ? 1 : 0;
      state_.store(s, std::memory_order_relaxed);
    }
    return s == 1;
  }

  void set(bool on) { state_.store(on ? 1 : 0, std::memory_order_relaxed); }

 private:
  bool from_env() const {
    const char* env = std::getenv(env_);
    if (env == nullptr || *env == 0) return true;
    const std::string_view v(env);
    if (v == on_word_ || v == "1") return true;
    if (v == off_word_ || v == "0") return false;
    fail<ValueError>(env_, "='", v, "': expected ", on_word_, ", ", off_word_, ", 1 or 0");
  }

  const char* env_;
  std::string_view on_word_, off_word_;
  std::atomic<int> state_{-1};  // -1: not yet read from the environment
};

}  // namespace scholar::kernels::detail
