// Internal pieces shared by FlatIndex and Hnsw: the label table, the file checksum, the bounded
// reader for index files, and vector checks.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "scholar/error.hpp"
#include "scholar/index/index.hpp"

namespace scholar::index::detail {

/// NaN becomes +inf (distances of huge vectors can overflow to inf - inf), so that comparisons and
/// sorts of distances stay a strict weak order.
inline float not_nan(float d) {
  return d == d ? d : std::numeric_limits<float>::infinity();
}

inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/// label -> slot, open addressing with linear probing: about 24 bytes per label (hnswlib's
/// std::unordered_map takes about 40).
class LabelMap {
 public:
  static constexpr uint32_t kEmpty = 0xffffffffu, kErased = 0xfffffffeu;

  /// The slot of `label`, or kEmpty.
  uint32_t find(uint64_t label) const {
    if (slots_.empty()) return kEmpty;
    for (size_t i = mix64(label) & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.slot == kEmpty) return kEmpty;
      if (e.slot != kErased && e.label == label) return e.slot;
    }
  }
  /// Inserts or overwrites.
  void put(uint64_t label, uint32_t slot) {
    if ((used_ + 1) * 4 > slots_.size() * 3) rehash(std::max<size_t>(16, live_ * 2 + 2));
    size_t tomb = SIZE_MAX;
    for (size_t i = mix64(label) & mask_;; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.slot == kEmpty) {
        if (tomb != SIZE_MAX) {
          slots_[tomb] = {label, slot};
        } else {
          e = {label, slot};
          ++used_;
        }
        ++live_;
        return;
      }
      if (e.slot == kErased) {
        if (tomb == SIZE_MAX) tomb = i;
      } else if (e.label == label) {
        e.slot = slot;
        return;
      }
    }
  }
  /// Returns whether the label was there.
  bool erase(uint64_t label) {
    if (slots_.empty()) return false;
    for (size_t i = mix64(label) & mask_;; i = (i + 1) & mask_) {
      Entry& e = slots_[i];
      if (e.slot == kEmpty) return false;
      if (e.slot != kErased && e.label == label) {
        e.slot = kErased;
        --live_;
        return true;
      }
    }
  }
  size_t size() const { return live_; }
  void clear() {
    slots_.clear();
    mask_ = 0;
    used_ = live_ = 0;
  }
  void reserve(size_t n) {
    if ((n + 1) * 4 > slots_.size() * 3) rehash(n);
  }
  size_t memory_usage() const { return slots_.capacity() * sizeof(Entry); }

 private:
  struct Entry {
    uint64_t label;
    uint32_t slot;
  };
  void rehash(size_t n) {
    size_t cap = 16;
    while (cap * 3 < (n + 1) * 4) cap *= 2;
    std::vector<Entry> old = std::move(slots_);
    slots_.assign(cap, Entry{0, kEmpty});
    mask_ = cap - 1;
    used_ = live_ = 0;
    for (const Entry& e : old)
      if (e.slot != kEmpty && e.slot != kErased) put(e.label, e.slot);
  }
  std::vector<Entry> slots_;
  size_t mask_ = 0, used_ = 0, live_ = 0;
};

/// A reader-writer lock that prefers writers: once a writer waits, new readers queue behind it, so
/// a steady stream of searches cannot starve update() or a growth (std::shared_mutex, glibc's
/// default rwlock, prefers readers and can). Not recursive: a thread holding it shared must not
/// take it again. Meets the SharedMutex requirements used by std::shared_lock and std::unique_lock.
class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l_, &a);
    pthread_rwlockattr_destroy(&a);
  }
  ~RwLock() { pthread_rwlock_destroy(&l_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;
  void lock() { pthread_rwlock_wrlock(&l_); }
  void unlock() { pthread_rwlock_unlock(&l_); }
  void lock_shared() { pthread_rwlock_rdlock(&l_); }
  void unlock_shared() { pthread_rwlock_unlock(&l_); }

 private:
  pthread_rwlock_t l_;
};

/// A 64-bit checksum of a byte stream, four independent multiply-xorshift lanes over 8-byte words
/// (several GB/s): it detects corruption, it is not a cryptographic hash.
class Checksum {
 public:
  void update(const void* data, size_t n) {
    auto p = static_cast<const uint8_t*>(data);
    total_ += n;
    while (n > 0 && fill_ > 0) {
      buf_[fill_++] = *p++;
      --n;
      if (fill_ == 32) {
        block(buf_);
        fill_ = 0;
      }
    }
    for (; n >= 32; n -= 32, p += 32) block(p);
    if (n > 0) {
      std::memcpy(buf_, p, n);
      fill_ = n;
    }
  }
  uint64_t value() const {
    uint64_t l[4] = {lane_[0], lane_[1], lane_[2], lane_[3]};
    uint8_t tail[32] = {};
    std::memcpy(tail, buf_, fill_);
    for (int i = 0; i < 4; ++i) {
      uint64_t w;
      std::memcpy(&w, tail + 8 * i, 8);
      l[i] = mix64(l[i] ^ w);
    }
    return mix64(l[0] ^ std::rotl(l[1], 16) ^ std::rotl(l[2], 32) ^ std::rotl(l[3], 48) ^ total_);
  }

 private:
  void block(const uint8_t* p) {
    for (int i = 0; i < 4; ++i) {
      uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      lane_[i] = (std::rotl(lane_[i] ^ w, 29)) * 0x9e3779b97f4a7c15ull;
    }
  }
  uint64_t lane_[4] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
                       0x082efa98ec4e6c89ull};
  uint8_t buf_[32] = {};
  size_t fill_ = 0;
  uint64_t total_ = 0;
};

