// Learning pair merges, shared by the BPE and WordPiece trainers: words are sequences of symbol
// ids with counts; the most frequent adjacent pair is merged into a new symbol, again and again.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace scholar::text::detail {

/// A distinct pre-tokenized word: its symbols and how often it occurs.
struct MergeWord {
  std::vector<int32_t> sym;
  int64_t count = 0;
};

/// What a merge made: the id of the merged symbol, and whether it counts towards `wanted` (a
/// merge that forms a symbol the vocabulary already has still rewrites the words, but adds no
/// token).
struct Merged {
  int32_t symbol;
  bool counts = true;
};

/// Merges the most frequent adjacent pair of `words` (ties: the smaller (left, right) ids) while
/// fewer than `wanted` merges have counted and the pair occurs at least min_frequency times.
/// merge(left, right) names the new symbol; progress(done, wanted), if set, is called now and
/// then and at the end. Returns the number of merges that counted. Deterministic for a given
/// order of `words`.
int64_t learn_merges(std::vector<MergeWord>& words, int64_t wanted, int64_t min_frequency,
                     const std::function<Merged(int32_t left, int32_t right)>& merge,
                     const std::function<void(int64_t, int64_t)>& progress);

}  // namespace scholar::text::detail
