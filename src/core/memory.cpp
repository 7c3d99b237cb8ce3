// Large blocks on 2 MiB boundaries, advised for transparent huge pages.
//
// Why: on a virtual machine a TLB miss walks two page tables (the guest's and the host's), and a
// GEMM whose operands span tens of megabytes in 4 KiB pages misses the TLB on nearly every row of
// C and every packed row of its operands. On the Sapphire Rapids host of docs/performance.md, a
// 1,024 x 3,072 x 768 product ran at 105 GFLOP/s in 4 KiB pages and 144 in 2 MiB pages; the
// 1,024 x 50,257 x 768 LM head at 81 and 141.
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

// Whether Linux offers transparent huge pages to madvise: the bracketed word of
// /sys/kernel/mm/transparent_hugepage/enabled is "always" or "madvise" (not "never", and the file
// exists). Read once.
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

kernels::detail::RuntimeSwitch g_huge("SCHOLAR_HUGE_PAGES", "on", "off");

}  // namespace

void set_huge_pages(bool enabled) {
  g_huge.set(enabled);
}

bool huge_pages() {
  return g_huge.on() && os_offers_huge_pages();
}

namespace detail {

void* allocate_large(size_t bytes) {
  if (bytes < kLargeBlockBytes) return ::operator new (bytes, std::align_val_t{64});
  const bool advise = huge_pages();  // first: a bad SCHOLAR_HUGE_PAGES throws before mapping
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
  if (advise) ::madvise(p, length, MADV_HUGEPAGE);  // advice only: failure changes nothing
#else
  static_cast<void>(advise);
#endif
  return p;
}

void free_large(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kLargeBlockBytes) return ::operator delete (p, std::align_val_t{64});
  ::munmap(p, (bytes + kPage - 1) / kPage * kPage);
}

}  // namespace detail

}  // namespace scholar
