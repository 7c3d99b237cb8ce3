// Hnsw: the graph, insertion, search, deletion and compaction. Files are in hnsw_io.cpp.
//
// Memory layout (as hnswlib's, which measured it): one block of fixed-size records, one per slot,
// holding the slot's level-0 links and its stored vector side by side, so a search step touches one
// record:
//   [u32 link count][u32 links x M0][stored vector: f32 x D | bf16 x D | f32 lo, f32 step, u8 x D]
// Links on levels 1.. live in a separate array per slot: level l at upper[slot] + (l-1) * (1 + M).
//
// Concurrency: link lists are written under a per-slot lock (striped), with release stores, and
// read with acquire loads and no lock. A slot's vector, label and level are written before the
// slot is linked anywhere, so any reader that reaches a slot through a link sees them.
#include "index/hnsw_impl.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/progress.hpp"

namespace scholar::index {

using detail::Graph;
using detail::Scratch;

namespace detail {

namespace {

// Asks for the cache line at p ahead of use (read, keep in all levels): the compilers' portable
// form of _mm_prefetch(p, _MM_HINT_T0), a no-op where the target has no such instruction.
inline void prefetch(const void* p) {
  __builtin_prefetch(p, 0, 3);
}

}  // namespace

Graph::Graph(size_t dim_, Space space_, const HnswParams& p_)
    : dim(dim_), space(space_), p(p_), kt(&kernels::active()) {
  M0 = 2 * p.M;
  switch (p.storage) {
    case Storage::f32:
      vec_bytes = dim * 4;
      break;
    case Storage::bf16:
      vec_bytes = (dim * 2 + 3) / 4 * 4;
      break;
    case Storage::int8:
      vec_bytes = 8 + (dim + 3) / 4 * 4;
      break;
  }
  links0_bytes = 4 * (1 + M0);
  size0 = links0_bytes + vec_bytes;
  upper_words = 1 + p.M;
  level_mult = 1.0 / std::log(double(std::max<size_t>(p.M, 2)));
  has_f32 = p.storage != Storage::f32 && p.keep_f32;
}

Graph::~Graph() {
  if (upper_owned)
    for (uint32_t* u : upper) delete[] u;
}

void Graph::grow(size_t new_cap) {
  if (new_cap <= capacity) return;
  if (mapped) fail<Error>("Hnsw: the index is memory-mapped and read-only");
  const size_t n = count.load();
  // Fresh arrays, then swap: the caller holds the index exclusively.
  auto block = std::make_unique_for_overwrite<uint8_t[]>(new_cap * size0);
  if (n) std::memcpy(block.get(), level0, n * size0);
  std::memset(block.get() + n * size0, 0, (new_cap - n) * size0);
  level0_owned = std::move(block);
  level0 = level0_owned.get();
  if (has_f32) {
    f32_owned.resize(new_cap * dim);
    f32 = f32_owned.data();
  }
  labels.resize(new_cap);
  levels.resize(new_cap);
  upper.resize(new_cap, nullptr);
  auto fl = std::make_unique<std::atomic<uint8_t>[]>(new_cap);
  for (size_t i = 0; i < n; ++i) fl[i].store(flags[i].load());
  for (size_t i = n; i < new_cap; ++i) fl[i].store(0);
  flags = std::move(fl);
  capacity = new_cap;
  label_map.reserve(new_cap);
}

int Graph::random_level(uint64_t label) const {
  // A uniform in (0, 1] from the seed and the label: levels do not depend on insertion order.
  const uint64_t h = mix64(mix64(p.seed ^ 0x5851f42d4c957f2dull) ^ label);
  const double u = (double(h >> 11) + 1.0) * 0x1.0p-53;
  const double l = -std::log(u) * level_mult;
  return static_cast<int>(std::min(l, double(kMaxLevel)));
}

void Graph::encode(uint32_t slot, const float* v) {
  uint8_t* dst = vec(slot);
  switch (p.storage) {
    case Storage::f32:
      std::memcpy(dst, v, dim * 4);
      break;
    case Storage::bf16:
      kt->f32_to_bf16(reinterpret_cast<uint16_t*>(dst), v, dim);
      break;
    case Storage::int8: {
      float lo = v[0], hi = v[0];
      for (size_t i = 1; i < dim; ++i) {
        lo = std::min(lo, v[i]);
        hi = std::max(hi, v[i]);
      }
      const float step = (hi - lo) / 255.0f;
      const float inv = step > 0 ? 1.0f / step : 0.0f;
      std::memcpy(dst, &lo, 4);
      std::memcpy(dst + 4, &step, 4);
      uint8_t* c = dst + 8;
      for (size_t i = 0; i < dim; ++i)
        c[i] = static_cast<uint8_t>(std::clamp(std::nearbyint((v[i] - lo) * inv), 0.0f, 255.0f));
      break;
    }
  }
  if (has_f32) std::memcpy(f32_owned.data() + size_t{slot} * dim, v, dim * 4);
}

void Graph::decode(float* out, uint32_t slot) const {
  const uint8_t* s = vec(slot);
  switch (p.storage) {
    case Storage::f32:
      std::memcpy(out, s, dim * 4);
      break;
    case Storage::bf16:
      kt->bf16_to_f32(out, reinterpret_cast<const uint16_t*>(s), dim);
      break;
    case Storage::int8: {
      float lo, step;
      std::memcpy(&lo, s, 4);
      std::memcpy(&step, s + 4, 4);
      for (size_t i = 0; i < dim; ++i) out[i] = std::fma(step, float(s[8 + i]), lo);
      break;
    }
  }
}

const float* Graph::exact_vector(uint32_t slot, float* scratch) const {
  if (p.storage == Storage::f32) return reinterpret_cast<const float*>(vec(slot));
  if (has_f32) return f32 + size_t{slot} * dim;
  decode(scratch, slot);
  return scratch;
}

float Graph::raw_distance(const float* q, uint32_t slot) const {
  const uint8_t* s = vec(slot);
  const bool l2 = space == Space::l2;
  switch (p.storage) {
    case Storage::f32: {
      const float* x = reinterpret_cast<const float*>(s);
      return l2 ? kt->l2_squared(q, x, dim) : 1.0f - kt->dot(q, x, dim);
    }
    case Storage::bf16: {
      const uint16_t* x = reinterpret_cast<const uint16_t*>(s);
      return l2 ? kt->l2_squared_bf16(q, x, dim) : 1.0f - kt->dot_bf16(q, x, dim);
    }
    case Storage::int8: {
      float lo, step;
      std::memcpy(&lo, s, 4);
      std::memcpy(&step, s + 4, 4);
      return l2 ? kt->l2_squared_u8(q, s + 8, lo, step, dim)
                : 1.0f - kt->dot_u8(q, s + 8, lo, step, dim);
    }
  }
  return 0;
}

float Graph::exact_distance(const float* q, const float* x) const {
  return not_nan(space == Space::l2 ? kt->l2_squared(q, x, dim) : 1.0f - kt->dot(q, x, dim));
}

std::unique_ptr<Scratch> Graph::acquire() const {
  std::unique_ptr<Scratch> s;
  {
    std::lock_guard lock(pool_mutex);
    if (!pool.empty()) {
      s = std::move(pool.back());
      pool.pop_back();
    }
  }
  if (!s) s = std::make_unique<Scratch>();
  if (s->visited.size() < capacity) {
    s->visited.assign(capacity, 0);
    s->tag = 0;
  }
  if (s->query.size() < dim) {
    s->query.resize(dim);
    s->a.resize(dim);
    s->b.resize(dim);
  }
  return s;
}

void Graph::release(std::unique_ptr<Scratch> s) const {
  std::lock_guard lock(pool_mutex);
  pool.push_back(std::move(s));
}

uint16_t Scratch::next_tag() {
  if (++tag == 0) {  // wrapped: forget every mark
    std::fill(visited.begin(), visited.end(), uint16_t{0});
    tag = 1;
  }
  return tag;
}

// Greedy descent on one level: moves to the nearest neighbour until none is nearer.
uint32_t Graph::greedy(const float* q, uint32_t cur, float& d_cur, int level) const {
  for (bool moved = true; moved;) {
    moved = false;
    const uint32_t* ll = links(cur, level);
    const uint32_t n = load(ll[0]);
    for (uint32_t i = 1; i <= n; ++i) {
      const uint32_t id = load(ll[i]);
      const float d = distance(q, id);
      if (d < d_cur) {
        d_cur = d;
        cur = id;
        moved = true;
      }
    }
  }
  return cur;
}

// The best-first search of one level (Algorithm 2 of the paper). Leaves up to ef nodes, a max-heap
// on distance, in s.results. With `filter_mode`, only live nodes that pass the filter enter the
// results, but every node may route; the bound that stops the search is the worst result, as in
// hnswlib.
void Graph::search_layer(Scratch& s, const float* q, uint32_t ep, float d_ep, size_t ef, int level,
                         bool filter_mode, const Filter* filter) const {
  auto& cand = s.candidates;  // min-heap
  auto& res = s.results;      // max-heap
  cand.clear();
  res.clear();
  const uint16_t tag = s.next_tag();
  uint16_t* visited = s.visited.data();
  visited[ep] = tag;
  auto passes = [&](uint32_t id) {
    if (!filter_mode) return true;
    if (flags[id].load(std::memory_order_acquire) & kDeleted) return false;
    return !filter || !*filter || (*filter)(labels[id]);
  };
  cand.push({d_ep, ep});
  float bound = std::numeric_limits<float>::infinity();
  if (passes(ep)) {
    res.push({d_ep, ep});
    if (res.size() >= ef) bound = res.top().first;
  }
  uint32_t fresh[kMaxLinks];
  while (!cand.empty()) {
    const auto [d_c, c] = cand.top();
    if (d_c > bound) break;
    cand.pop();
    const uint32_t* ll = links(c, level);
    const uint32_t n = std::min<uint32_t>(load(ll[0]), level ? uint32_t(p.M) : uint32_t(M0));
    uint32_t m = 0;
    for (uint32_t i = 1; i <= n; ++i) {
      const uint32_t id = load(ll[i]);
      if (visited[id] == tag) continue;
      visited[id] = tag;
      fresh[m++] = id;
      // Memory latency, not arithmetic, bounds a search once the vectors outgrow the caches: ask
      // for every line of every new neighbour's vector at once so the misses overlap.
      const uint8_t* v = vec(id);
      for (size_t off = 0; off < vec_bytes; off += 64) prefetch(v + off);
    }
    for (uint32_t j = 0; j < m; ++j) {
      const uint32_t id = fresh[j];
      const float d = distance(q, id);
      if (res.size() < ef || d < bound) {
        cand.push({d, id});
        prefetch(links0(id));
        if (passes(id)) {
          res.push({d, id});
          if (res.size() > ef) res.pop();
          if (res.size() >= ef) bound = res.top().first;
        }
      }
    }
  }
}

// Algorithm 4 of the paper, as hnswlib applies it: take candidates nearest first, and keep one only
// if it is nearer to the base than to every candidate kept so far (so links spread in all
// directions). `cand` holds (distance to base, slot), any order; it is left holding the kept ones.
void Graph::select_neighbors(Scratch& s, std::vector<std::pair<float, uint32_t>>& cand,
                             size_t m) const {
  std::sort(cand.begin(), cand.end());
  if (cand.size() <= m) return;
  size_t kept = 0;
  for (size_t i = 0; i < cand.size() && kept < m; ++i) {
    const float* x = exact_or_stored(cand[i].second, s.a.data());
    bool good = true;
    for (size_t j = 0; j < kept; ++j)
      if (distance(x, cand[j].second) < cand[i].first) {
        good = false;
        break;
      }
    if (good) cand[kept++] = cand[i];
  }
  cand.resize(kept);
}

const float* Graph::exact_or_stored(uint32_t slot, float* scratch) const {
  // Distances between stored vectors are taken from the decoded compact vector, so that they are
  // on the same scale as the distances the graph walk computes.
  if (p.storage == Storage::f32) return reinterpret_cast<const float*>(vec(slot));
  decode(scratch, slot);
  return scratch;
}

// Links `slot` (whose vector is q, whose level is `level`) into the graph from entry point `ep`.
void Graph::link(Scratch& s, uint32_t slot, const float* q, int level, uint32_t ep, int max_level) {
  float d_ep = distance(q, ep);
  for (int l = max_level; l > level; --l) ep = greedy(q, ep, d_ep, l);
  for (int l = std::min(level, max_level); l >= 0; --l) {
    search_layer(s, q, ep, d_ep, p.ef_construction, l, false, nullptr);
    auto& cand = s.selected;
    cand.clear();
    // The nearest candidate seeds the next level down.
    float best = std::numeric_limits<float>::infinity();
    while (!s.results.empty()) {
      const auto r = s.results.top();
      s.results.pop();
      if (r.second == slot) continue;
      cand.push_back(r);
      if (r.first < best) {
        best = r.first;
        ep = r.second;
        d_ep = r.first;
      }
    }
    select_neighbors(s, cand, p.M);
    const size_t m_max = l ? p.M : M0;
    {
      std::lock_guard lock(lock_of(slot));
      set_links(links(slot, l), cand);
    }
    for (const auto& [d, nb] : cand) add_link(s, nb, slot, d, l, m_max);
  }
}

// Adds the link nb -> slot (at distance d) on level l, pruning nb's list with the heuristic if
// full.
void Graph::add_link(Scratch& s, uint32_t nb, uint32_t slot, float d, int l, size_t m_max) {
  std::lock_guard lock(lock_of(nb));
  uint32_t* ll = links(nb, l);
  const uint32_t n = ll[0];
  for (uint32_t i = 1; i <= n; ++i)
    if (ll[i] == slot) return;
  if (n < m_max) {
    store(ll[1 + n], slot);
    store(ll[0], n + 1);
    return;
  }
  auto& cand = s.pruned;
  cand.clear();
  const float* x = exact_or_stored(nb, s.b.data());
  cand.push_back({d, slot});
  for (uint32_t i = 1; i <= n; ++i) cand.push_back({distance(x, ll[i]), ll[i]});
  select_neighbors(s, cand, m_max);
  set_links(ll, cand);
}

void Graph::insert(Scratch& s, uint32_t slot, const float* q) {
  const int level = levels[slot];
  uint64_t e = entry.load(std::memory_order_acquire);
  if (e == kNoEntry) {  // perhaps the first node: decide under the lock
    std::lock_guard lock(entry_mutex);
    e = entry.load(std::memory_order_acquire);
    if (e == kNoEntry) {
      entry.store(pack_entry(slot, level), std::memory_order_release);
      return;
    }
  }
  uint32_t ep = uint32_t(e);
  int max_level = int(e >> 32);
  if (ep == slot) {  // relinking the entry point itself: start from one of its neighbours
    const uint32_t* ll = links(slot, max_level);
    if (load(ll[0]) == 0) {
      if (max_level == 0) return;  // the only node
      // No neighbour on the top level: walk from a neighbour below.
      int l = max_level - 1;
      while (l > 0 && load(links(slot, l)[0]) == 0) --l;
      if (load(links(slot, l)[0]) == 0) return;
      ep = load(links(slot, l)[1]);
      max_level = l;
    } else {
      ep = load(ll[1]);
    }
  }
  link(s, slot, q, level, ep, max_level);
  if (level > int(entry.load(std::memory_order_acquire) >> 32)) {
    std::lock_guard lock(entry_mutex);
    const uint64_t cur = entry.load(std::memory_order_acquire);
    if (level > int(cur >> 32)) entry.store(pack_entry(slot, level), std::memory_order_release);
  }
}

// Before a node's vector is rewritten in place (update, or a deleted slot taking a new label), the
// nodes around it still link to it as if it were where it was. As hnswlib's updatePoint does, each
// old neighbour chooses its links again from the neighbourhood (neighbours and their neighbours,
// the moved node included at its new position). Runs with the index held exclusively.
void Graph::repair_around(Scratch& s, uint32_t slot) {
  for (int l = 0; l <= levels[slot]; ++l) {
    const uint32_t* own = links(slot, l);
    std::vector<uint32_t> neigh(own + 1, own + 1 + std::min<uint32_t>(own[0], l ? p.M : M0));
    const uint16_t tag = s.next_tag();
    std::vector<uint32_t> pool{slot};
    s.visited[slot] = tag;
    for (uint32_t u : neigh) {
      if (s.visited[u] != tag) {
        s.visited[u] = tag;
        pool.push_back(u);
      }
      const uint32_t* ul = links(u, l);
      for (uint32_t j = 1; j <= ul[0]; ++j)
        if (s.visited[ul[j]] != tag) {
          s.visited[ul[j]] = tag;
          pool.push_back(ul[j]);
        }
    }
    const size_t m_max = l ? p.M : M0;
    for (uint32_t u : neigh) {
      auto& cand = s.pruned;
      cand.clear();
      const float* x = exact_or_stored(u, s.b.data());
      for (uint32_t c : pool)
        if (c != u) cand.push_back({distance(x, c), c});
      select_neighbors(s, cand, m_max);
      set_links(links(u, l), cand);
    }
  }
}

void Graph::prepare_slot(uint32_t slot, uint64_t label, const float* v) {
  labels[slot] = label;
  const int level = random_level(label);
  levels[slot] = static_cast<uint8_t>(level);
  std::memset(level0 + size_t{slot} * size0, 0, links0_bytes);
  if (level > 0) {
    delete[] upper[slot];
    upper[slot] = new uint32_t[size_t(level) * upper_words]();
  }
  encode(slot, v);
  // fetch_or, not store: a concurrent remove() of this label may already have set kDeleted.
  flags[slot].fetch_or(kReady, std::memory_order_release);
}

std::vector<Neighbor> Graph::search(const float* query, size_t k, size_t ef,
                                    const Filter* filter) const {
  std::vector<Neighbor> out;
  const uint64_t e = entry.load(std::memory_order_acquire);
  if (e == kNoEntry) return out;
  auto sp = acquire();
  Scratch& s = *sp;
  const float* q = query;
  if (space == Space::cosine) {
    double n2 = 0;
    for (size_t i = 0; i < dim; ++i) n2 += double{query[i]} * query[i];
    const float inv = n2 > 0 ? float(1.0 / std::sqrt(n2)) : 0.0f;
    for (size_t i = 0; i < dim; ++i) s.query[i] = query[i] * inv;
    q = s.query.data();
  }
  ef = std::max(ef, k);
  const bool filtered = (filter && *filter) || deleted_count.load(std::memory_order_relaxed) > 0;
  if (filter && *filter && p.exact_search_below > 0 &&
      estimate_pass_rate(*filter) < p.exact_search_below) {
    out = scan(s, q, k, *filter);
    release(std::move(sp));
    return out;
  }
  uint32_t ep = uint32_t(e);
  float d = distance(q, ep);
  for (int l = int(e >> 32); l > 0; --l) ep = greedy(q, ep, d, l);
  search_layer(s, q, ep, d, ef, 0, filtered, filter);
  out.reserve(s.results.size());
  while (!s.results.empty()) {
    const auto [dist, id] = s.results.top();
    s.results.pop();
    const float exact = has_f32 ? exact_distance(q, f32 + size_t{id} * dim) : dist;
    out.push_back({labels[id], exact});
  }
  release(std::move(sp));
  std::sort(out.begin(), out.end(), [](const Neighbor& a, const Neighbor& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
  });
  if (out.size() > k) out.resize(k);
  return out;
}

double Graph::estimate_pass_rate(const Filter& filter) const {
  const size_t n = count.load(std::memory_order_acquire);
  if (n == 0) return 1.0;
  const size_t samples = std::min<size_t>(n, kFilterSamples);
  size_t live = 0, pass = 0;
  for (size_t i = 0; i < samples; ++i) {
    const size_t slot = i * n / samples;
    const uint8_t f = flags[slot].load(std::memory_order_acquire);
    if (!(f & kReady) || (f & kDeleted)) continue;
    ++live;
    pass += filter(labels[slot]) ? 1 : 0;
  }
  return live ? double(pass) / double(live) : 1.0;
}

std::vector<Neighbor> Graph::scan(Scratch& s, const float* q, size_t k,
                                  const Filter& filter) const {
  const size_t n = count.load(std::memory_order_acquire);
  TopK best(k);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t f = flags[i].load(std::memory_order_acquire);
    if (!(f & kReady) || (f & kDeleted) || !filter(labels[i])) continue;
    best.push(labels[i], exact_distance(q, exact_vector(uint32_t(i), s.a.data())));
  }
  return best.take();
}

size_t Graph::memory_usage() const {
  size_t upper_bytes = 0;
  const size_t n = count.load();
  if (upper_owned)
    for (size_t i = 0; i < n; ++i) upper_bytes += size_t{levels[i]} * upper_words * 4;
  return (mapped ? 0 : capacity * size0) + (has_f32 && !mapped ? capacity * dim * 4 : 0) +
         capacity * (sizeof(uint64_t) + 1 + 1 + sizeof(uint32_t*)) + upper_bytes +
         label_map.memory_usage() + sizeof(Graph);
}

}  // namespace detail

