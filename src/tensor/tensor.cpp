// Tensor<T>: storage, strided copies, dtype conversion, and the explicit instantiations.
#include "scholar/tensor/tensor.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "core/memory.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/tensor/quant.hpp"
#include "tensor/strided.hpp"

namespace scholar {

namespace detail {

namespace {

size_t physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<size_t>(pages) * static_cast<size_t>(page);
#endif
  return 0;
}

// Tensor storage cache. Large blocks freed by tensors are kept, by exact (page-rounded) size, and
// handed out again to the next tensor of that size: training and inference loops allocate the same
// shapes over and over, and fresh memory from the OS costs a page fault per 4 KiB on first touch
// (about 10% of a 512 x 3072 x 768 matmul). Blocks under 64 KiB go straight to operator new, which
// is fast for them. The cache never holds more than its limit; past it, blocks are freed at once.
// A training step frees most of what it allocated before the next one allocates it again, so a
// limit below what one step frees turns every step's large buffers back into page faults: 1 GiB
// cost a GPT-2 small step (whose logits alone are 206 MB, three times over) 12% of its speed.
class StorageCache {
 public:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kMinCached = size_t{64} << 10;
  static constexpr size_t kPage = 4096;

  static StorageCache& instance() {
    static StorageCache* cache = new StorageCache();  // never destroyed: tensors may outlive main
    return *cache;
  }

