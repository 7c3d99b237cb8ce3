// Hnsw files: save (atomic) and load (checked, optionally memory-mapped).
//
// Layout, little-endian:
//   magic "SCHOLIDX", u32 version, u32 kind (2 = hnsw)
//   u8 space, storage, keep_f32, replace_deleted, allow_growth, 3 bytes zero
//   u64 dim, M, ef_construction, ef_search, seed, initial_capacity; f64 exact_search_below
//   u64 slot count N, deleted count, entry point (slot | level << 32, or all ones), record size,
//       upper-level link words U
//   u64 labels[N]; u8 levels[N]; u8 flags[N] (2 = deleted); zeros to a multiple of 64
//   level-0 records[N] (record size each, see hnsw.cpp); u32 upper links[U]; zeros to 64
//   f32 vectors[N * dim] (bf16/int8 storage with keep_f32 only)
//   u64 checksum of every byte before it
// The level-0 records and f32 vectors start at multiples of 64, so a mapped file is used in place.
#include <cmath>
#include <cstring>

#include "index/hnsw_impl.hpp"

namespace scholar::index {

using detail::Graph;

namespace {

struct Header {
  uint8_t space, storage, keep_f32, replace_deleted, allow_growth, pad[3];
  uint64_t dim, M, ef_construction, ef_search, seed, initial_capacity;
  double exact_search_below;
  uint64_t count, deleted, entry, size0, upper_words;
};
static_assert(sizeof(Header) == 8 + 8 * 7 + 8 * 5);

size_t upper_total(const Graph& g, size_t n) {
  size_t t = 0;
  for (size_t i = 0; i < n; ++i) t += size_t{g.levels[i]} * g.upper_words;
  return t;
}

}  // namespace

void Hnsw::save(const std::string& path) const {
  std::unique_lock lock(impl_->mutex);
  const Graph& g = *impl_->g;
  const size_t n = g.count.load();
  io::AtomicFile f(path);
  detail::Checksum sum;
  size_t written = 0;
  auto put = [&](const void* p, size_t bytes) {
    f.write(p, bytes);
    sum.update(p, bytes);
    written += bytes;
  };
  auto pad_to = [&](size_t a) {
    static const uint8_t zeros[64] = {};
    if (written % a) put(zeros, a - written % a);
  };
  detail::write_preamble(put, detail::FileKind::hnsw);
  Header h{};
  h.space = uint8_t(g.space);
  h.storage = uint8_t(g.p.storage);
  h.keep_f32 = g.p.keep_f32;
  h.replace_deleted = g.p.replace_deleted;
  h.allow_growth = g.p.allow_growth;
  h.dim = g.dim;
  h.M = g.p.M;
  h.ef_construction = g.p.ef_construction;
  h.ef_search = g.p.ef_search;
  h.seed = g.p.seed;
  h.initial_capacity = g.p.initial_capacity;
  h.exact_search_below = g.p.exact_search_below;
  h.count = n;
  h.deleted = g.deleted_count.load();
  h.entry = g.entry.load();
  h.size0 = g.size0;
  h.upper_words = upper_total(g, n);
  put(&h, sizeof h);
  put(g.labels.data(), n * 8);
  put(g.levels.data(), n);
  std::vector<uint8_t> fl(n);
  for (size_t i = 0; i < n; ++i) fl[i] = g.flags[i].load() & detail::kDeleted;
  put(fl.data(), n);
  pad_to(64);
  put(g.level0, n * g.size0);
  for (size_t i = 0; i < n; ++i)
    if (g.levels[i]) put(g.upper[i], size_t{g.levels[i]} * g.upper_words * 4);
  pad_to(64);
  if (g.has_f32) put(g.f32, n * g.dim * 4);
  const uint64_t c = sum.value();
  f.write(&c, 8);
  f.commit();
}

Hnsw Hnsw::load(const std::string& path, const HnswLoadOptions& options) {
  auto file = io::MappedFile::open(path);
  uint8_t* base = file->mutable_data();
  const size_t size = file->size();
  detail::Cursor in(base, size, path);
  detail::read_preamble(in, detail::FileKind::hnsw, "an Hnsw index");
  const Header h = in.get<Header>("the header");
  if (h.space > uint8_t(Space::cosine)) in.bad("unknown space " + std::to_string(h.space));
  if (h.storage > uint8_t(Storage::int8)) in.bad("unknown storage " + std::to_string(h.storage));
  if (h.keep_f32 > 1 || h.replace_deleted > 1 || h.allow_growth > 1)
    in.bad("a boolean parameter is neither 0 nor 1");
  HnswParams p;
  p.M = h.M;
  p.ef_construction = h.ef_construction;
  p.ef_search = h.ef_search;
  p.seed = h.seed;
  p.storage = Storage(h.storage);
  p.keep_f32 = h.keep_f32;
  p.initial_capacity = h.initial_capacity;
  p.allow_growth = h.allow_growth;
  p.replace_deleted = h.replace_deleted;
  p.exact_search_below = h.exact_search_below;
  if (h.dim == 0 || h.dim > (1u << 20))
    in.bad("dimension " + std::to_string(h.dim) + " is out of range");
  if (h.M < 2 || h.M > detail::kMaxM) in.bad("M = " + std::to_string(h.M) + " is out of range");
  if (h.ef_construction == 0 || h.ef_search == 0) in.bad("ef parameters must be at least 1");
  if (!(h.exact_search_below >= 0 && h.exact_search_below <= 1))
    in.bad("exact_search_below is not in [0, 1]");

  auto gp = std::make_unique<Graph>(h.dim, Space(h.space), p);
  Graph& g = *gp;
  if (h.size0 != g.size0)
    in.bad("record size " + std::to_string(h.size0) + " does not match the parameters (" +
           std::to_string(g.size0) + ")");
  const size_t n = h.count;
  // Each slot takes at least its record plus 10 bytes: bound n by the file before any product.
  if (n >= detail::LabelMap::kErased || n > size / (g.size0 + 10))
    in.bad("claims " + std::to_string(n) + " vectors, more than the file can hold");
  if (h.deleted > n) in.bad("more deleted slots than slots");
  if (h.upper_words > size / 4) in.bad("claims more upper-level links than the file can hold");

  const uint8_t* labels = in.take(n * 8, "the labels");
  const uint8_t* levels = in.take(n, "the levels");
  const uint8_t* flags = in.take(n, "the flags");
  in.align(64, "padding");
  const size_t level0_at = in.pos();
  in.take(n * g.size0, "the level-0 records");
  const size_t upper_at = in.pos();
  in.take(h.upper_words * 4, "the upper-level links");
  in.align(64, "padding");
  const size_t f32_at = in.pos();
  if (g.has_f32) in.take(n * h.dim * 4, "the f32 vectors");
  const size_t body = in.pos();
  const auto stored_sum = in.get<uint64_t>("the checksum");
  if (in.remaining() != 0) in.bad(std::to_string(in.remaining()) + " bytes after the checksum");
  if (options.verify_checksum) {
    detail::Checksum sum;
    sum.update(base, body);
    if (sum.value() != stored_sum) in.bad("checksum mismatch (the file is corrupt)");
  }

  // Small per-slot arrays are always copied; records and vectors are copied or mapped.
  if (options.mmap) {
    g.capacity = n;
    g.level0 = base + level0_at;
    g.f32 = g.has_f32 ? reinterpret_cast<const float*>(base + f32_at) : nullptr;
    g.labels.resize(n);
    g.levels.resize(n);
    g.upper.assign(n, nullptr);
    g.flags = std::make_unique<std::atomic<uint8_t>[]>(std::max<size_t>(n, 1));
    g.upper_owned = false;
    g.mapped = file;
  } else {
    g.grow(std::max<size_t>(n, 1));
    std::memcpy(g.level0, base + level0_at, n * g.size0);
    if (g.has_f32) std::memcpy(g.f32_owned.data(), base + f32_at, n * h.dim * 4);
  }
  std::memcpy(g.labels.data(), labels, n * 8);
  std::memcpy(g.levels.data(), levels, n);

  // Levels, flags and the upper-level arrays.
  size_t words = 0, deleted = 0;
  int top = -1;
  for (size_t i = 0; i < n; ++i) {
    if (levels[i] > detail::kMaxLevel)
      in.bad("slot " + std::to_string(i) + " has level " + std::to_string(levels[i]));
    if (flags[i] & ~detail::kDeleted) in.bad("slot " + std::to_string(i) + " has unknown flags");
    deleted += (flags[i] & detail::kDeleted) ? 1 : 0;
    g.flags[i].store(uint8_t(detail::kReady | flags[i]));
    top = std::max(top, int(levels[i]));
    const size_t w = size_t{levels[i]} * g.upper_words;
    if (w > h.upper_words - words) in.bad("the upper-level links are shorter than the levels need");
    if (w) {
      uint32_t* src = reinterpret_cast<uint32_t*>(base + upper_at + words * 4);
      if (options.mmap) {
        g.upper[i] = src;
      } else {
        g.upper[i] = new uint32_t[w];
        std::memcpy(g.upper[i], src, w * 4);
      }
    }
    words += w;
  }
  if (words != h.upper_words) in.bad("the upper-level links are longer than the levels need");
  if (deleted != h.deleted)
    in.bad("the header counts " + std::to_string(h.deleted) + " deleted slots, the flags " +
           std::to_string(deleted));

  // Entry point, links, vectors.
  if (n == 0) {
    if (h.entry != detail::kNoEntry) in.bad("an empty index has an entry point");
  } else {
    const uint64_t slot = h.entry & 0xffffffffu, level = h.entry >> 32;
    if (slot >= n || level != levels[slot] || int(level) != top)
      in.bad("the entry point is not a slot on the top level");
  }
  for (size_t i = 0; i < n; ++i) {
    for (int l = 0; l <= levels[i]; ++l) {
      const uint32_t* ll = g.links(uint32_t(i), l);
      const size_t cap = l ? h.M : g.M0;
      if (ll[0] > cap)
        in.bad("slot " + std::to_string(i) + " has " + std::to_string(ll[0]) + " links on level " +
               std::to_string(l) + " (at most " + std::to_string(cap) + ")");
      for (uint32_t j = 1; j <= ll[0]; ++j)
        if (ll[j] >= n || levels[ll[j]] < l)
          in.bad("slot " + std::to_string(i) + " links to " + std::to_string(ll[j]) + " on level " +
                 std::to_string(l) + ", which is not a slot on that level");
    }
    const uint8_t* v = g.vec(uint32_t(i));
    bool finite = true;
    switch (g.p.storage) {
      case Storage::f32:
        for (size_t j = 0; j < h.dim; ++j) {
          float x;
          std::memcpy(&x, v + 4 * j, 4);
          finite = finite && std::isfinite(x);
        }
        break;
      case Storage::bf16:
        for (size_t j = 0; j < h.dim; ++j) {
          uint16_t x;
          std::memcpy(&x, v + 2 * j, 2);
          finite = finite && (x & 0x7f80) != 0x7f80;
        }
        break;
      case Storage::int8: {
        float lo, step;
        std::memcpy(&lo, v, 4);
        std::memcpy(&step, v + 4, 4);
        finite = std::isfinite(lo) && std::isfinite(step) && step >= 0;
        break;
      }
    }
    if (g.has_f32)
      for (size_t j = 0; j < h.dim; ++j) finite = finite && std::isfinite(g.f32[i * h.dim + j]);
    if (!finite) in.bad("vector " + std::to_string(i) + " holds a non-finite value");
  }

  // The label table and the free list.
  g.label_map.reserve(n - deleted);
  for (size_t i = 0; i < n; ++i) {
    if (flags[i] & detail::kDeleted) {
      g.free_slots.push_back(uint32_t(i));
      continue;
    }
    if (g.label_map.find(g.labels[i]) != detail::LabelMap::kEmpty)
      in.bad("label " + std::to_string(g.labels[i]) + " appears twice");
    g.label_map.put(g.labels[i], uint32_t(i));
  }
  g.count.store(uint32_t(n));
  g.live.store(n - deleted);
  g.deleted_count.store(deleted);
  g.entry.store(h.entry);

  auto impl = std::make_unique<Impl>();
  impl->g = std::move(gp);
  return Hnsw(std::move(impl));
}

}  // namespace scholar::index