// --- Hnsw
// ------------------------------------------------------------------------------------------

namespace {

void check_params(size_t dim, const HnswParams& p) {
  if (dim == 0 || dim > (1u << 20))
    fail<ValueError>("Hnsw: dimension ", dim, " is out of range [1, 2^20]");
  if (p.M < 2 || p.M > detail::kMaxM)
    fail<ValueError>("Hnsw: M = ", p.M, " is out of range [2, ", detail::kMaxM, "]");
  if (p.ef_construction < 1) fail<ValueError>("Hnsw: ef_construction must be at least 1");
  if (p.ef_search < 1) fail<ValueError>("Hnsw: ef_search must be at least 1");
  if (p.storage > Storage::int8) fail<ValueError>("Hnsw: unknown storage");
  if (!(p.exact_search_below >= 0 && p.exact_search_below <= 1))
    fail<ValueError>("Hnsw: exact_search_below = ", p.exact_search_below, " is not in [0, 1]");
}

}  // namespace

Hnsw::Hnsw(size_t dim, Space space, const HnswParams& params) : impl_(std::make_unique<Impl>()) {
  check_params(dim, params);
  if (space > Space::cosine) fail<ValueError>("Hnsw: unknown space");
  impl_->g = std::make_unique<Graph>(dim, space, params);
  impl_->g->grow(std::max<size_t>(params.initial_capacity, 1));
}
Hnsw::Hnsw(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Hnsw::~Hnsw() = default;
Hnsw::Hnsw(Hnsw&&) noexcept = default;
Hnsw& Hnsw::operator=(Hnsw&&) noexcept = default;

size_t Hnsw::dim() const noexcept {
  return impl_->g->dim;
}
Space Hnsw::space() const noexcept {
  return impl_->g->space;
}
const HnswParams& Hnsw::params() const noexcept {
  return impl_->g->p;
}
bool Hnsw::read_only() const noexcept {
  return impl_->g->mapped != nullptr;
}

size_t Hnsw::size() const noexcept {
  std::shared_lock lock(impl_->mutex);
  return impl_->g->live.load();
}
size_t Hnsw::slot_count() const noexcept {
  std::shared_lock lock(impl_->mutex);
  return impl_->g->count.load();
}
size_t Hnsw::capacity() const noexcept {
  std::shared_lock lock(impl_->mutex);
  return impl_->g->capacity;
}
size_t Hnsw::deleted_count() const noexcept {
  std::shared_lock lock(impl_->mutex);
  return impl_->g->deleted_count.load();
}
bool Hnsw::contains(uint64_t label) const {
  std::shared_lock lock(impl_->mutex);
  std::lock_guard l2(impl_->g->label_mutex);
  return impl_->g->label_map.find(label) != detail::LabelMap::kEmpty;
}
size_t Hnsw::memory_usage() const {
  std::unique_lock lock(impl_->mutex);
  return impl_->g->memory_usage();
}
double Hnsw::bytes_per_vector() const {
  std::unique_lock lock(impl_->mutex);
  return double(impl_->g->memory_usage()) / double(std::max<size_t>(1, impl_->g->capacity));
}

void Hnsw::reserve(size_t n) {
  std::unique_lock lock(impl_->mutex);
  impl_->g->grow(n);
}

namespace {

// The vector as it is stored: a copy, normalized for cosine.
std::vector<float> prepared(const char* op, const Graph& g, std::span<const float> v) {
  detail::check_vector(op, v, g.dim);
  std::vector<float> out(v.begin(), v.end());
  if (g.space == Space::cosine) {
    const float s = detail::inverse_norm(op, v);
    for (float& x : out) x *= s;
  }
  return out;
}

void check_writable(const Graph& g, const char* op) {
  if (g.mapped) fail<Error>("Hnsw::", op, ": the index was loaded memory-mapped and is read-only");
}

}  // namespace

void Hnsw::add(uint64_t label, std::span<const float> vector) {
  Impl& m = *impl_;
  const std::vector<float> v = prepared("add", *m.g, vector);
  for (;;) {
    {
      std::shared_lock lock(m.mutex);
      Graph& g = *m.g;
      check_writable(g, "add");
      uint32_t slot;
      {
        std::lock_guard l2(g.label_mutex);
        if (g.label_map.find(label) != detail::LabelMap::kEmpty)
          fail<ValueError>("Hnsw::add: label ", label, " is already in the index (use update)");
        if (!(g.p.replace_deleted && !g.free_slots.empty()) && g.count.load() < g.capacity) {
          slot = g.count.fetch_add(1);
          g.label_map.put(label, slot);
          g.live.fetch_add(1);
        } else {
          slot = detail::LabelMap::kEmpty;
        }
      }
      if (slot != detail::LabelMap::kEmpty) {
        g.prepare_slot(slot, label, v.data());
        auto s = g.acquire();
        g.insert(*s, slot, v.data());
        g.release(std::move(s));
        return;
      }
    }
    // Reuse a deleted slot, or grow: both need the index to ourselves.
    std::unique_lock lock(m.mutex);
    Graph& g = *m.g;
    if (g.label_map.find(label) != detail::LabelMap::kEmpty)
      fail<ValueError>("Hnsw::add: label ", label, " is already in the index (use update)");
    if (g.p.replace_deleted && !g.free_slots.empty()) {
      const uint32_t slot = g.free_slots.back();
      g.free_slots.pop_back();
      g.label_map.put(label, slot);
      g.deleted_count.fetch_sub(1);
      g.live.fetch_add(1);
      // Keep the slot's level (its upper link arrays are sized for it); the old neighbours choose
      // again, then the slot is linked anew on every level (which replaces its own lists).
      g.labels[slot] = label;
      g.encode(slot, v.data());
      g.flags[slot].store(detail::kReady, std::memory_order_release);
      auto s = g.acquire();
      g.repair_around(*s, slot);
      g.insert(*s, slot, v.data());
      g.release(std::move(s));
      return;
    }
    if (g.count.load() >= g.capacity) {
      if (!g.p.allow_growth)
        fail<Error>("Hnsw::add: the index is full (capacity ", g.capacity,
                    ") and allow_growth is off");
      g.grow(g.capacity + std::max<size_t>(g.capacity / 2, 16));
    }
  }
}

void Hnsw::add_batch(std::span<const uint64_t> labels, std::span<const float> vectors,
                     bool show_progress) {
  Impl& m = *impl_;
  const size_t d = dim(), n = labels.size();
  if (vectors.size() != n * d)
    fail<ShapeError>("Hnsw::add_batch: ", n, " labels need ", n * d, " values, got ",
                     vectors.size());
  {
    detail::LabelMap seen;
    seen.reserve(n);
    std::shared_lock lock(m.mutex);
    check_writable(*m.g, "add_batch");
    for (size_t i = 0; i < n; ++i) {
      detail::check_vector("add_batch", vectors.subspan(i * d, d), d);
      if (m.g->space == Space::cosine) detail::inverse_norm("add_batch", vectors.subspan(i * d, d));
      if (seen.find(labels[i]) != detail::LabelMap::kEmpty)
        fail<ValueError>("Hnsw::add_batch: label ", labels[i], " appears twice in the batch");
      seen.put(labels[i], 0);
      std::lock_guard l2(m.g->label_mutex);
      if (m.g->label_map.find(labels[i]) != detail::LabelMap::kEmpty)
        fail<ValueError>("Hnsw::add_batch: label ", labels[i], " is already in the index");
    }
  }
  {
    std::unique_lock lock(m.mutex);
    Graph& g = *m.g;
    const size_t need = g.count.load() + n;
    if (need > g.capacity) {
      if (!g.p.allow_growth)
        fail<Error>("Hnsw::add_batch: ", n, " vectors do not fit (capacity ", g.capacity, ", ",
                    g.count.load(), " slots used) and allow_growth is off");
      g.grow(need);
    }
  }
  std::unique_ptr<ProgressBar> bar;
  if (show_progress) bar = std::make_unique<ProgressBar>("index", int64_t(n), "vec");
  std::atomic<int64_t> done{0};
  std::mutex bar_mutex;
  parallel_for(0, static_cast<int64_t>(n), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      add(labels[size_t(i)], vectors.subspan(size_t(i) * d, d));
      const int64_t k = done.fetch_add(1) + 1;
      if (bar && k % 256 == 0 && bar_mutex.try_lock()) {  // whichever thread is free draws
        bar->update(done.load());
        bar_mutex.unlock();
      }
    }
  });
  if (bar) bar->finish();
}

