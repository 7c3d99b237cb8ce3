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
  /// `env` holds on_word or 1 (on), off_word or 0 (off); unset or empty leaves the choice to the
  /// caller: on() is then true, on_or(d) is d.
  constexpr RuntimeSwitch(const char* env, std::string_view on_word, std::string_view off_word)
      : env_(env), on_word_(on_word), off_word_(off_word) {}

  /// The current setting; throws ValueError naming the variable if its value is neither word.
  bool on() { return on_or(true); }

  /// The setting if the variable or set() gave one, else `unset`.
  bool on_or(bool unset) {
    int s = state_.load(std::memory_order_relaxed);
    if (s == kUnread) {
      s = from_env();
      state_.store(s, std::memory_order_relaxed);
    }
    return s == kUnset ? unset : s == kOn;
  }

  void set(bool on) { state_.store(on ? kOn : kOff, std::memory_order_relaxed); }

 private:
  static constexpr int kUnread = -1, kOff = 0, kOn = 1, kUnset = 2;

  int from_env() const {
    const char* env = std::getenv(env_);
    if (env == nullptr || *env == 0) return kUnset;
    const std::string_view v(env);
    if (v == on_word_ || v == "1") return kOn;
    if (v == off_word_ || v == "0") return kOff;
    fail<ValueError>(env_, "='", v, "': expected ", on_word_, ", ", off_word_, ", 1 or 0");
  }

  const char* env_;
  std::string_view on_word_, off_word_;
  std::atomic<int> state_{kUnread};
};

}  // namespace scholar::kernels::detail