  // A block of `bytes`, in huge pages if `huge` (allocate_large); the cache keeps the two kinds
  // apart.
  void* take(size_t bytes, bool huge) {
    if (bytes >= kMinCached) {
      std::lock_guard lock(mutex_);
      auto it = free_.find({bytes, huge});
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    return allocate_large(bytes, huge);
  }

  void give(void* p, size_t bytes, bool huge) {
    if (bytes >= kMinCached) {
      std::lock_guard lock(mutex_);
      if (cached_ + bytes <= limit_) {
        free_[{bytes, huge}].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    free_large(p, bytes, huge);
  }

  void set_limit(size_t bytes) {
    std::lock_guard lock(mutex_);
    limit_ = bytes;
    trim_locked();
  }
  size_t limit() {
    std::lock_guard lock(mutex_);
    return limit_;
  }
  size_t cached() {
    std::lock_guard lock(mutex_);
    return cached_;
  }
  void clear() { set_limit_then_restore(); }

 private:
  StorageCache() : limit_(default_storage_cache_limit()) {
    if (const char* env = std::getenv("SCHOLAR_STORAGE_CACHE_MB"); env && *env) {
      char* end = nullptr;
      const unsigned long long mb = std::strtoull(env, &end, 10);
      if (*end == '\0') limit_ = static_cast<size_t>(mb) << 20;
    }
  }
  void trim_locked() {
    for (auto it = free_.begin(); it != free_.end() && cached_ > limit_;) {
      while (!it->second.empty() && cached_ > limit_) {
        free_large(it->second.back(), it->first.first, it->first.second);
        it->second.pop_back();
        cached_ -= it->first.first;
      }
      it = it->second.empty() ? free_.erase(it) : std::next(it);
    }
  }
  void set_limit_then_restore() {
    std::lock_guard lock(mutex_);
    const size_t keep = limit_;
    limit_ = 0;
    trim_locked();
    limit_ = keep;
  }

  std::mutex mutex_;
  std::map<std::pair<size_t, bool>, std::vector<void*>> free_;  // by (bytes, huge)
  size_t cached_ = 0;
  size_t limit_;
};

}  // namespace

std::shared_ptr<void> allocate_aligned(size_t bytes) {
  // Whole pages for cached sizes (so near sizes share blocks), whole cache lines below, so that
  // SIMD code may touch the last line safely.
  size_t rounded =
      bytes == 0 ? StorageCache::kAlign
                 : (bytes + StorageCache::kAlign - 1) / StorageCache::kAlign * StorageCache::kAlign;
  if (rounded >= StorageCache::kMinCached)
    rounded = (rounded + StorageCache::kPage - 1) / StorageCache::kPage * StorageCache::kPage;
  const bool huge = rounded >= kLargeBlockBytes && huge_pages();
  void* p = StorageCache::instance().take(rounded, huge);
  return std::shared_ptr<void>(
      p, [rounded, huge](void* q) { StorageCache::instance().give(q, rounded, huge); });
}

}  // namespace detail

size_t default_storage_cache_limit() {
  return std::max(size_t{1} << 30, detail::physical_memory_bytes() / 4);
}
size_t storage_cache_limit() {
  return detail::StorageCache::instance().limit();
}
void set_storage_cache_limit(size_t bytes) {
  detail::StorageCache::instance().set_limit(bytes);
}
size_t storage_cache_bytes() {
  return detail::StorageCache::instance().cached();
}
void empty_storage_cache() {
  detail::StorageCache::instance().clear();
}

namespace detail {

void strided_copy(void* dst, const Layout& dl, const void* src, const Layout& sl, size_t elem) {
  if (!(dl.shape == sl.shape))
    fail<ShapeError>("copy: destination shape ", dl.shape.str(), " differs from source shape ",
                     sl.shape.str());
  const Strides* strides[2] = {&dl.strides, &sl.strides};
  const StridedLoop<2> loop(dl.shape, strides);
  auto* d = static_cast<char*>(dst) + dl.offset * static_cast<int64_t>(elem);
  const auto* s = static_cast<const char*>(src) + sl.offset * static_cast<int64_t>(elem);
  const auto e = static_cast<int64_t>(elem);
  loop.run([&](const int64_t* off, int64_t n, const int64_t* st) {
    char* dp = d + off[0] * e;
    const char* sp = s + off[1] * e;
    if (st[0] == 1 && st[1] == 1) {
      std::memcpy(dp, sp, static_cast<size_t>(n * e));
    } else if (elem == 4) {
      for (int64_t i = 0; i < n; ++i) std::memcpy(dp + i * st[0] * 4, sp + i * st[1] * 4, 4);
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(dp + i * st[0] * e, sp + i * st[1] * e, elem);
    }
  });
}

namespace {

template <class D, class S>
D convert_one(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, int32_t>) {
    return static_cast<int32_t>(static_cast<float>(v));  // truncates toward zero, as a C cast
  } else if constexpr (std::is_same_v<S, int32_t>) {
    return D(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, float>) {
    return static_cast<float>(v);
  } else {
    return D(static_cast<float>(v));
  }
}

template <class D, class S>
void convert_typed(D* dst, const S* src, const Layout& sl) {
  const Layout dl = Layout::contiguous(sl.shape);
  const Strides* strides[2] = {&dl.strides, &sl.strides};
  const StridedLoop<2> loop(sl.shape, strides);
  const kernels::KernelTable& k = kernels::active();
  loop.run([&](const int64_t* off, int64_t n, const int64_t* st) {
    D* dp = dst + off[0];
    const S* sp = src + sl.offset + off[1];
    const auto un = static_cast<size_t>(n);
    if (st[1] == 1) {
      if constexpr (std::is_same_v<D, bf16> && std::is_same_v<S, float>)
        return k.f32_to_bf16(reinterpret_cast<uint16_t*>(dp), sp, un);
      if constexpr (std::is_same_v<D, f16> && std::is_same_v<S, float>)
        return k.f32_to_f16(reinterpret_cast<uint16_t*>(dp), sp, un);
      if constexpr (std::is_same_v<D, float> && std::is_same_v<S, bf16>)
        return k.bf16_to_f32(dp, reinterpret_cast<const uint16_t*>(sp), un);
      if constexpr (std::is_same_v<D, float> && std::is_same_v<S, f16>)
        return k.f16_to_f32(dp, reinterpret_cast<const uint16_t*>(sp), un);
    }
    for (int64_t i = 0; i < n; ++i) dp[i] = convert_one<D>(sp[i * st[1]]);
  });
}

template <class D>
void convert_from(D* dst, const void* src, DType st, const Layout& sl) {
  switch (st) {
    case DType::f32:
      return convert_typed(dst, static_cast<const float*>(src), sl);
    case DType::bf16:
      return convert_typed(dst, static_cast<const bf16*>(src), sl);
    case DType::f16:
      return convert_typed(dst, static_cast<const f16*>(src), sl);
    case DType::i32:
      return convert_typed(dst, static_cast<const int32_t*>(src), sl);
  }
}

}  // namespace

void convert(void* dst, DType dt, const void* src, DType st, const Layout& sl) {
  switch (dt) {
    case DType::f32:
      return convert_from(static_cast<float*>(dst), src, st, sl);
    case DType::bf16:
      return convert_from(static_cast<bf16*>(dst), src, st, sl);
    case DType::f16:
      return convert_from(static_cast<f16*>(dst), src, st, sl);
    case DType::i32:
      return convert_from(static_cast<int32_t*>(dst), src, st, sl);
  }
}

void throw_bad_index(const char* op, std::span<const int64_t> idx, const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < idx.size(); ++i) s += (i ? ", " : "") + std::to_string(idx[i]);
  s += ")";
  if (static_cast<int>(idx.size()) != shape.rank())
    fail<IndexError>(op, ": ", idx.size(), " indices ", s, " for a tensor of rank ", shape.rank(),
                     " (shape ", shape.str(), ")");
  fail<IndexError>(op, ": index ", s, " is out of bounds for shape ", shape.str());
}

}  // namespace detail

template class Tensor<float>;
template class Tensor<bf16>;
template class Tensor<f16>;
template class Tensor<int32_t>;

std::optional<WeightType> parse_weight_type(std::string_view name) {
  for (const auto& row : kWeightTypes)
    if (name == row.name || name == row.ggml_name) return row.type;
  return std::nullopt;
}

}  // namespace scholar