void Hnsw::update(uint64_t label, std::span<const float> vector) {
  Impl& m = *impl_;
  const std::vector<float> v = prepared("update", *m.g, vector);
  std::unique_lock lock(m.mutex);
  Graph& g = *m.g;
  check_writable(g, "update");
  const uint32_t slot = g.label_map.find(label);
  if (slot == detail::LabelMap::kEmpty)
    fail<IndexError>("Hnsw::update: label ", label, " is not in the index");
  g.encode(slot, v.data());
  auto s = g.acquire();
  g.repair_around(*s, slot);
  g.insert(*s, slot, v.data());
  g.release(std::move(s));
}

bool Hnsw::remove(uint64_t label) {
  Impl& m = *impl_;
  std::shared_lock lock(m.mutex);
  Graph& g = *m.g;
  check_writable(g, "remove");
  std::lock_guard l2(g.label_mutex);
  const uint32_t slot = g.label_map.find(label);
  if (slot == detail::LabelMap::kEmpty) return false;
  g.label_map.erase(label);
  g.flags[slot].fetch_or(detail::kDeleted, std::memory_order_acq_rel);
  g.deleted_count.fetch_add(1);
  g.live.fetch_sub(1);
  g.free_slots.push_back(slot);
  return true;
}

std::vector<Neighbor> Hnsw::do_search(std::span<const float> query, size_t k, size_t ef,
                                      const Filter& filter) const {
  std::shared_lock lock(impl_->mutex);
  const Graph& g = *impl_->g;
  return g.search(query.data(), k, ef ? ef : g.p.ef_search, filter ? &filter : nullptr);
}

