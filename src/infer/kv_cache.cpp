// The KV cache: cell bookkeeping and typed K/V rows (see kv_cache.hpp).
#include "infer/kv_cache.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"

namespace scholar::infer::detail {

KvCache::KvCache(int64_t layers, int64_t cells, int64_t width, int64_t head_dim, WeightType type)
    : layers_(layers),
      n_(cells),
      width_(width),
      head_dim_(head_dim),
      type_(type),
      row_bytes_(row_bytes(type, width)),
      kern_(&kernels::active().weight(type)) {
  const WeightTypeInfo& info = weight_type_info(type);
  if (head_dim % info.block_values != 0)
    fail<ValueError>("Session: a ", info.name, " KV cache stores blocks of ", info.block_values,
                     " values; the head dimension ", head_dim, " is not a multiple of that");
  const double total = 2.0 * static_cast<double>(layers) * static_cast<double>(cells) *
                       static_cast<double>(row_bytes_);
  try {
    if (total > 0x1p50) throw std::bad_alloc();  // also keeps the product in range
    const size_t n = static_cast<size_t>(layers * cells) * row_bytes_;
    k_.assign(n, 0);
    v_.assign(n, 0);
  } catch (const std::exception&) {  // bad_alloc or length_error
    fail<ValueError>("Session: a KV cache of ", cells, " cells (", info.name, ") needs ",
                     total / (1 << 30), " GiB, which could not be allocated; pass a smaller n_ctx");
  }
  pos_.assign(static_cast<size_t>(cells), -1);
  seq_.assign(static_cast<size_t>(cells), 0);
}

int64_t KvCache::free_cells(int64_t enough) const {
  int64_t n = 0;
  for (int64_t c = 0; c < n_ && n < enough; ++c) n += seq_[static_cast<size_t>(c)] == 0 ? 1 : 0;
  return n;
}

int64_t KvCache::take(int32_t seq, int64_t position) {
  int64_t c = free_hint_;
  while (seq_[static_cast<size_t>(c)] != 0) ++c;  // the caller checked that one is free
  SCHOLAR_DEBUG_ASSERT(c < n_, "no free cell");
  seq_[static_cast<size_t>(c)] = uint64_t{1} << seq;
  pos_[static_cast<size_t>(c)] = position;
  hi_ = std::max(hi_, c + 1);
  free_hint_ = c + 1;
  return c;
}

int64_t KvCache::used() const {
  int64_t n = 0;
  for (int64_t c = 0; c < hi_; ++c) n += seq_[static_cast<size_t>(c)] != 0 ? 1 : 0;
  return n;
}

int64_t KvCache::next_pos(int32_t seq) const {
  const uint64_t bit = uint64_t{1} << seq;
  int64_t p = -1;
  for (int64_t c = 0; c < hi_; ++c)
    if (seq_[static_cast<size_t>(c)] & bit) p = std::max(p, pos_[static_cast<size_t>(c)]);
  return p + 1;
}

void KvCache::clear() {
  std::fill(seq_.begin(), seq_.end(), 0);
  std::fill(pos_.begin(), pos_.end(), -1);
  hi_ = 0;
  free_hint_ = 0;
}

void KvCache::shrink() {
  while (hi_ > 0 && seq_[static_cast<size_t>(hi_ - 1)] == 0) --hi_;
}

void KvCache::remove(uint64_t mask, int64_t p0, int64_t p1) {
  for (int64_t c = 0; c < hi_; ++c) {
    const auto i = static_cast<size_t>(c);
    if (pos_[i] >= p0 && pos_[i] < p1) {
      seq_[i] &= ~mask;
      if (seq_[i] == 0) {
        pos_[i] = -1;
        free_hint_ = std::min(free_hint_, c);
      }
    }
  }
  shrink();
}

void KvCache::copy(int32_t src, int32_t dst, int64_t p0, int64_t p1) {
  remove(uint64_t{1} << dst, p0, p1);
  const uint64_t s = uint64_t{1} << src, d = uint64_t{1} << dst;
  for (int64_t c = 0; c < hi_; ++c) {
    const auto i = static_cast<size_t>(c);
    if ((seq_[i] & s) && pos_[i] >= p0 && pos_[i] < p1) seq_[i] |= d;
  }
}

void KvCache::keep_only(int32_t seq) {
  const uint64_t bit = uint64_t{1} << seq;
  for (int64_t c = 0; c < hi_; ++c) {
    const auto i = static_cast<size_t>(c);
    seq_[i] &= bit;
    if (seq_[i] == 0) {
      pos_[i] = -1;
      free_hint_ = std::min(free_hint_, c);
    }
  }
  shrink();
}

void KvCache::store(int64_t layer, int64_t cell, const float* k, const float* v) {
  const auto n = static_cast<size_t>(width_);
  kern_->from_f32(row(k_, layer, cell), k, n);
  kern_->from_f32(row(v_, layer, cell), v, n);
}

const float* KvCache::view(const std::vector<uint8_t>& s, int64_t layer, int64_t head,
                           int64_t cells, float* scratch, int64_t& stride) const {
  if (type_ == WeightType::f32) {
    stride = width_;
    return reinterpret_cast<const float*>(row(s, layer, 0)) + head * head_dim_;
  }
  stride = head_dim_;
  const size_t offset = row_bytes(type_, head * head_dim_);
  const auto d = static_cast<size_t>(head_dim_);
  for (int64_t c = 0; c < cells; ++c)
    kern_->to_f32(scratch + c * head_dim_, row(s, layer, c) + offset, d);
  return scratch;
}

const float* KvCache::keys(int64_t layer, int64_t head, int64_t cells, float* scratch,
                           int64_t& stride) const {
  return view(k_, layer, head, cells, scratch, stride);
}

const float* KvCache::values(int64_t layer, int64_t head, int64_t cells, float* scratch,
                             int64_t& stride) const {
  return view(v_, layer, head, cells, scratch, stride);
}

// State: [layers, width, type, hi] as int64, then (pos, seq) per cell, then per layer and cell the
// K row and the V row as stored.
void KvCache::save(std::string& out) const {
  for (int64_t v : {layers_, width_, static_cast<int64_t>(type_), hi_}) io::append_bytes(out, v);
  for (int64_t c = 0; c < hi_; ++c) {
    io::append_bytes(out, pos_[static_cast<size_t>(c)]);
    io::append_bytes(out, seq_[static_cast<size_t>(c)]);
  }
  for (int64_t l = 0; l < layers_; ++l)
    for (int64_t c = 0; c < hi_; ++c) {
      out.append(reinterpret_cast<const char*>(row(k_, l, c)), row_bytes_);
      out.append(reinterpret_cast<const char*>(row(v_, l, c)), row_bytes_);
    }
}

void KvCache::load(std::string_view bytes, size_t& at, int64_t context_length, int max_seq) {
  auto get = [&](void* out, size_t n) {
    if (n > bytes.size() - at)
      fail<FormatError>("Session::load_state: truncated state (", bytes.size(), " bytes)");
    std::memcpy(out, bytes.data() + at, n);
    at += n;
  };
  int64_t hdr[4];
  get(hdr, sizeof hdr);
  if (hdr[0] != layers_ || hdr[1] != width_)
    fail<FormatError>("Session::load_state: the state is for another model (", hdr[0],
                      " layers, KV width ", hdr[1], "; this one: ", layers_, ", ", width_, ")");
  if (hdr[2] != static_cast<int64_t>(type_))
    fail<FormatError>("Session::load_state: the state's KV cache is stored as ggml type ", hdr[2],
                      ", this session's as ", weight_type_name(type_));
  const int64_t hi = hdr[3];
  if (hi < 0 || hi > n_)
    fail<FormatError>("Session::load_state: ", hi, " cells do not fit this session's ", n_);
  const size_t need =
      static_cast<size_t>(hi) * (16 + 2 * row_bytes_ * static_cast<size_t>(layers_));
  if (bytes.size() - at != need)
    fail<FormatError>("Session::load_state: expected ", need, " bytes of cells, found ",
                      bytes.size() - at);
  std::vector<int64_t> pos(static_cast<size_t>(hi));
  std::vector<uint64_t> seq(static_cast<size_t>(hi));
  for (size_t c = 0; c < pos.size(); ++c) {
    get(&pos[c], 8);
    get(&seq[c], 8);
    if (seq[c] != 0 &&
        (pos[c] < 0 || pos[c] >= context_length || (max_seq < 64 && (seq[c] >> max_seq) != 0)))
      fail<FormatError>("Session::load_state: cell ", c, " is invalid for this session");
  }
  clear();
  for (size_t c = 0; c < pos.size(); ++c) {
    pos_[c] = seq[c] ? pos[c] : -1;
    seq_[c] = seq[c];
  }
  for (int64_t l = 0; l < layers_; ++l)
    for (int64_t c = 0; c < hi; ++c) {
      get(row(k_, l, c), row_bytes_);
      get(row(v_, l, c), row_bytes_);
    }
  hi_ = hi;
  shrink();
}

}  // namespace scholar::infer::detail
