// UTF-8 helpers against the Unicode standard's table of well-formed byte sequences (Table 3-7),
// checked exhaustively for every 1-, 2- and 3-byte sequence and every code point.
#include <catch2/catch.hpp>
#include <string>

#include "scholar/text/utf8.hpp"

using namespace scholar::text;

namespace {

// Table 3-7, Well-Formed UTF-8 Byte Sequences: the allowed range of each byte by the first.
bool well_formed(const unsigned char* b, size_t n) {
  auto in = [](unsigned char x, int lo, int hi) { return x >= lo && x <= hi; };
  if (n == 1) return b[0] <= 0x7F;
  if (n == 2) return in(b[0], 0xC2, 0xDF) && in(b[1], 0x80, 0xBF);
  if (n == 3) {
    if (b[0] == 0xE0) return in(b[1], 0xA0, 0xBF) && in(b[2], 0x80, 0xBF);
    if (in(b[0], 0xE1, 0xEC) || in(b[0], 0xEE, 0xEF))
      return in(b[1], 0x80, 0xBF) && in(b[2], 0x80, 0xBF);
    if (b[0] == 0xED) return in(b[1], 0x80, 0x9F) && in(b[2], 0x80, 0xBF);
    return false;
  }
  if (n == 4) {
    const bool tail = in(b[2], 0x80, 0xBF) && in(b[3], 0x80, 0xBF);
    if (b[0] == 0xF0) return in(b[1], 0x90, 0xBF) && tail;
    if (in(b[0], 0xF1, 0xF3)) return in(b[1], 0x80, 0xBF) && tail;
    if (b[0] == 0xF4) return in(b[1], 0x80, 0x8F) && tail;
  }
  return false;
}

}  // namespace

TEST_CASE("decode_utf8 accepts exactly the well-formed sequences of Table 3-7", "[text][utf8]") {
  // Every sequence of 1, 2 and 3 bytes: decoding the whole string as one character must succeed
  // exactly when the table says the bytes form one.
  int64_t checked = 0, mismatches = 0;
  for (size_t n = 1; n <= 3; ++n) {
    const uint32_t count = 1u << (8 * n);
    for (uint32_t v = 0; v < count; ++v) {
      unsigned char b[3] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                            static_cast<unsigned char>(v >> 16)};
      const std::string_view s(reinterpret_cast<const char*>(b), n);
      const Utf8Char c = decode_utf8(s, 0);
      const bool whole = c.cp != kInvalidCodePoint && c.len == n;
      mismatches += whole != well_formed(b, n);
      ++checked;
    }
  }
  CHECK(checked == 256 + 65536 + 16777216);
  CHECK(mismatches == 0);
  // Four bytes: the boundaries of each lead byte's range, and leads that never start one.
  for (unsigned lead : {0xF0u, 0xF1u, 0xF3u, 0xF4u, 0xF5u, 0xF8u, 0xFFu})
    for (unsigned second : {0x7Fu, 0x80u, 0x8Fu, 0x90u, 0xBFu, 0xC0u}) {
      const unsigned char b[4] = {static_cast<unsigned char>(lead),
                                  static_cast<unsigned char>(second), 0x80, 0xBF};
      const Utf8Char c = decode_utf8(std::string_view(reinterpret_cast<const char*>(b), 4), 0);
      INFO(std::hex << lead << " " << second);
      CHECK((c.cp != kInvalidCodePoint && c.len == 4) == well_formed(b, 4));
    }
}

TEST_CASE("append_utf8 and decode_utf8 round-trip every code point", "[text][utf8]") {
  std::string s;
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // surrogates are not characters
    s.clear();
    append_utf8(s, cp);
    const size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    const Utf8Char c = decode_utf8(s, 0);
    if (s.size() != want || c.cp != cp || c.len != want) FAIL("code point " << cp);
  }
}

TEST_CASE("validity, length, incomplete tails and lead lengths", "[text][utf8]") {
  const std::string ok = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80";  // a é 日 😀
  CHECK(is_valid_utf8(ok));
  CHECK(utf8_length(ok) == 4);
  CHECK(invalid_utf8_offset("ab\xc0\xafz") == 2);   // overlong '/'
  CHECK(invalid_utf8_offset("\xed\xa0\x80") == 0);  // a surrogate
  CHECK(utf8_length("a\xff"
                    "b") == 3);  // an invalid byte counts as one
  CHECK(incomplete_utf8_tail(ok) == 0);
  CHECK(incomplete_utf8_tail(ok.substr(0, ok.size() - 1)) == 3);
  CHECK(incomplete_utf8_tail(ok.substr(0, 2)) == 1);
  CHECK(incomplete_utf8_tail("abc") == 0);
  CHECK(utf8_lead_length(0x41) == 1);
  CHECK(utf8_lead_length(0x80) == 1);  // a stray continuation byte stands alone (llama.cpp)
  CHECK(utf8_lead_length(0xE6) == 3);
  CHECK(utf8_lead_length(0xFF) == 4);
}

TEST_CASE("to_valid_utf8 replaces each invalid byte with U+FFFD", "[text][utf8]") {
  const std::string ok = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80";
  CHECK(to_valid_utf8(ok) == ok);
  CHECK(to_valid_utf8("ab\xe6\x97") == "ab\xef\xbf\xbd\xef\xbf\xbd");  // cut inside a character
  CHECK(to_valid_utf8("\xff"
                      "x\xed\xa0\x80") ==
        "\xef\xbf\xbd"
        "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate: three invalid bytes
  CHECK(is_valid_utf8(to_valid_utf8("\xc0\xaf\x80\xfe")));
  CHECK(to_valid_utf8("").empty());
}
