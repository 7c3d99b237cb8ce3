// FlatIndex: exact search; and the members VectorIndex shares with Hnsw.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "index/common.hpp"
#include "scholar/io/file.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"

namespace scholar::index {

std::string_view space_name(Space s) {
  switch (s) {
    case Space::l2:
      return "l2";
    case Space::inner_product:
      return "inner_product";
    case Space::cosine:
      return "cosine";
  }
  return "?";
}

std::string_view storage_name(Storage s) {
  switch (s) {
    case Storage::f32:
      return "f32";
    case Storage::bf16:
      return "bf16";
    case Storage::int8:
      return "int8";
  }
  return "?";
}

void VectorIndex::check_query(std::span<const float> query, size_t k, size_t ef) const {
  if (query.size() != dim())
    fail<ShapeError>("index::search: the query has ", query.size(),
                     " values, the index has dimension ", dim());
  if (k == 0) fail<ValueError>("index::search: k must be at least 1");
  if (ef != 0 && ef < k)
    fail<ValueError>("index::search: ef (", ef, ") must be at least k (", k, ")");
  for (size_t i = 0; i < query.size(); ++i)
    if (!std::isfinite(query[i]))
      fail<ValueError>("index::search: value ", i, " of the query is ", query[i]);
}

std::vector<Neighbor> VectorIndex::search(std::span<const float> query, size_t k, size_t ef,
                                          const Filter& filter) const {
  check_query(query, k, ef);
  return do_search(query, k, ef, filter);
}

std::vector<std::vector<Neighbor>> VectorIndex::search_batch(std::span<const float> queries,
                                                             size_t k, size_t ef,
                                                             const Filter& filter) const {
  const size_t d = dim();
  if (queries.size() % d != 0)
    fail<ShapeError>("index::search_batch: ", queries.size(),
                     " values are not a whole number of queries of dimension ", d);
  const size_t n = queries.size() / d;
  for (size_t i = 0; i < n; ++i) check_query(queries.subspan(i * d, d), k, ef);
  std::vector<std::vector<Neighbor>> out(n);
  parallel_for(0, static_cast<int64_t>(n), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      out[static_cast<size_t>(i)] =
          do_search(queries.subspan(static_cast<size_t>(i) * d, d), k, ef, filter);
  });
  return out;
}

// --- FlatIndex
// -------------------------------------------------------------------------------------

struct FlatIndex::Impl {
  size_t dim;
  Space space;
  std::vector<float> data;  // row i belongs to labels[i]
  std::vector<uint64_t> labels;
  detail::LabelMap map;
  mutable detail::RwLock mutex;

  // Stores v (normalized for cosine) into row `row`.
  void put_row(size_t row, std::span<const float> v, float scale) {
    float* dst = data.data() + row * dim;
    for (size_t i = 0; i < dim; ++i) dst[i] = v[i] * scale;
  }
  float prepare(const char* op, std::span<const float> v) const {
    detail::check_vector(op, v, dim);
    return space == Space::cosine ? detail::inverse_norm(op, v) : 1.0f;
  }
};

FlatIndex::FlatIndex(size_t dim, Space space) : impl_(std::make_unique<Impl>()) {
  if (dim == 0) fail<ValueError>("FlatIndex: dimension must be at least 1");
  impl_->dim = dim;
  impl_->space = space;
}
FlatIndex::~FlatIndex() = default;
FlatIndex::FlatIndex(FlatIndex&&) noexcept = default;
FlatIndex& FlatIndex::operator=(FlatIndex&&) noexcept = default;

size_t FlatIndex::dim() const noexcept {
  return impl_->dim;
}
Space FlatIndex::space() const noexcept {
  return impl_->space;
}
size_t FlatIndex::size() const noexcept {
  std::shared_lock lock(impl_->mutex);
  return impl_->labels.size();
}
bool FlatIndex::contains(uint64_t label) const {
  std::shared_lock lock(impl_->mutex);
  return impl_->map.find(label) != detail::LabelMap::kEmpty;
}

void FlatIndex::add(uint64_t label, std::span<const float> vector) {
  Impl& m = *impl_;
  const float scale = m.prepare("FlatIndex::add", vector);
  std::unique_lock lock(m.mutex);
  if (m.map.find(label) != detail::LabelMap::kEmpty)
    fail<ValueError>("FlatIndex::add: label ", label, " is already in the index (use update)");
  const size_t row = m.labels.size();
  m.data.resize((row + 1) * m.dim);
  m.labels.push_back(label);
  m.put_row(row, vector, scale);
  m.map.put(label, static_cast<uint32_t>(row));
}

void FlatIndex::update(uint64_t label, std::span<const float> vector) {
  Impl& m = *impl_;
  const float scale = m.prepare("FlatIndex::update", vector);
  std::unique_lock lock(m.mutex);
  const uint32_t row = m.map.find(label);
  if (row == detail::LabelMap::kEmpty)
    fail<IndexError>("FlatIndex::update: label ", label, " is not in the index");
  m.put_row(row, vector, scale);
}

