// Checks shared by the losses: every target is in [0, V) or ignore_index, and at least one is kept.
#pragma once

#include <cstdint>

#include "scholar/error.hpp"
#include "scholar/tensor/tensor.hpp"

namespace scholar::autograd::detail {

/// The number of targets (contiguous, N of them) that are not ignore_index. IndexError naming the
/// position for a target outside [0, V); ValueError if every target is ignored. `op` starts the
/// messages ("cross_entropy").
inline int64_t kept_targets(const int32_t* t, int64_t N, int64_t V, int32_t ignore_index,
                            const char* op) {
  int64_t kept = 0;
  for (int64_t r = 0; r < N; ++r) {
    const int32_t id = t[r];
    if (id == ignore_index) continue;
    if (id < 0 || id >= V)
      fail<IndexError>(op, ": target ", id, " at position ", r, " is outside [0, ", V,
                       ") and is not ignore_index (", ignore_index, ")");
    ++kept;
  }
  if (kept == 0) fail<ValueError>(op, ": every target is ignore_index (", ignore_index, ")");
  return kept;
}

}  // namespace scholar::autograd::detail
