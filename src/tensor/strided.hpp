// A loop over the elements of up to three same-shaped strided views, row by row.
//
// The views' dimensions are first simplified: size-1 dimensions are dropped and neighbours that are
// laid out back to back in every view are merged, so a contiguous tensor becomes one long row and a
// broadcast bias add becomes rows of a contiguous operand against a stride-0 or contiguous one.
// Callers then handle one innermost row at a time, usually with a SIMD kernel.
#pragma once

#include <cstdint>

#include "scholar/parallel.hpp"
#include "scholar/tensor/shape.hpp"

namespace scholar::detail {

template <int N>
struct StridedLoop {
  int rank = 0;                      // after simplification (>= 1)
  int64_t size[kMaxDims] = {};       // innermost last
  int64_t stride[N][kMaxDims] = {};  // per operand, in elements
  int64_t rows = 1;                  // product of all sizes but the innermost
  int64_t inner = 1;                 // innermost size

  StridedLoop(const Shape& shape, const Strides* const (&strides)[N]) {
    for (int d = 0; d < shape.rank(); ++d) {
      if (shape[d] == 1) continue;
      if (rank > 0) {
        bool merge = true;
        for (int k = 0; k < N; ++k)
          merge = merge && stride[k][rank - 1] == (*strides[k])[d] * shape[d];
        if (merge) {
          size[rank - 1] *= shape[d];
          for (int k = 0; k < N; ++k) stride[k][rank - 1] = (*strides[k])[d];
          continue;
        }
      }
      size[rank] = shape[d];
      for (int k = 0; k < N; ++k) stride[k][rank] = (*strides[k])[d];
      ++rank;
    }
    if (rank == 0) {  // a single element
      rank = 1;
      size[0] = 1;
      for (int k = 0; k < N; ++k) stride[k][0] = 1;
    }
    for (int d = 0; d < shape.rank(); ++d)
      if (shape[d] == 0) size[0] = 0;
    inner = size[rank - 1];
    rows = 1;
    for (int d = 0; d + 1 < rank; ++d) rows *= size[d];
    if (inner == 0) rows = 0;
  }

  /// Calls f(offsets, inner, inner_strides) for rows [begin, end), offsets in elements per operand.
  template <class F>
  void for_rows(int64_t begin, int64_t end, F&& f) const {
    if (begin >= end) return;
    int64_t counter[kMaxDims] = {};
    int64_t off[N] = {};
    int64_t rem = begin;
    for (int d = rank - 2; d >= 0; --d) {
      counter[d] = rem % size[d];
      rem /= size[d];
      for (int k = 0; k < N; ++k) off[k] += counter[d] * stride[k][d];
    }
    int64_t inner_stride[N];
    for (int k = 0; k < N; ++k) inner_stride[k] = stride[k][rank - 1];
    for (int64_t r = begin; r < end; ++r) {
      f(static_cast<const int64_t*>(off), inner, static_cast<const int64_t*>(inner_stride));
      for (int d = rank - 2; d >= 0; --d) {  // odometer step
        for (int k = 0; k < N; ++k) off[k] += stride[k][d];
        if (++counter[d] < size[d]) break;
        for (int k = 0; k < N; ++k) off[k] -= stride[k][d] * size[d];
        counter[d] = 0;
      }
    }
  }

  /// for_rows over all rows, split over the thread pool when there are more than `grain` elements.
  template <class F>
  void run(F&& f, int64_t grain_elements = int64_t{1} << 16) const {
    if (rows == 0) return;
    const int64_t row_grain = inner >= grain_elements ? 1 : grain_elements / inner;
    parallel_for(0, rows, row_grain, [&](int64_t b, int64_t e) { for_rows(b, e, f); });
  }
};

}  // namespace scholar::detail
