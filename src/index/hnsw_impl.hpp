// Internal: the data of an Hnsw index (shared by hnsw.cpp and hnsw_io.cpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "index/common.hpp"
#include "scholar/index/hnsw.hpp"
#include "scholar/io/file.hpp"
#include "scholar/kernels/kernels.hpp"

namespace scholar::index::detail {

inline constexpr size_t kMaxM = 1024;
inline constexpr size_t kMaxLinks = 2 * kMaxM;
inline constexpr int kMaxLevel = 30;
inline constexpr size_t kFilterSamples = 256;
inline constexpr size_t kLockStripes = 4096;
inline constexpr uint64_t kNoEntry = ~uint64_t{0};
inline constexpr uint8_t kReady = 1, kDeleted = 2;

inline uint64_t pack_entry(uint32_t slot, int level) {
  return (uint64_t(level) << 32) | slot;
}

/// A binary heap of (distance, slot) on a reusable vector; Less gives a max-heap.
template <class Compare>
class Heap {
 public:
  using Item = std::pair<float, uint32_t>;
  void clear() { v_.clear(); }
  bool empty() const { return v_.empty(); }
  size_t size() const { return v_.size(); }
  const Item& top() const { return v_.front(); }
  void push(Item x) {
    v_.push_back(x);
    std::push_heap(v_.begin(), v_.end(), Compare{});
  }
  void pop() {
    std::pop_heap(v_.begin(), v_.end(), Compare{});
    v_.pop_back();
  }

 private:
  std::vector<Item> v_;
};
struct Farther {
  bool operator()(const std::pair<float, uint32_t>& a, const std::pair<float, uint32_t>& b) const {
    return a.first > b.first;
  }
};
struct Nearer {
  bool operator()(const std::pair<float, uint32_t>& a, const std::pair<float, uint32_t>& b) const {
    return a.first < b.first;
  }
};

/// Per-search working memory, pooled so that a search allocates nothing once warm.
struct Scratch {
  std::vector<uint16_t> visited;  // visited[slot] == tag: seen in this search
  uint16_t tag = 0;
  Heap<Farther> candidates;  // nearest on top
  Heap<Nearer> results;      // farthest on top
  std::vector<std::pair<float, uint32_t>> selected, pruned;
  std::vector<float> query, a, b;
  uint16_t next_tag();
};

/// The graph and vectors. Hnsw::Impl owns one and swaps in a new one on compact().
struct Graph {
  Graph(size_t dim, Space space, const HnswParams& p);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // --- fixed at construction
  size_t dim;
  Space space;
  HnswParams p;
  const kernels::KernelTable* kt;
  size_t M0, vec_bytes, links0_bytes, size0, upper_words;
  double level_mult;
  bool has_f32;

  // --- storage (resized only under the index's exclusive lock)
  size_t capacity = 0;
  std::unique_ptr<uint8_t[]> level0_owned;
  uint8_t* level0 = nullptr;
  std::vector<float> f32_owned;
  const float* f32 = nullptr;  // has_f32: capacity * dim
  std::vector<uint64_t> labels;
  std::vector<uint8_t> levels;
  std::vector<uint32_t*> upper;  // per slot, levels[slot] * upper_words, or null
  bool upper_owned = true;
  std::unique_ptr<std::atomic<uint8_t>[]> flags;  // kReady | kDeleted
  std::shared_ptr<io::MappedFile> mapped;         // set when the storage is a mapped file

  // --- counters and the label table
  std::atomic<uint32_t> count{0};  // slots handed out
  std::atomic<size_t> live{0}, deleted_count{0};
  std::atomic<uint64_t> entry{kNoEntry};  // pack_entry(slot, level)
  std::mutex entry_mutex;
  mutable std::mutex label_mutex;
  LabelMap label_map;
  std::vector<uint32_t> free_slots;  // deleted slots (under label_mutex)
  mutable std::mutex stripes[kLockStripes];
  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<Scratch>> pool;

  // --- access
  uint32_t* links0(uint32_t slot) const {
    return reinterpret_cast<uint32_t*>(level0 + size_t{slot} * size0);
  }
  uint32_t* links(uint32_t slot, int level) const {
    return level == 0 ? links0(slot) : upper[slot] + size_t(level - 1) * upper_words;
  }
  uint8_t* vec(uint32_t slot) const { return level0 + size_t{slot} * size0 + links0_bytes; }
  std::mutex& lock_of(uint32_t slot) const { return stripes[slot % kLockStripes]; }
  static uint32_t load(const uint32_t& x) {
    return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(x)).load(std::memory_order_acquire);
  }
  static void store(uint32_t& x, uint32_t v) {
    std::atomic_ref<uint32_t>(x).store(v, std::memory_order_release);
  }
  /// Writes a link list (the caller holds its lock): the links first, then the count, each with a
  /// release store, so a reader never sees a count that covers unwritten links.
  static void set_links(uint32_t* ll, const std::vector<std::pair<float, uint32_t>>& cand) {
    for (size_t i = 0; i < cand.size(); ++i) store(ll[1 + i], cand[i].second);
    store(ll[0], static_cast<uint32_t>(cand.size()));
  }

  void grow(size_t new_capacity);
  int random_level(uint64_t label) const;
  void encode(uint32_t slot, const float* v);
  void decode(float* out, uint32_t slot) const;
  const float* exact_vector(uint32_t slot, float* scratch) const;
  const float* exact_or_stored(uint32_t slot, float* scratch) const;
  float raw_distance(const float* q, uint32_t slot) const;
  /// The distance from query q (f32, normalized for cosine) to the stored vector of a slot. Huge
  /// vectors can overflow a sum to inf - inf; NaN is mapped to +inf so that every comparison and
  /// sort stays a strict weak order.
  float distance(const float* q, uint32_t slot) const { return not_nan(raw_distance(q, slot)); }
  float exact_distance(const float* q, const float* x) const;

  std::unique_ptr<Scratch> acquire() const;
  void release(std::unique_ptr<Scratch> s) const;

  uint32_t greedy(const float* q, uint32_t cur, float& d_cur, int level) const;
  void search_layer(Scratch& s, const float* q, uint32_t ep, float d_ep, size_t ef, int level,
                    bool filter_mode, const Filter* filter) const;
  void select_neighbors(Scratch& s, std::vector<std::pair<float, uint32_t>>& cand, size_t m) const;
  void link(Scratch& s, uint32_t slot, const float* q, int level, uint32_t ep, int max_level);
  void add_link(Scratch& s, uint32_t nb, uint32_t slot, float d, int l, size_t m_max);
  /// Writes label, level, vector and empty links of a slot and marks it ready (not yet linked).
  void prepare_slot(uint32_t slot, uint64_t label, const float* v);
  /// Re-chooses the links of a slot's neighbours after its vector changed in place.
  void repair_around(Scratch& s, uint32_t slot);
  /// Links a prepared slot into the graph.
  void insert(Scratch& s, uint32_t slot, const float* q);

  std::vector<Neighbor> search(const float* q, size_t k, size_t ef, const Filter* filter) const;
  double estimate_pass_rate(const Filter& filter) const;
  std::vector<Neighbor> scan(Scratch& s, const float* q, size_t k, const Filter& filter) const;
  size_t memory_usage() const;
};

}  // namespace scholar::index::detail

namespace scholar::index {

struct Hnsw::Impl {
  mutable detail::RwLock mutex;  // shared: search, add, remove; exclusive: the rest
  std::unique_ptr<detail::Graph> g;
};

}  // namespace scholar::index
