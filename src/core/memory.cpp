// Large blocks on 2 MiB boundaries, advised for transparent huge pages.
//
// Why: on a virtual machine a TLB miss walks two page tables (the guest's and the host's). On the
// Sapphire Rapids virtual machine of docs/performance.md, f32 GEMMs with operands of tens of
// megabytes ran 0-4% faster in 2 MiB pages while the host's page walks were cheap, and 1.2-1.7x
// faster in the hours when they were not (a 1,024 x 50,257 x 768 LM head: 81 -> 141 GFLOP/s). The
// price there was the first touch: huge pages the host had not backed yet made a GPT-2 small
// training process take 10-23 s longer to end its first step. So tensor storage takes huge pages
// only when asked (set_huge_pages, SCHOLAR_HUGE_PAGES), as PyTorch (THP_MEM_ALLOC_ENABLE), glibc
// (glibc.malloc.hugetlb) and jemalloc do; the GEMMs' few megabytes of packing buffers, touched once
// per thread and then by every product, always do.
#include "core/memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <new>
#include <string>

#include "kernels/runtime_switch.hpp"
#include "scholar/tensor/tensor.hpp"

namespace scholar {

namespace {

constexpr size_t kPage = 4096;

kernels::detail::RuntimeSwitch g_huge("SCHOLAR_HUGE_PAGES", "on", "off");

}  // namespace

void set_huge_pages(bool enabled) {
  g_huge.set(enabled);
}

bool huge_pages() {
  return g_huge.on_or(false) && detail::os_offers_huge_pages();
}

namespace detail {

bool os_offers_huge_pages() {
  static const bool offers = [] {
#if defined(MADV_HUGEPAGE)
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string line;
    if (!std::getline(f, line)) return false;
    return line.find("[always]") != std::string::npos ||
           line.find("[madvise]") != std::string::npos;
#else
    return false;
#endif
  }();
  return offers;
}

namespace {

// Whether allocate_large maps the block itself.
bool mapped(size_t bytes, bool huge) {
  return huge && bytes >= kLargeBlockBytes && os_offers_huge_pages();
}

}  // namespace

void* allocate_large(size_t bytes, bool huge) {
  if (!mapped(bytes, huge)) return ::operator new (bytes, std::align_val_t{64});
  const size_t length = (bytes + kPage - 1) / kPage * kPage;
  // Map one boundary's worth more than needed, then unmap the ends outside the aligned block.
  const size_t span = length + kLargeBlockBytes;
  void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kLargeBlockBytes - 1) / kLargeBlockBytes * kLargeBlockBytes;
  if (aligned > start) ::munmap(raw, aligned - start);
  const uintptr_t end = start + span, block_end = aligned + length;
  if (end > block_end) ::munmap(reinterpret_cast<void*>(block_end), end - block_end);
  void* p = reinterpret_cast<void*>(aligned);
#if defined(MADV_HUGEPAGE)
  ::madvise(p, length, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  return p;
}

void free_large(void* p, size_t bytes, bool huge) noexcept {
  if (p == nullptr) return;
  if (!mapped(bytes, huge)) return ::operator delete (p, std::align_val_t{64});
  ::munmap(p, (bytes + kPage - 1) / kPage * kPage);
}

}  // namespace detail

}  // namespace scholar
