// A 64-bit FNV-1a digest of a tokenizer's contents, written as 16 hex digits (Tokenizer::
// fingerprint). Not cryptographic: it tells vocabularies apart, it does not defend against forgery.
#pragma once

#include <bit>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace scholar::text::detail {

class Fingerprint {
 public:
  void bytes(std::string_view s) {
    number(s.size());  // length first, so ("ab", "c") and ("a", "bc") differ
    for (const char c : s) byte(static_cast<unsigned char>(c));
  }
  void number(uint64_t v) {
    for (int i = 0; i < 8; ++i) byte(static_cast<unsigned char>(v >> (8 * i)));
  }
  void real(float f) { number(std::bit_cast<uint32_t>(f)); }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  void byte(unsigned char c) {
    h_ ^= c;
    h_ *= 0x100000001b3ull;
  }
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace scholar::text::detail
