// Large blocks of memory on huge-page boundaries: tensor storage and the GEMMs' packing buffers
// (internal; the switch is public in scholar/tensor/tensor.hpp: set_huge_pages).
#pragma once

#include <cstddef>

namespace scholar::detail {

/// Blocks of this many bytes and more are mapped directly, on a boundary of this size.
inline constexpr size_t kLargeBlockBytes = size_t{2} << 20;

/// `bytes` (at least 1) of memory aligned to 64 bytes. A block of kLargeBlockBytes or more is
/// mapped from the OS on a 2 MiB boundary and, while huge_pages() is on, advised for transparent
/// huge pages; smaller blocks come from operator new. New mappings read as zero. Throws
/// std::bad_alloc when memory runs out. Thread-safe.
void* allocate_large(size_t bytes);

/// Frees a block from allocate_large, given the same byte count. Thread-safe.
void free_large(void* p, size_t bytes) noexcept;

}  // namespace scholar::detail
