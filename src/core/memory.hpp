// Large blocks of memory on huge-page boundaries: tensor storage (huge pages when set_huge_pages is
// on, scholar/tensor/tensor.hpp) and the GEMMs' packing buffers (huge pages wherever the OS
// offers them).
#pragma once

#include <cstddef>

namespace scholar::detail {

/// Blocks of this many bytes and more can be mapped on a boundary of this size.
inline constexpr size_t kLargeBlockBytes = size_t{2} << 20;

/// `bytes` (at least 1) of memory aligned to 64 bytes. With `huge`, a block of kLargeBlockBytes or
/// more is mapped from the OS on a 2 MiB boundary and advised for transparent huge pages where the
/// OS offers them (os_offers_huge_pages); every other block comes from operator new (whose heap
/// reuses freed memory without page faults). Throws std::bad_alloc when memory runs out.
/// Thread-safe.
void* allocate_large(size_t bytes, bool huge);

/// Frees a block from allocate_large, given the same byte count and `huge`. Thread-safe.
void free_large(void* p, size_t bytes, bool huge) noexcept;

/// Whether Linux offers transparent huge pages to madvise (/sys/kernel/mm/transparent_hugepage/
/// enabled is "always" or "madvise"). Read once.
bool os_offers_huge_pages();

}  // namespace scholar::detail
