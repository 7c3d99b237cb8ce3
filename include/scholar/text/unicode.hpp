// scholar/text/unicode.hpp: the Unicode character data the tokenizers, splitters and the BM25
// analyzer share, for the whole code space (Unicode 14.0, generated from Python's unicodedata by
// scripts/gen_unicode_tables.py): general categories, White_Space, full lowercase mapping and
// canonical decomposition (NFD).
//
//   text::general_category(U'。')          // UnicodeCategory::Po
//   text::to_lower("ÀÉÎ İstanbul")         // "àéî i̇stanbul" (U+0130 lowers to "i" + U+0307)
//   text::nfd(U'é')                        // {U'e', 0x301}
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace scholar::text {

/// Unicode's general categories (the two-letter values of UnicodeData.txt).
// clang-format off
enum class UnicodeCategory : uint8_t {
  Lu, Ll, Lt, Lm, Lo,          // letters
  Mn, Mc, Me,                  // marks (Mn: nonspacing, the accents NFD splits off)
  Nd, Nl, No,                  // numbers
  Pc, Pd, Ps, Pe, Pi, Pf, Po,  // punctuation
  Sm, Sc, Sk, So,              // symbols
  Zs, Zl, Zp,                  // separators
  Cc, Cf, Cs, Co, Cn           // other: control, format, surrogate, private use, unassigned
};
// clang-format on

/// The general category of a code point (Cn above U+10FFFF).
UnicodeCategory general_category(uint32_t cp) noexcept;
/// "Lu", "Po", ...
std::string_view category_name(UnicodeCategory c) noexcept;

/// \p{L}.
bool is_letter(uint32_t cp) noexcept;
/// \p{N}.
bool is_number(uint32_t cp) noexcept;
/// \p{L} or \p{N}.
bool is_alphanumeric(uint32_t cp) noexcept;
/// \p{P}: the seven punctuation categories.
bool is_punctuation(uint32_t cp) noexcept;
/// \p{Mn}: nonspacing marks (accents once NFD has split them off).
bool is_nonspacing_mark(uint32_t cp) noexcept;
/// \p{C}: control, format, surrogate, private-use and unassigned code points.
bool is_other(uint32_t cp) noexcept;
/// Unicode's White_Space property (Rust's char::is_whitespace, \s of Hugging Face's regexes).
bool is_white_space(uint32_t cp) noexcept;
/// A CJK ideograph as BERT counts them (the CJK Unified Ideographs blocks and their extensions A
/// to E, plus the compatibility ideographs): the characters its normalizer surrounds with spaces.
bool is_cjk_ideograph(uint32_t cp) noexcept;

/// Appends the full lowercase mapping of cp as UTF-8 (one to three code points).
void append_lowercase(std::string& out, uint32_t cp);
/// The lowercase of s, character by character (as Python's str.lower and Rust's to_lowercase,
/// without the context-dependent final-sigma rule); bytes that are not valid UTF-8 are kept.
std::string to_lower(std::string_view s);

/// The full canonical decomposition of one code point (itself if it has none).
std::u32string nfd(uint32_t cp);
/// Canonical decomposition (Unicode normalization form D) of s: every character decomposed, then
/// each run of combining marks put in canonical order. Bytes that are not valid UTF-8 are kept.
std::string nfd(std::string_view s);
/// The canonical combining class of cp (0 for starters).
uint8_t combining_class(uint32_t cp) noexcept;

}  // namespace scholar::text
