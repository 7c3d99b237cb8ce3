// The Unicode character data: generated tables (src/text/unicode_tables.inc) and lookups.
#include "scholar/text/unicode.hpp"

#include <algorithm>
#include <array>
#include <iterator>

#include "scholar/text/utf8.hpp"

namespace scholar::text {
namespace {

template <size_t N>
struct CodeMapping {
  uint32_t cp;
  std::array<uint32_t, N> to;  // zero-padded
};

struct CombiningRun {
  uint32_t first, last;
  uint8_t ccc;
};

#include "text/unicode_tables.inc"

template <typename Table>
auto find_mapping(const Table& table, uint32_t cp) {
  const auto it = std::lower_bound(std::begin(table), std::end(table), cp,
                                   [](const auto& m, uint32_t c) { return m.cp < c; });
  return it != std::end(table) && it->cp == cp ? &*it : nullptr;
}

// Hangul syllables decompose arithmetically (Unicode 3.12).
constexpr uint32_t kHangulFirst = 0xAC00, kHangulCount = 11172;
constexpr uint32_t kJamoL = 0x1100, kJamoV = 0x1161, kJamoT = 0x11A7, kJamoVCount = 21,
                   kJamoTCount = 28;

}  // namespace

UnicodeCategory general_category(uint32_t cp) noexcept {
  if (cp > 0x10FFFF) return UnicodeCategory::Cn;
  // The last run starting at or before cp.
  const uint32_t key = (cp << 5) | 31;
  const auto it = std::upper_bound(std::begin(kCategoryStarts), std::end(kCategoryStarts), key);
  return static_cast<UnicodeCategory>(*(it - 1) & 31);
}

std::string_view category_name(UnicodeCategory c) noexcept {
  static constexpr std::string_view kNames[] = {
      "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
      "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"};
  static_assert(std::size(kNames) == static_cast<size_t>(UnicodeCategory::Cn) + 1);
  return kNames[static_cast<size_t>(c)];
}

bool is_letter(uint32_t cp) noexcept {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return general_category(cp) <= UnicodeCategory::Lo;
}

bool is_number(uint32_t cp) noexcept {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  const auto c = general_category(cp);
  return c >= UnicodeCategory::Nd && c <= UnicodeCategory::No;
}

bool is_alphanumeric(uint32_t cp) noexcept {
  return is_letter(cp) || is_number(cp);
}

bool is_punctuation(uint32_t cp) noexcept {
  const auto c = general_category(cp);
  return c >= UnicodeCategory::Pc && c <= UnicodeCategory::Po;
}

bool is_nonspacing_mark(uint32_t cp) noexcept {
  return cp >= 0x300 && general_category(cp) == UnicodeCategory::Mn;
}

bool is_other(uint32_t cp) noexcept {
  return general_category(cp) >= UnicodeCategory::Cc;
}

bool is_white_space(uint32_t cp) noexcept {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_cjk_ideograph(uint32_t cp) noexcept {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_lowercase(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    return;
  }
  if (const auto* m = find_mapping(kLowercase, cp)) {
    for (uint32_t c : m->to)
      if (c) append_utf8(out, c);
    return;
  }
  append_utf8(out, cp);
}

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint)
      out.push_back(s[i]);
    else
      append_lowercase(out, c.cp);
    i += c.len;
  }
  return out;
}

uint8_t combining_class(uint32_t cp) noexcept {
  if (cp < 0x300) return 0;
  const auto it = std::upper_bound(std::begin(kCombiningClasses), std::end(kCombiningClasses), cp,
                                   [](uint32_t c, const CombiningRun& r) { return c < r.first; });
  return it != std::begin(kCombiningClasses) && cp <= (it - 1)->last ? (it - 1)->ccc : 0;
}

std::u32string nfd(uint32_t cp) {
  if (cp >= kHangulFirst && cp < kHangulFirst + kHangulCount) {
    const uint32_t s = cp - kHangulFirst;
    std::u32string out{char32_t(kJamoL + s / (kJamoVCount * kJamoTCount)),
                       char32_t(kJamoV + (s % (kJamoVCount * kJamoTCount)) / kJamoTCount)};
    if (s % kJamoTCount) out.push_back(char32_t(kJamoT + s % kJamoTCount));
    return out;
  }
  if (cp >= 0xC0) {
    if (const auto* m = find_mapping(kDecompositions, cp)) {
      std::u32string out;
      for (uint32_t c : m->to)
        if (c) out.push_back(char32_t(c));
      return out;
    }
  }
  return std::u32string(1, char32_t(cp));
}

std::string nfd(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::u32string run;  // decomposed code points since the last starter, to reorder
  auto flush = [&] {
    // Canonical ordering: a stable sort of each run of nonstarters by combining class.
    auto begin = run.begin();
    while (begin != run.end()) {
      if (combining_class(*begin) == 0) {
        ++begin;
        continue;
      }
      auto end = begin;
      while (end != run.end() && combining_class(*end) != 0) ++end;
      std::stable_sort(begin, end, [](char32_t a, char32_t b) {
        return combining_class(a) < combining_class(b);
      });
      begin = end;
    }
    for (char32_t c : run) append_utf8(out, c);
    run.clear();
  };
  for (size_t i = 0; i < s.size();) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp == kInvalidCodePoint) {
      flush();
      out.push_back(s[i]);
    } else if (c.cp < 0x80) {
      flush();
      out.push_back(static_cast<char>(c.cp));
    } else {
      const std::u32string d = nfd(c.cp);
      if (combining_class(d.front()) == 0) flush();
      run += d;
    }
    i += c.len;
  }
  flush();
  return out;
}

}  // namespace scholar::text