bool FlatIndex::remove(uint64_t label) {
  Impl& m = *impl_;
  std::unique_lock lock(m.mutex);
  const uint32_t row = m.map.find(label);
  if (row == detail::LabelMap::kEmpty) return false;
  m.map.erase(label);
  const size_t last = m.labels.size() - 1;
  if (row != last) {  // the last row moves into the hole
    std::memcpy(m.data.data() + size_t{row} * m.dim, m.data.data() + last * m.dim,
                m.dim * sizeof(float));
    m.labels[row] = m.labels[last];
    m.map.put(m.labels[row], row);
  }
  m.labels.pop_back();
  m.data.resize(last * m.dim);
  return true;
}

std::vector<uint64_t> FlatIndex::labels() const {
  std::shared_lock lock(impl_->mutex);
  return impl_->labels;
}

size_t FlatIndex::memory_usage() const {
  std::shared_lock lock(impl_->mutex);
  return impl_->data.capacity() * sizeof(float) + impl_->labels.capacity() * sizeof(uint64_t) +
         impl_->map.memory_usage() + sizeof(Impl);
}

std::vector<Neighbor> FlatIndex::do_search(std::span<const float> query, size_t k, size_t,
                                           const Filter& filter) const {
  const Impl& m = *impl_;
  std::vector<float> q(query.begin(), query.end());
  if (m.space == Space::cosine) {
    const float s = detail::inverse_norm("FlatIndex::search", query);
    for (float& x : q) x *= s;
  }
  const auto& t = kernels::active();
  std::shared_lock lock(m.mutex);
  const size_t n = m.labels.size();
  detail::TopK best(k);
  for (size_t i = 0; i < n; ++i) {
    if (filter && !filter(m.labels[i])) continue;
    const float* x = m.data.data() + i * m.dim;
    best.push(m.labels[i],
              detail::not_nan(m.space == Space::l2 ? t.l2_squared(q.data(), x, m.dim)
                                                   : 1.0f - t.dot(q.data(), x, m.dim)));
  }
  return best.take();
}

// --- FlatIndex files
// ------------------------------------------------------------------------------- Header: magic,
// version, kind, space, pad, dim, count; then labels (u64), vectors (f32), checksum (u64 over every
// byte before it).

void FlatIndex::save(const std::string& path) const {
  const Impl& m = *impl_;
  std::shared_lock lock(m.mutex);
  io::AtomicFile f(path);
  detail::Checksum sum;
  auto put = [&](const void* p, size_t n) {
    f.write(p, n);
    sum.update(p, n);
  };
  const uint32_t space = uint32_t(m.space), pad = 0;
  const uint64_t dim = m.dim, count = m.labels.size();
  detail::write_preamble(put, detail::FileKind::flat);
  put(&space, 4);
  put(&pad, 4);
  put(&dim, 8);
  put(&count, 8);
  put(m.labels.data(), count * sizeof(uint64_t));
  put(m.data.data(), count * dim * sizeof(float));
  const uint64_t c = sum.value();
  f.write(&c, 8);
  f.commit();
}

FlatIndex FlatIndex::load(const std::string& path) {
  auto file = io::MappedFile::open(path);
  const uint8_t* base = file->data();
  detail::Cursor in(base, file->size(), path);
  detail::read_preamble(in, detail::FileKind::flat, "a FlatIndex");
  const auto space = in.get<uint32_t>("the space");
  if (space > uint32_t(Space::cosine)) in.bad("unknown space " + std::to_string(space));
  in.get<uint32_t>("padding");
  const auto dim = in.get<uint64_t>("the dimension");
  const auto count = in.get<uint64_t>("the count");
  if (dim == 0 || dim > (1u << 20)) in.bad("dimension " + std::to_string(dim) + " is out of range");
  const uint64_t row_bytes = 8 + dim * 4;
  if (count > (in.remaining() - std::min<size_t>(in.remaining(), 8)) / row_bytes)
    in.bad("claims " + std::to_string(count) + " vectors of dimension " + std::to_string(dim) +
           ", more than the file holds");
  const uint8_t* labels = in.take(count * 8, "the labels");
  const uint8_t* vectors = in.take(count * dim * 4, "the vectors");
  detail::Checksum sum;
  sum.update(base, in.pos());
  if (in.get<uint64_t>("the checksum") != sum.value()) in.bad("checksum mismatch (corrupt file)");
  if (in.remaining() != 0) in.bad(std::to_string(in.remaining()) + " bytes after the checksum");

  FlatIndex out(dim, Space(space));
  Impl& m = *out.impl_;
  m.labels.resize(count);
  std::memcpy(m.labels.data(), labels, count * 8);
  m.data.resize(count * dim);
  std::memcpy(m.data.data(), vectors, count * dim * 4);
  for (size_t i = 0; i < m.data.size(); ++i)
    if (!std::isfinite(m.data[i]))
      in.bad("vector " + std::to_string(i / dim) + " holds a non-finite value");
  m.map.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (m.map.find(m.labels[i]) != detail::LabelMap::kEmpty)
      in.bad("label " + std::to_string(m.labels[i]) + " appears twice");
    m.map.put(m.labels[i], static_cast<uint32_t>(i));
  }
  return out;
}

}  // namespace scholar::index
