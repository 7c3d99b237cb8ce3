// The KV cache of a Session: cells with positions and sequence sets (the bookkeeping), and the K
// and V rows of every layer stored in one weight type (f32, f16, bf16, q8_0 or q4_0: llama.cpp's
// -ctk/-ctv), converted through the weight type's kernel row. Internal to infer.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/infer/model.hpp"
#include "scholar/kernels/kernels.hpp"

namespace scholar::infer::detail {

class KvCache {
 public:
  /// `layers` x `cells` rows of `width` values for K and for V, stored as `type` (ValueError if a
  /// head of `head_dim` values is not a whole number of the type's blocks, or if the cache cannot
  /// be allocated).
  KvCache(int64_t layers, int64_t cells, int64_t width, int64_t head_dim, WeightType type);

  int64_t size() const noexcept { return n_; }
  /// One past the last cell in use (cells at or after it are empty).
  int64_t hi() const noexcept { return hi_; }
  WeightType type() const noexcept { return type_; }
  /// Bytes of K and V storage.
  size_t bytes() const noexcept { return k_.size() + v_.size(); }

  // --- bookkeeping ----------------------------------------------------------------------------
  int64_t pos(int64_t c) const { return pos_[static_cast<size_t>(c)]; }
  uint64_t seqs(int64_t c) const { return seq_[static_cast<size_t>(c)]; }
  /// Free cells, counting up to `enough` (cheap when there are plenty).
  int64_t free_cells(int64_t enough) const;
  /// Takes the first free cell for a token of sequence `seq` at `position`; returns it.
  int64_t take(int32_t seq, int64_t position);
  int64_t used() const;
  int64_t next_pos(int32_t seq) const;
  void clear();
  /// Drops positions [p0, p1) of the sequences in `mask`.
  void remove(uint64_t mask, int64_t p0, int64_t p1);
  /// Adds `dst` to the cells of `src` in [p0, p1) (after dropping dst's own there).
  void copy(int32_t src, int32_t dst, int64_t p0, int64_t p1);
  void keep_only(int32_t seq);

  // --- rows -------------------------------------------------------------------------------------
  /// Stores one cell's K and V rows (width floats each), converting to the cache type.
  void store(int64_t layer, int64_t cell, const float* k, const float* v);
  /// Head `head`'s K (or V) values for cells [0, cells) of a layer as f32 rows of head_dim values:
  /// in place for an f32 cache (rows `stride` = width apart), else converted into `scratch`
  /// (cells * head_dim floats, stride head_dim).
  const float* keys(int64_t layer, int64_t head, int64_t cells, float* scratch,
                    int64_t& stride) const;
  const float* values(int64_t layer, int64_t head, int64_t cells, float* scratch,
                      int64_t& stride) const;

  // --- state ------------------------------------------------------------------------------------
  void save(std::string& out) const;
  /// Reads what save() wrote (FormatError for a state of another shape or type).
  void load(std::string_view bytes, size_t& at, int64_t context_length, int max_seq);

 private:
  const float* view(const std::vector<uint8_t>& store, int64_t layer, int64_t head, int64_t cells,
                    float* scratch, int64_t& stride) const;
  uint8_t* row(std::vector<uint8_t>& s, int64_t layer, int64_t cell) {
    return s.data() + (static_cast<size_t>(layer * n_ + cell)) * row_bytes_;
  }
  const uint8_t* row(const std::vector<uint8_t>& s, int64_t layer, int64_t cell) const {
    return s.data() + (static_cast<size_t>(layer * n_ + cell)) * row_bytes_;
  }
  void shrink();

  int64_t layers_, n_, width_, head_dim_;
  WeightType type_;
  size_t row_bytes_;
  const kernels::WeightKernels* kern_;
  std::vector<uint8_t> k_, v_;
  std::vector<int64_t> pos_;
  std::vector<uint64_t> seq_;
  int64_t hi_ = 0;
  int64_t free_hint_ = 0;  // every cell below it is in use: take() searches from here
};

}  // namespace scholar::infer::detail