/// Reads an index file's bytes in order; every read is bounds-checked and failures name the file.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, std::string path)
      : data_(data), size_(size), path_(std::move(path)) {}
  template <class T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  const uint8_t* take(size_t n, const char* what) {
    if (n > size_ - pos_)
      fail<FormatError>(path_, ": truncated: ", what, " needs ", n, " bytes at offset ", pos_,
                        " but the file has ", size_, " bytes");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  /// Skips to the next multiple of `a` bytes.
  void align(size_t a, const char* what) {
    const size_t r = pos_ % a;
    if (r) take(a - r, what);
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void bad(const std::string& what) const { fail<FormatError>(path_, ": ", what); }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
  std::string path_;
};

/// ShapeError / ValueError for a vector that cannot be stored.
inline void check_vector(const char* op, std::span<const float> v, size_t dim) {
  if (v.size() != dim)
    fail<ShapeError>("index::", op, ": the vector has ", v.size(),
                     " values, the index has dimension ", dim);
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      fail<ValueError>("index::", op, ": value ", i, " of the vector is ", v[i],
                       " (vectors must be finite)");
}

/// 1 / |v| for cosine; ValueError for a zero vector.
inline float inverse_norm(const char* op, std::span<const float> v) {
  double s = 0;
  for (float x : v) s += double{x} * x;
  if (!(s > 0)) fail<ValueError>("index::", op, ": a zero vector has no direction (cosine space)");
  return static_cast<float>(1.0 / std::sqrt(s));
}

/// The index file header's first bytes.
inline constexpr char kMagic[8] = {'S', 'C', 'H', 'O', 'L', 'I', 'D', 'X'};
inline constexpr uint32_t kFormatVersion = 1;
enum class FileKind : uint32_t { flat = 1, hnsw = 2 };

/// Writes what opens every index file (magic, version, kind) through put(data, bytes).
template <class Put>
void write_preamble(Put&& put, FileKind kind) {
  const uint32_t version = kFormatVersion, k = static_cast<uint32_t>(kind);
  put(kMagic, 8);
  put(&version, 4);
  put(&k, 4);
}

/// Reads and checks it; `name` is the class the caller loads ("an Hnsw index").
inline void read_preamble(Cursor& in, FileKind want, const char* name) {
  if (in.remaining() < 8 || std::memcmp(in.take(8, "the magic"), kMagic, 8) != 0)
    in.bad("not a scholar index file (bad magic)");
  const auto version = in.get<uint32_t>("the version");
  if (version != kFormatVersion)
    in.bad("format version " + std::to_string(version) + " is not supported (this build reads " +
           std::to_string(kFormatVersion) + ")");
  const auto kind = in.get<uint32_t>("the kind");
  if (kind != static_cast<uint32_t>(want))
    in.bad("holds another kind of index (" + std::to_string(kind) + "), not " + name);
}

/// The k nearest of the (label, distance) pairs pushed, nearest first (ties: smaller label first).
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {}
  void push(uint64_t label, float d) {
    if (heap_.size() < k_) {
      heap_.push_back({label, d});
      std::push_heap(heap_.begin(), heap_.end(), farther);
    } else if (d < heap_.front().distance) {
      std::pop_heap(heap_.begin(), heap_.end(), farther);
      heap_.back() = {label, d};
      std::push_heap(heap_.begin(), heap_.end(), farther);
    }
  }
  std::vector<Neighbor> take() {
    std::sort(heap_.begin(), heap_.end(), [](const Neighbor& a, const Neighbor& b) {
      return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
    });
    return std::move(heap_);
  }

 private:
  static bool farther(const Neighbor& a, const Neighbor& b) { return a.distance < b.distance; }
  size_t k_;
  std::vector<Neighbor> heap_;
};

}  // namespace scholar::index::detail
