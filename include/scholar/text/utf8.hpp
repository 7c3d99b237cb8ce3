// scholar/text/utf8.hpp: UTF-8 decoding and encoding, strict by the Unicode standard (Table 3-7:
// no overlong forms, no surrogates, nothing above U+10FFFF), and the helpers the tokenizers,
// corpora, streaming and splitters share.
//
//   for (size_t i = 0; i < s.size();) {
//     const text::Utf8Char c = text::decode_utf8(s, i);  // c.cp == kInvalidCodePoint: a bad byte
//     i += c.len;
//   }
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace scholar::text {

/// What decode_utf8 returns for a byte that does not start a valid sequence.
inline constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFF;

/// One decoded character: its code point and its length in bytes (1 to 4).
struct Utf8Char {
  uint32_t cp;
  size_t len;
};

/// Decodes the character starting at byte i of s (i < s.size()). An invalid or truncated sequence
/// decodes as {kInvalidCodePoint, 1}, so a caller advancing by len always makes progress.
constexpr Utf8Char decode_utf8(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1};
  size_t len = 0;
  uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1Fu;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0Fu;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07u;
  else
    return {kInvalidCodePoint, 1};
  if (i + len > s.size()) return {kInvalidCodePoint, 1};
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return {kInvalidCodePoint, 1};
    cp = (cp << 6) | (cc & 0x3Fu);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return {kInvalidCodePoint, 1};
  return {cp, len};
}

/// Appends code point cp (at most U+10FFFF, not a surrogate) as UTF-8.
inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// Offset of the first byte that does not start a valid sequence, or std::string_view::npos if
/// all of s is valid UTF-8.
constexpr size_t invalid_utf8_offset(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint) return i;
    i += c.len;
  }
  return std::string_view::npos;
}

/// True if s is entirely valid UTF-8.
constexpr bool is_valid_utf8(std::string_view s) {
  return invalid_utf8_offset(s) == std::string_view::npos;
}

/// s with every byte that does not start a valid sequence replaced by U+FFFD (the replacement
/// character), as Python's decode(errors="replace") does byte by byte: text a model generated can
/// end inside a character or hold byte tokens that form no character.
inline std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint)
      out += "\xEF\xBF\xBD";
    else
      out.append(s.substr(i, c.len));
    i += c.len;
  }
  return out;
}

/// Number of characters in s (each invalid byte counts as one).
constexpr size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += decode_utf8(s, i).len) ++n;
  return n;
}

/// Bytes at the end of s that begin a character not yet complete (0 to 3): what a stream must
/// hold back until more bytes arrive.
constexpr size_t incomplete_utf8_tail(std::string_view s) {
  for (size_t back = 1; back <= 4 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/// A character's length from its first byte alone, as llama.cpp reads it (so invalid UTF-8 splits
/// the same way: a stray continuation byte stands alone, 0xF8..0xFF claims four bytes).
constexpr size_t utf8_lead_length(unsigned char lead) {
  constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

}  // namespace scholar::text
