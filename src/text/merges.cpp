// The pair-merge loop of BPE and WordPiece training (see merges.hpp).
#include "text/merges.hpp"

#include <algorithm>
#include <queue>
#include <unordered_map>

namespace scholar::text::detail {

namespace {
uint64_t pair_key(int32_t a, int32_t b) {
  return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
}
}  // namespace

int64_t learn_merges(std::vector<MergeWord>& words, int64_t wanted, int64_t min_frequency,
                     const std::function<Merged(int32_t, int32_t)>& merge,
                     const std::function<void(int64_t, int64_t)>& progress) {
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // words holding the pair (may repeat)
  for (size_t wi = 0; wi < words.size(); ++wi) {
    const MergeWord& w = words[wi];
    for (size_t i = 0; i + 1 < w.sym.size(); ++i) {
      const uint64_t k = pair_key(w.sym[i], w.sym[i + 1]);
      pair_count[k] += w.count;
      where[k].push_back(static_cast<int32_t>(wi));
    }
  }
  struct Entry {
    int64_t count;
    uint64_t key;
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : key > o.key;
    }
  };
  std::priority_queue<Entry> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  int64_t done = 0;
  while (done < wanted && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.key);
    const int64_t current = pc == pair_count.end() ? 0 : pc->second;
    if (current != top.count) {  // stale: the count changed since it was pushed
      if (current > 0) heap.push({current, top.key});
      continue;
    }
    if (current < min_frequency) break;
    const auto left = static_cast<int32_t>(top.key >> 32),
               right = static_cast<int32_t>(top.key & 0xFFFFFFFF);
    const Merged m = merge(left, right);
    if (m.counts) ++done;
    // Rewrite the words that contain the pair, updating pair counts as we go.
    std::vector<int32_t> affected = std::move(where[top.key]);
    where.erase(top.key);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    std::unordered_map<uint64_t, int64_t> changed;
    for (const int32_t wi : affected) {
      MergeWord& w = words[static_cast<size_t>(wi)];
      for (size_t i = 0; i + 1 < w.sym.size(); ++i)
        changed[pair_key(w.sym[i], w.sym[i + 1])] -= w.count;
      std::vector<int32_t> next;
      next.reserve(w.sym.size());
      for (size_t i = 0; i < w.sym.size(); ++i) {
        if (i + 1 < w.sym.size() && w.sym[i] == left && w.sym[i + 1] == right) {
          next.push_back(m.symbol);
          ++i;
        } else {
          next.push_back(w.sym[i]);
        }
      }
      w.sym = std::move(next);
      for (size_t i = 0; i + 1 < w.sym.size(); ++i) {
        const uint64_t k = pair_key(w.sym[i], w.sym[i + 1]);
        changed[k] += w.count;
        if (w.sym[i] == m.symbol || w.sym[i + 1] == m.symbol) where[k].push_back(wi);
      }
    }
    for (const auto& [k, delta] : changed) {
      if (delta == 0) continue;
      int64_t& c = pair_count[k];
      c += delta;
      if (c > 0 && delta > 0) heap.push({c, k});
      if (c <= 0) pair_count.erase(k);
    }
    pair_count.erase(top.key);
    if (progress && m.counts && (done % 64 == 0 || done == wanted)) progress(done, wanted);
  }
  if (progress) progress(done, wanted);
  return done;
}

}  // namespace scholar::text::detail
