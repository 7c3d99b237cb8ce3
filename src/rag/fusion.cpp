// Reciprocal rank fusion (see scholar/rag/fusion.hpp).
#include "scholar/rag/fusion.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "scholar/error.hpp"

namespace scholar::rag {

std::vector<FusedHit> reciprocal_rank_fusion(std::span<const std::vector<uint64_t>> ranked_lists,
                                             const FusionOptions& options) {
  if (!std::isfinite(options.k) || options.k < 0)
    fail<ValueError>("rag::reciprocal_rank_fusion: k must be finite and >= 0, not ", options.k);
  if (!options.weights.empty() && options.weights.size() != ranked_lists.size())
    fail<ValueError>("rag::reciprocal_rank_fusion: ", options.weights.size(), " weights for ",
                     ranked_lists.size(), " lists (give one weight per list, or none)");
  for (size_t i = 0; i < options.weights.size(); ++i)
    if (!std::isfinite(options.weights[i]) || options.weights[i] < 0)
      fail<ValueError>("rag::reciprocal_rank_fusion: weight ", i, " is ", options.weights[i],
                       " (weights must be finite and >= 0)");

  // Scores are summed list by list, so the result does not depend on hash order.
  std::unordered_map<uint64_t, double> score;
  std::unordered_set<uint64_t> seen;
  for (size_t i = 0; i < ranked_lists.size(); ++i) {
    const double w = options.weights.empty() ? 1.0 : options.weights[i];
    seen.clear();
    const std::vector<uint64_t>& list = ranked_lists[i];
    for (size_t r = 0; r < list.size(); ++r)
      if (seen.insert(list[r]).second)
        score[list[r]] += w / (options.k + static_cast<double>(r + 1));
  }
  std::vector<FusedHit> out;
  out.reserve(score.size());
  for (const auto& [id, s] : score) out.push_back({id, s});
  auto better = [](const FusedHit& a, const FusedHit& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  };
  const size_t m = options.top_k ? std::min(options.top_k, out.size()) : out.size();
  std::partial_sort(out.begin(), out.begin() + static_cast<ptrdiff_t>(m), out.end(), better);
  out.resize(m);
  return out;
}

}  // namespace scholar::rag
