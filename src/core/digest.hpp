// A fast 64-bit digest of large byte ranges (weights, token streams), 8 bytes per step: FNV-1a's
// xor-multiply on 64-bit words with a fold of the high bits. For telling contents apart (caches,
// fingerprints); not cryptographic.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace scholar::detail {

class Digest {
 public:
  void word(uint64_t w) {
    h_ ^= w;
    h_ *= 0x100000001b3ull;
    h_ ^= h_ >> 29;  // the multiply only moves bits up; fold the high ones back
  }
  /// The length, then the bytes (so ("ab", "c") and ("a", "bc") differ).
  void bytes(const void* p, size_t n) {
    word(n);
    const auto* b = static_cast<const unsigned char*>(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, b + i, 8);
      word(w);
    }
    if (i < n) {
      uint64_t w = 0;
      std::memcpy(&w, b + i, n - i);
      word(w);
    }
  }
  void text(std::string_view s) { bytes(s.data(), s.size()); }
  uint64_t value() const noexcept { return h_; }
  /// 16 hex digits.
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace scholar::detail
