// Large blocks of memory on huge-page boundaries: tensor storage (huge pages when set_huge_pages is
// on, scholar/tensor/tensor.hpp) and the GEMMs' packing buffers (huge pages wherever the OS
// offers them).
#pragma once

#include <cstddef>

namespace scholar::detail {

/// Blocks of this many bytes and more are mapped directly, on a boundary of this size.
inline constexpr size_t kLargeBlockBytes = size_t{2} << 20;

/// `bytes` (at least 1) of memory aligned to 64 bytes. A block of kLargeBlockBytes or more is
/// mapped from the OS on a 2 MiB boundary and, if `huge` and the OS offers them
/// (os_offers_huge_pages), advised for transparent huge pages; smaller blocks come from operator
/// new. New mappings read as zero. Throws std::bad_alloc when memory runs out. Thread-safe.
void* allocate_large(size_t bytes, bool huge);

/// Frees a block from allocate_large, given the same byte count. Thread-safe.
void free_large(void* p, size_t bytes) noexcept;

/// Whether Linux offers transparent huge pages to madvise (/sys/kernel/mm/transparent_hugepage/
/// enabled is "always" or "madvise"). Read once.
bool os_offers_huge_pages();

}  // namespace scholar::detail