void Hnsw::compact() {
  Impl& m = *impl_;
  std::unique_lock lock(m.mutex);
  Graph& g = *m.g;
  check_writable(g, "compact");
  const size_t n = g.count.load();
  std::vector<uint32_t> live;
  live.reserve(g.live.load());
  for (size_t i = 0; i < n; ++i)
    if (!(g.flags[i].load() & detail::kDeleted)) live.push_back(uint32_t(i));
  auto fresh = std::make_unique<Graph>(g.dim, g.space, g.p);
  fresh->grow(std::max<size_t>(live.size(), 1));
  // Slots are filled in order, so the new slot of live[i] is i.
  std::vector<float> scratch(g.dim);
  for (size_t i = 0; i < live.size(); ++i) {
    const float* x = g.exact_vector(live[i], scratch.data());
    fresh->prepare_slot(uint32_t(i), g.labels[live[i]], x);
    fresh->label_map.put(g.labels[live[i]], uint32_t(i));
  }
  fresh->count.store(uint32_t(live.size()));
  fresh->live.store(live.size());
  Graph& f = *fresh;
  parallel_for(0, static_cast<int64_t>(live.size()), 1, [&](int64_t b, int64_t e) {
    auto s = f.acquire();
    std::vector<float> v(f.dim);
    for (int64_t i = b; i < e; ++i) {
      const float* x = f.exact_vector(uint32_t(i), v.data());
      if (x != v.data()) std::memcpy(v.data(), x, f.dim * 4);
      f.insert(*s, uint32_t(i), v.data());
    }
    f.release(std::move(s));
  });
  m.g = std::move(fresh);
}

}  // namespace scholar::index
