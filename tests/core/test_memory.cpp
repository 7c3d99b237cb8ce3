// Large blocks: 2 MiB boundaries and the huge-page advice (src/core/memory.cpp).
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/memory.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/tensor.hpp"

using namespace scholar;

namespace {

// The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled ("" if there is none).
std::string thp_mode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(f, line);
  const size_t open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos
             ? ""
             : line.substr(open + 1, close - open - 1);
}

// The THPeligible flag of the mapping that holds p in /proc/self/smaps (-1 if not found).
int thp_eligible(const void* p) {
  const auto at = reinterpret_cast<uintptr_t>(p);
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(f, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= at && at < hi;
    } else if (inside && line.rfind("THPeligible:", 0) == 0) {
      return std::stoi(line.substr(12));
    }
  }
  return -1;
}

}  // namespace

TEST_CASE("huge blocks sit on 2 MiB boundaries and read as zero, others on 64 bytes", "[memory]") {
  const size_t big = (size_t{3} << 20) + 100;
  auto* p = static_cast<unsigned char*>(detail::allocate_large(big, true));
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  if (detail::os_offers_huge_pages()) {  // a fresh mapping on a 2 MiB boundary
    CHECK(reinterpret_cast<uintptr_t>(p) % detail::kLargeBlockBytes == 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < big; ++i) nonzero += p[i] != 0;
    CHECK(nonzero == 0);
  }
  std::memset(p, 0x5a, big);  // every byte is writable
  CHECK(p[big - 1] == 0x5a);
  detail::free_large(p, big, true);

  void* q = detail::allocate_large(100, true);
  CHECK(reinterpret_cast<uintptr_t>(q) % 64 == 0);
  detail::free_large(q, 100, true);
  detail::free_large(nullptr, big, true);        // nothing to free
  void* r = detail::allocate_large(big, false);  // from operator new
  CHECK(reinterpret_cast<uintptr_t>(r) % 64 == 0);
  detail::free_large(r, big, false);
}

TEST_CASE("large blocks are advised for huge pages when asked, tensors while set_huge_pages is on",
          "[memory]") {
  const std::string mode = thp_mode();
  INFO("transparent_hugepage/enabled: " << mode);
  const bool offered = mode == "always" || mode == "madvise";
  CHECK(detail::os_offers_huge_pages() == offered);
  const size_t bytes = size_t{4} << 20;
  void* huge = detail::allocate_large(bytes, true);
  void* plain = detail::allocate_large(bytes, false);
  if (offered) CHECK(thp_eligible(huge) == 1);
  if (mode == "madvise") CHECK(thp_eligible(plain) == 0);  // "always" makes every mapping eligible
  detail::free_large(huge, bytes, true);
  detail::free_large(plain, bytes, false);

  // Tensor storage follows set_huge_pages (a fresh size, so that the cache has no block of it).
  const bool before = huge_pages();
  set_huge_pages(true);
  CHECK(huge_pages() == offered);
  {
    FloatTensor t = FloatTensor::zeros({1031, 1024});
    if (offered) {
      CHECK(reinterpret_cast<uintptr_t>(t.data()) % detail::kLargeBlockBytes == 0);
      CHECK(thp_eligible(t.data()) == 1);
    }
  }
  set_huge_pages(false);
  CHECK(!huge_pages());
  {
    FloatTensor t = FloatTensor::zeros({1033, 1024});
    if (mode == "madvise") CHECK(thp_eligible(t.data()) == 0);
  }
  set_huge_pages(before);
}
