// scholar/rag/fusion.hpp: merging ranked lists from several retrievers (hybrid search).
//
// Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009) scores each id by the ranks it
// reaches in the lists, not by the retrievers' scores, so a BM25 list and a vector-search list
// (whose scores have nothing in common) combine without calibration:
//
//   score(d) = sum over the lists i that contain d of weight_i / (k + rank_i(d)),  rank from 1
//
//   std::vector<uint64_t> lexical = ids of bm25.search(q, 50), best first;
//   std::vector<uint64_t> dense = labels of hnsw.search(embed(q), 50), nearest first;
//   auto fused = rag::reciprocal_rank_fusion({lexical, dense}, {.weights = {1.0, 2.0}});
//
// Thread-safety: a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

namespace scholar::rag {

/// How reciprocal_rank_fusion weighs the lists.
struct FusionOptions {
  /// The constant added to every rank: larger values flatten the difference between the first
  /// ranks and the later ones. 60 in the paper and in most systems. Finite and >= 0.
  double k = 60;
  /// One weight per list (finite, >= 0); empty means 1 for every list.
  std::vector<double> weights;
  /// Keep only this many results (0: all).
  size_t top_k = 0;
};

/// One fused result.
struct FusedHit {
  uint64_t id;
  double score;
  friend bool operator==(const FusedHit&, const FusedHit&) = default;
};

/// Fuses ranked lists of ids (each best first) by reciprocal rank. An id that occurs more than
/// once in one list counts once there, at its best (first) rank. Results are sorted best first,
/// equal scores by smaller id. ValueError for a weights list whose size is not the number of lists,
/// or a negative or non-finite weight or k.
std::vector<FusedHit> reciprocal_rank_fusion(std::span<const std::vector<uint64_t>> ranked_lists,
                                             const FusionOptions& options = {});

/// The same for lists given in braces: reciprocal_rank_fusion({bm25_ids, vector_ids}).
inline std::vector<FusedHit> reciprocal_rank_fusion(
    std::initializer_list<std::vector<uint64_t>> ranked_lists, const FusionOptions& options = {}) {
  return reciprocal_rank_fusion(
      std::span<const std::vector<uint64_t>>(ranked_lists.begin(), ranked_lists.size()), options);
}

}  // namespace scholar::rag
