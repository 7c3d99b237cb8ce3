// Byte-level BPE: GPT-2 pre-tokenization, encoding, decoding, training, and the file formats.
#include <algorithm>
#include <array>
#include <map>
#include <queue>
#include <unordered_set>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"
#include "text/fingerprint.hpp"
#include "text/merges.hpp"

namespace scholar::text {

namespace {

// --- Unicode classes for the pre-tokenizer -------------------------------------------------------

enum class Class : uint8_t { letter, number, space, other };

// JavaScript's \s (the class gpt-3-encoder's regex uses).
bool is_space(uint32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

// Unicode's White_Space property (the \s of Rust's regex, which Hugging Face tokenizers use, and
// of llama.cpp): JavaScript's class plus U+0085 and without U+FEFF.
bool is_unicode_space(uint32_t cp) {
  return is_white_space(cp);
}

constexpr uint32_t kInvalid = kInvalidCodePoint;  // a byte that does not start valid UTF-8

Class classify(uint32_t cp) {
  if (cp == kInvalid) return Class::other;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return Class::letter;
    if (cp >= '0' && cp <= '9') return Class::number;
    return is_space(cp) ? Class::space : Class::other;
  }
  if (is_space(cp)) return Class::space;
  if (is_letter(cp)) return Class::letter;
  if (is_number(cp)) return Class::number;
  return Class::other;
}

Class classify_unicode(uint32_t cp) {
  if (cp == kInvalid) return Class::other;
  if (is_unicode_space(cp)) return Class::space;
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return Class::letter;
    return cp >= '0' && cp <= '9' ? Class::number : Class::other;
  }
  if (is_letter(cp)) return Class::letter;
  if (is_number(cp)) return Class::number;
  return Class::other;
}

// Decodes one code point at s[i]; invalid UTF-8 decodes as kInvalid with length 1.
std::pair<uint32_t, size_t> next_cp(std::string_view s, size_t i) {
  const Utf8Char c = decode_utf8(s, i);
  return {c.cp, c.len};
}

// --- GPT-2's byte <-> printable character map
// ------------------------------------------------------

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::unordered_map<uint32_t, uint8_t> to_byte;
  ByteMap() {
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::array<bool, 256> direct{};
    for (int b : bs) direct[static_cast<size_t>(b)] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b)
      to_cp[static_cast<size_t>(b)] = direct[static_cast<size_t>(b)]
                                          ? static_cast<uint32_t>(b)
                                          : 256u + static_cast<uint32_t>(n++);
    for (int b = 0; b < 256; ++b) to_byte[to_cp[static_cast<size_t>(b)]] = static_cast<uint8_t>(b);
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// Bytes -> GPT-2's printable form ("Ġhello" for " hello").
std::string to_printable(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) append_utf8(out, byte_map().to_cp[static_cast<unsigned char>(c)]);
  return out;
}

// GPT-2's printable form -> bytes; nullopt if a character is not in the byte map.
std::optional<std::string> from_printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto [cp, len] = next_cp(s, i);
    auto it = byte_map().to_byte.find(cp);
    if (cp == kInvalid || it == byte_map().to_byte.end()) return std::nullopt;
    out.push_back(static_cast<char>(it->second));
    i += len;
  }
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
}

}  // namespace

// --- pre-tokenization ----------------------------------------------------------------------------
// GPT-2's rule, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ ,
// as a scanner: regex engines in the standard library have no Unicode classes.

std::vector<std::string_view> gpt2_pretokenize(std::string_view s) {
  std::vector<std::string_view> out;
  const size_t n = s.size();
  auto run = [&](size_t j, Class cls) {  // end of the run of `cls` starting at j
    while (j < n) {
      const auto [cp, len] = next_cp(s, j);
      if (classify(cp) != cls) break;
      j += len;
    }
    return j;
  };
  size_t i = 0;
  while (i < n) {
    if (s[i] == '\'' && i + 1 < n) {
      const std::string_view rest = s.substr(i + 1, 2);
      size_t len = 0;
      if (rest.rfind("re", 0) == 0 || rest.rfind("ve", 0) == 0 || rest.rfind("ll", 0) == 0)
        len = 3;
      else if (rest[0] == 's' || rest[0] == 't' || rest[0] == 'm' || rest[0] == 'd')
        len = 2;
      if (len) {
        out.push_back(s.substr(i, len));
        i += len;
        continue;
      }
    }
    const auto [cp, len] = next_cp(s, i);
    const Class cls = classify(cp);
    if (cp == ' ' && i + 1 < n) {  // " ?X+": a single space joins the run that follows it
      const auto [cp2, len2] = next_cp(s, i + 1);
      const Class c2 = classify(cp2);
      if (c2 != Class::space) {
        const size_t end = run(i + 1 + len2, c2);
        out.push_back(s.substr(i, end - i));
        i = end;
        continue;
      }
    }
    if (cls != Class::space) {
      const size_t end = run(i + len, cls);
      out.push_back(s.substr(i, end - i));
      i = end;
      continue;
    }
    // Whitespace: the whole run at the end of the text; otherwise all but its last character (which
    // then leads the next piece or stands alone), as "\s+(?!\S)|\s+" does.
    const size_t end = run(i + len, Class::space);
    if (end == n) {
      out.push_back(s.substr(i));
      i = n;
    } else {
      size_t last = i;  // start of the last whitespace character of the run
      for (size_t k = i; k < end;) {
        last = k;
        k += next_cp(s, k).second;
      }
      const size_t stop = last > i ? last : end;
      out.push_back(s.substr(i, stop - i));
      i = stop;
    }
  }
  return out;
}

// Llama 3's rule, (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ , and Qwen2's (max_digits = 1), as a
// scanner that tries the alternatives in order at each position, as the regex does.
std::vector<std::string_view> llama3_pretokenize(std::string_view s, size_t max_digits) {
  std::vector<std::string_view> out;
  const size_t n = s.size();
  auto at = [&](size_t j) {  // (class, length) of the code point at j
    const auto [cp, len] = next_cp(s, j);
    return std::make_pair(classify_unicode(cp), len);
  };
  auto run = [&](size_t j, Class cls) {
    while (j < n) {
      const auto [c, len] = at(j);
      if (c != cls) break;
      j += len;
    }
    return j;
  };
  auto lower = [](char c) { return static_cast<char>(c | 0x20); };
  size_t i = 0;
  auto emit = [&](size_t end) {
    out.push_back(s.substr(i, end - i));
    i = end;
  };
  while (i < n) {
    if (s[i] == '\'' && i + 1 < n) {  // contractions, any case
      const char a = lower(s[i + 1]), b = i + 2 < n ? lower(s[i + 2]) : '\0';
      size_t len = 0;
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        len = 3;
      else if (a == 's' || a == 't' || a == 'm' || a == 'd')
        len = 2;
      if (len) {
        emit(i + len);
        continue;
      }
    }
    const auto [cp, len] = next_cp(s, i);
    const Class c = classify_unicode(cp);
    if (c == Class::letter) {  // [^\r\n\p{L}\p{N}]?\p{L}+ without the prefix
      emit(run(i + len, Class::letter));
      continue;
    }
    if (c != Class::number && cp != '\r' && cp != '\n' && i + len < n &&
        at(i + len).first == Class::letter) {  // ... with one leading character
      emit(run(i + len, Class::letter));
      continue;
    }
    if (c == Class::number) {  // \p{N}{1,max_digits}
      size_t j = i + len, k = 1;
      for (; j < n && k < max_digits; ++k) {
        const auto [c2, len2] = at(j);
        if (c2 != Class::number) break;
        j += len2;
      }
      emit(j);
      continue;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    size_t j = n;  // start of the run of "other" characters, if this alternative applies
    if (c == Class::other)
      j = i;
    else if (cp == ' ' && i + 1 < n && at(i + 1).first == Class::other)
      j = i + 1;
    if (j != n) {
      size_t end = run(j, Class::other);
      while (end < n && (s[end] == '\r' || s[end] == '\n')) ++end;
      emit(end);
      continue;
    }
    // Whitespace: "\s*[\r\n]+" (up to the run's last line break), else "\s+(?!\S)", else "\s+".
    const size_t e = run(i, Class::space);
    size_t last_break = n, last = i;
    for (size_t k = i; k < e; k += next_cp(s, k).second) {
      if (s[k] == '\r' || s[k] == '\n') last_break = k;
      last = k;
    }
    if (last_break != n)
      emit(last_break + 1);
    else if (e == n || last == i)
      emit(e);
    else
      emit(last);
  }
  return out;
}

std::string_view pre_tokenizer_name(PreTokenizer rule) {
  switch (rule) {
    case PreTokenizer::gpt2:
      return "gpt-2";
    case PreTokenizer::llama3:
      return "llama-bpe";
    case PreTokenizer::qwen2:
      return "qwen2";
  }
  return "?";
}

std::optional<PreTokenizer> pre_tokenizer_from_name(std::string_view name) {
  if (name == "gpt-2" || name == "default") return PreTokenizer::gpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreTokenizer::llama3;
  if (name == "qwen2") return PreTokenizer::qwen2;
  return std::nullopt;
}

std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer rule) {
  switch (rule) {
    case PreTokenizer::gpt2:
      return gpt2_pretokenize(text);
    case PreTokenizer::llama3:
      return llama3_pretokenize(text, 3);
    case PreTokenizer::qwen2:
      return llama3_pretokenize(text, 1);
  }
  return {};
}

// The regexes of Hugging Face's Split pre-tokenizers for the llama3 and qwen2 rules, as their
// tokenizer.json files spell them.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// --- the tokenizer -------------------------------------------------------------------------------

BpeTokenizer::BpeTokenizer() {
  for (int b = 0; b < 256; ++b) {
    byte_ids_[static_cast<size_t>(b)] = b;
    add_token(std::string(1, static_cast<char>(b)), false);
  }
}

void BpeTokenizer::add_token(std::string bytes, bool special) {
  const auto id = static_cast<int32_t>(tokens_.size());
  if (special) {
    if (!special_by_text_.emplace(bytes, id).second)
      fail<ValueError>("BPE: special token '", bytes, "' given twice");
    special_ids_.push_back(id);
  } else if (!ids_.emplace(bytes, id).second) {
    fail<FormatError>("BPE: token '", to_printable(bytes), "' appears twice in the vocabulary");
  }
  tokens_.push_back(std::move(bytes));
}

void BpeTokenizer::add_merge(int32_t left, int32_t right) {
  const std::string merged =
      tokens_[static_cast<size_t>(left)] + tokens_[static_cast<size_t>(right)];
  auto it = ids_.find(merged);
  if (it == ids_.end())
    fail<FormatError>("BPE: merge '", to_printable(tokens_[static_cast<size_t>(left)]), " ",
                      to_printable(tokens_[static_cast<size_t>(right)]),
                      "' makes a token missing from the vocabulary");
  const auto rank = static_cast<int32_t>(merges_.size());
  if (!merge_rank_.emplace(pair_key(left, right), std::make_pair(rank, it->second)).second)
    fail<FormatError>("BPE: merge '", to_printable(tokens_[static_cast<size_t>(left)]), " ",
                      to_printable(tokens_[static_cast<size_t>(right)]), "' appears twice");
  merges_.emplace_back(left, right);
}

const std::string& BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail<IndexError>("BPE: token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
  return tokens_[static_cast<size_t>(id)];
}

std::optional<int32_t> BpeTokenizer::find(std::string_view bytes) const {
  if (auto it = ids_.find(std::string(bytes)); it != ids_.end()) return it->second;
  if (auto it = special_by_text_.find(std::string(bytes)); it != special_by_text_.end())
    return it->second;
  return std::nullopt;
}

bool BpeTokenizer::is_special(int32_t id) const {
  return std::find(special_ids_.begin(), special_ids_.end(), id) != special_ids_.end();
}

// Merges the bytes of one piece, lowest rank first (leftmost among equals), as GPT-2 does.
void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  const size_t n = piece.size();
  if (n == 0) return;
  if (ignore_merges_ && n > 1)
    if (auto it = ids_.find(std::string(piece)); it != ids_.end()) {
      out.push_back(it->second);
      return;
    }
  std::vector<int32_t> sym(n);
  for (size_t i = 0; i < n; ++i) sym[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
  if (n <= 64) {
    // Short pieces: scan for the best pair each round.
    while (sym.size() > 1) {
      int32_t best_rank = INT32_MAX, best_id = -1;
      size_t best = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = merge_rank_.find(pair_key(sym[i], sym[i + 1]));
        if (it != merge_rank_.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          best_id = it->second.second;
          best = i;
        }
      }
      if (best_id < 0) break;
      sym[best] = best_id;
      sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    out.insert(out.end(), sym.begin(), sym.end());
    return;
  }
  // Long pieces: a linked list and a heap of candidate pairs, O(n log n).
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[static_cast<size_t>(pos)] < 0) return;
    const int32_t a = sym[static_cast<size_t>(pos)],
                  b = sym[static_cast<size_t>(next[static_cast<size_t>(pos)])];
    auto it = merge_rank_.find(pair_key(a, b));
    if (it != merge_rank_.end()) heap.push({it->second.first, pos, a, b});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const auto p = static_cast<size_t>(c.pos);
    if (!alive[p] || sym[p] != c.left || next[p] < 0 ||
        sym[static_cast<size_t>(next[p])] != c.right)
      continue;
    const auto q = static_cast<size_t>(next[p]);
    sym[p] = merge_rank_.at(pair_key(c.left, c.right)).second;
    alive[q] = false;
    next[p] = next[q];
    if (next[q] >= 0) prev[static_cast<size_t>(next[q])] = c.pos;
    push(prev[p]);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[static_cast<size_t>(i)])
    out.push_back(sym[static_cast<size_t>(i)]);
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  for (std::string_view piece : pretokenize(text, pre_)) encode_piece(piece, out);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  if (!allow_special || special_by_text_.empty()) {
    encode_plain(text, out);
    return out;
  }
  // Split at the earliest (then longest) special token, repeatedly.
  size_t start = 0;
  while (start < text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    int32_t best_id = -1;
    for (const auto& [tok, id] : special_by_text_) {
      const size_t at = text.find(tok, start);
      if (at != std::string_view::npos && (at < best || (at == best && tok.size() > best_len))) {
        best = at;
        best_len = tok.size();
        best_id = id;
      }
    }
    if (best == std::string_view::npos) break;
    encode_plain(text.substr(start, best - start), out);
    out.push_back(best_id);
    start = best + best_len;
  }
  encode_plain(text.substr(start), out);
  return out;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) out += token_bytes(id);
  return out;
}

// --- training ------------------------------------------------------------------------------------

BpeTokenizer BpeTokenizer::train(std::string_view corpus, const TrainOptions& options) {
  const std::string_view one[] = {corpus};
  return train(one, options);
}

BpeTokenizer BpeTokenizer::train(std::span<const std::string_view> texts, const TrainOptions& o) {
  const auto specials = static_cast<int64_t>(o.special_tokens.size());
  if (o.vocab_size < 256 + specials)
    fail<ValueError>("BPE train: vocab_size ", o.vocab_size, " is below 256 bytes + ", specials,
                     " special tokens");
  if (o.min_frequency < 1)
    fail<ValueError>("BPE train: min_frequency must be >= 1, got ", o.min_frequency);
  BpeTokenizer tok;
  tok.pre_ = o.pre_tokenizer;
  // Distinct pieces and how often each occurs.
  std::unordered_map<std::string_view, int64_t> piece_count;
  for (std::string_view t : texts)
    for (std::string_view p : pretokenize(t, o.pre_tokenizer)) ++piece_count[p];
  std::vector<detail::MergeWord> words;
  words.reserve(piece_count.size());
  for (const auto& [p, c] : piece_count) {
    detail::MergeWord w{{}, c};
    for (const char ch : p) w.sym.push_back(static_cast<unsigned char>(ch));
    words.push_back(std::move(w));
  }
  // Deterministic order regardless of hashing.
  std::sort(words.begin(), words.end(),
            [](const detail::MergeWord& a, const detail::MergeWord& b) { return a.sym < b.sym; });
  // Symbols are token ids: the 256 bytes first, then each merge's token.
  detail::learn_merges(
      words, o.vocab_size - specials - 256, o.min_frequency,
      [&](int32_t left, int32_t right) {
        tok.add_token(
            tok.tokens_[static_cast<size_t>(left)] + tok.tokens_[static_cast<size_t>(right)],
            false);
        tok.add_merge(left, right);
        return detail::Merged{static_cast<int32_t>(tok.tokens_.size() - 1)};
      },
      o.progress);
  for (const std::string& s : o.special_tokens) tok.add_token(s, true);
  tok.guess_special_tokens();
  return tok;
}

// --- files ---------------------------------------------------------------------------------------

BpeTokenizer BpeTokenizer::from_gpt2_files(const std::string& encoder_json,
                                           const std::string& vocab_bpe) {
  const io::Json enc = io::Json::parse(io::read_file(encoder_json), encoder_json);
  const auto& entries = enc.as_object(encoder_json);
  std::vector<std::pair<int64_t, std::string>> by_id;
  for (const auto& [printable, id] : entries) {
    const int64_t i = id.as_int(encoder_json + ": id of '" + printable + "'");
    by_id.emplace_back(i, printable);
  }
  std::sort(by_id.begin(), by_id.end());
  // Read the merges first: a vocabulary entry that is neither one byte nor the result of a merge
  // (GPT-2's <|endoftext|>) can never come out of BPE, so it is a special token.
  const std::string merges = io::read_file(vocab_bpe);
  std::vector<std::pair<std::string, std::string>> merge_pairs;
  std::unordered_set<std::string> merged;
  size_t pos = 0, line_no = 0;
  while (pos < merges.size()) {
    size_t eol = merges.find('\n', pos);
    if (eol == std::string::npos) eol = merges.size();
    const std::string_view line(merges.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      fail<FormatError>(vocab_bpe, ": line ", line_no, " is not 'left right'");
    auto a = from_printable(line.substr(0, sp)), b = from_printable(line.substr(sp + 1));
    if (!a || !b)
      fail<FormatError>(vocab_bpe, ": line ", line_no, " has characters outside GPT-2's byte map");
    merged.insert(*a + *b);
    merge_pairs.emplace_back(std::move(*a), std::move(*b));
  }
  BpeTokenizer tok;
  tok.tokens_.clear();
  tok.ids_.clear();
  for (size_t k = 0; k < by_id.size(); ++k) {
    const auto& [id, printable] = by_id[k];
    if (id != static_cast<int64_t>(k))
      fail<FormatError>(encoder_json, ": ids are not 0..", by_id.size() - 1, " without gaps (", id,
                        " at position ", k, ")");
    auto bytes = from_printable(printable);
    if (!bytes || (bytes->size() > 1 && !merged.contains(*bytes))) {
      tok.add_token(printable, true);
    } else {
      tok.add_token(std::move(*bytes), false);
    }
  }
  for (int b = 0; b < 256; ++b) {
    auto it = tok.ids_.find(std::string(1, static_cast<char>(b)));
    if (it == tok.ids_.end())
      fail<FormatError>(encoder_json, ": byte ", b,
                        " has no token: not a byte-level BPE vocabulary");
    tok.byte_ids_[static_cast<size_t>(b)] = it->second;
  }
  for (size_t k = 0; k < merge_pairs.size(); ++k) {
    auto ia = tok.ids_.find(merge_pairs[k].first), ib = tok.ids_.find(merge_pairs[k].second);
    if (ia == tok.ids_.end() || ib == tok.ids_.end())
      fail<FormatError>(vocab_bpe, ": merge ", k + 1, " ('", to_printable(merge_pairs[k].first),
                        " ", to_printable(merge_pairs[k].second), "') uses a token missing from ",
                        encoder_json);
    tok.add_merge(ia->second, ib->second);
  }
  tok.guess_special_tokens();
  return tok;
}

io::Json BpeTokenizer::to_json() const {
  using io::Json;
  Json::Object members;  // built directly: Json::set checks for duplicates (quadratic here)
  members.reserve(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id)
    if (!is_special(static_cast<int32_t>(id)))
      members.emplace_back(to_printable(tokens_[id]), Json(static_cast<int64_t>(id)));
  Json vocab = Json::object(std::move(members));
  Json merges = Json::array();
  for (const auto& [a, b] : merges_)
    merges.push_back(Json(to_printable(tokens_[static_cast<size_t>(a)]) + " " +
                          to_printable(tokens_[static_cast<size_t>(b)])));
  Json added = Json::array();
  for (const int32_t id : special_ids_) {
    Json t = Json::object();
    t.set("id", Json(static_cast<int64_t>(id)));
    t.set("content", Json(tokens_[static_cast<size_t>(id)]));
    t.set("single_word", Json(false));
    t.set("lstrip", Json(false));
    t.set("rstrip", Json(false));
    t.set("normalized", Json(false));
    t.set("special", Json(true));
    added.push_back(std::move(t));
  }
  auto byte_level = [] {
    Json p = Json::object();
    p.set("type", Json("ByteLevel"));
    p.set("add_prefix_space", Json(false));
    p.set("trim_offsets", Json(true));
    p.set("use_regex", Json(true));
    return p;
  };
  Json model = Json::object();
  model.set("type", Json("BPE"));
  model.set("dropout", Json());
  model.set("unk_token", Json());
  model.set("continuing_subword_prefix", Json(""));
  model.set("end_of_word_suffix", Json(""));
  model.set("fuse_unk", Json(false));
  model.set("byte_fallback", Json(false));
  model.set("ignore_merges", Json(ignore_merges_));
  model.set("vocab", std::move(vocab));
  model.set("merges", std::move(merges));
  Json j = Json::object();
  j.set("version", Json("1.0"));
  j.set("truncation", Json());
  j.set("padding", Json());
  j.set("added_tokens", std::move(added));
  j.set("normalizer", Json());
  if (pre_ == PreTokenizer::gpt2) {
    j.set("pre_tokenizer", byte_level());
  } else {  // Hugging Face's form: a regex Split, then ByteLevel without its own regex
    Json pattern = Json::object();
    pattern.set("Regex",
                Json(std::string(pre_ == PreTokenizer::llama3 ? kLlama3Regex : kQwen2Regex)));
    Json split = Json::object();
    split.set("type", Json("Split"));
    split.set("pattern", std::move(pattern));
    split.set("behavior", Json("Isolated"));
    split.set("invert", Json(false));
    Json bl = byte_level();
    bl.set("use_regex", Json(false));
    Json seq = Json::object();
    seq.set("type", Json("Sequence"));
    Json list = Json::array();
    list.push_back(std::move(split));
    list.push_back(std::move(bl));
    seq.set("pretokenizers", std::move(list));
    j.set("pre_tokenizer", std::move(seq));
  }
  j.set("post_processor", byte_level());
  j.set("decoder", byte_level());
  j.set("model", std::move(model));
  return j;
}

std::string BpeTokenizer::fingerprint() const {
  detail::Fingerprint f;
  f.bytes("bpe");
  f.bytes(pre_tokenizer_name(pre_));
  f.number(ignore_merges_ ? 1 : 0);
  f.number(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id) {
    f.bytes(tokens_[id]);
    f.number(is_special(static_cast<int32_t>(id)) ? 1 : 0);
  }
  f.number(merges_.size());
  for (const auto& [a, b] : merges_) {
    f.number(static_cast<uint32_t>(a));
    f.number(static_cast<uint32_t>(b));
  }
  return f.hex();
}

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  return from_json(io::Json::parse(io::read_file(path), path), path);
}

BpeTokenizer BpeTokenizer::from_json(const io::Json& j, std::string_view source) {
  const std::string src(source);
  const io::Json& model = j.at("model", src);
  const std::string& type = model.at("type", src + ": model").as_string(src + ": model.type");
  if (type != "BPE")
    fail<FormatError>(src, ": model type '", type, "' is not supported (BPE only)");
  // Pre-tokenization: GPT-2's byte-level rule, or a Split by Llama 3's or Qwen2's regex followed by
  // ByteLevel without its own regex.
  const io::Json* pre = j.find("pre_tokenizer");
  auto type_of = [](const io::Json& p) {
    return p.is_object() && p.find("type") && p.at("type").is_string() ? p.at("type").as_string()
                                                                       : std::string();
  };
  auto is_gpt2_byte_level = [&](const io::Json& p) {
    return type_of(p) == "ByteLevel" && (!p.find("use_regex") || p.at("use_regex").as_bool());
  };
  auto split_rule = [&](const io::Json& p) -> std::optional<PreTokenizer> {
    if (type_of(p) != "Split" || !p.find("pattern") || !p.at("pattern").is_object()) return {};
    const io::Json* re = p.at("pattern").find("Regex");
    if (!re || !re->is_string()) return {};
    if (re->as_string() == kLlama3Regex) return PreTokenizer::llama3;
    if (re->as_string() == kQwen2Regex) return PreTokenizer::qwen2;
    return {};
  };
  std::optional<PreTokenizer> rule;
  if (pre && is_gpt2_byte_level(*pre)) {
    rule = PreTokenizer::gpt2;
  } else if (pre && type_of(*pre) == "Sequence" && pre->find("pretokenizers")) {
    for (const io::Json& p : pre->at("pretokenizers").as_array(src + ": pretokenizers")) {
      if (is_gpt2_byte_level(p)) rule = PreTokenizer::gpt2;
      if (auto r = split_rule(p)) rule = r;
    }
  }
  if (!rule)
    fail<FormatError>(src, ": pre-tokenizer ", pre ? pre->dump() : "none",
                      " is not one scholar implements (GPT-2's byte-level rule, or a Split by "
                      "Llama 3's or Qwen2's regex)");
  const auto& vocab = model.at("vocab", src + ": model").as_object(src + ": model.vocab");
  std::vector<std::pair<int64_t, std::string>> by_id;
  for (const auto& [printable, id] : vocab)
    by_id.emplace_back(id.as_int(src + ": vocab id of '" + printable + "'"), printable);
  // Added tokens are matched whole in text, never built by merges. Hugging Face files list them
  // in added_tokens and usually in the vocabulary too (GPT-2's <|endoftext|> is id 50256 in both);
  // the added_tokens entry decides.
  std::map<int64_t, std::string> added_by_id;
  if (const io::Json* added = j.find("added_tokens"))
    for (const io::Json& t : added->as_array(src + ": added_tokens")) {
      const int64_t id = t.at("id", src + ": added token").as_int(src + ": added token id");
      if (!added_by_id.emplace(id, t.at("content", src + ": added token").as_string()).second)
        fail<FormatError>(src, ": added token id ", id, " is listed twice");
    }
  std::vector<std::pair<int64_t, std::pair<std::string, bool>>> all;  // id -> (text, special)
  for (auto& [id, p] : by_id)
    if (!added_by_id.contains(id)) all.push_back({id, {p, false}});
  for (auto& [id, text] : added_by_id) all.push_back({id, {text, true}});
  std::sort(all.begin(), all.end());
  BpeTokenizer tok;
  tok.pre_ = *rule;
  if (const io::Json* im = model.find("ignore_merges"); im && im->is_bool())
    tok.ignore_merges_ = im->as_bool();
  tok.tokens_.clear();
  tok.ids_.clear();
  for (size_t k = 0; k < all.size(); ++k) {
    const auto& [id, entry] = all[k];
    if (id != static_cast<int64_t>(k))
      fail<FormatError>(src, ": token ids are not 0..", all.size() - 1, " without gaps (", id,
                        " at position ", k, ")");
    if (entry.second) {
      tok.add_token(entry.first, true);
      continue;
    }
    auto bytes = from_printable(entry.first);
    if (!bytes) fail<FormatError>(src, ": token '", entry.first, "' is not in byte-level form");
    tok.add_token(std::move(*bytes), false);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = tok.ids_.find(std::string(1, static_cast<char>(b)));
    if (it == tok.ids_.end())
      fail<FormatError>(src, ": byte ", b, " has no token: not a byte-level BPE vocabulary");
    tok.byte_ids_[static_cast<size_t>(b)] = it->second;
  }
  const auto& merges = model.at("merges", src + ": model").as_array(src + ": model.merges");
  for (size_t k = 0; k < merges.size(); ++k) {
    std::string a, b;
    if (merges[k].is_string()) {
      const std::string& m = merges[k].as_string();
      const size_t sp = m.find(' ');
      if (sp == std::string::npos)
        fail<FormatError>(src, ": merge ", k, " ('", m, "') is not 'left right'");
      a = m.substr(0, sp);
      b = m.substr(sp + 1);
    } else {
      const auto& pair = merges[k].as_array(src + ": merge");
      if (pair.size() != 2) fail<FormatError>(src, ": merge ", k, " is not a pair");
      a = pair[0].as_string();
      b = pair[1].as_string();
    }
    auto ba = from_printable(a), bb = from_printable(b);
    if (!ba || !bb) fail<FormatError>(src, ": merge ", k, " is not in byte-level form");
    auto ia = tok.ids_.find(*ba), ib = tok.ids_.find(*bb);
    if (ia == tok.ids_.end() || ib == tok.ids_.end())
      fail<FormatError>(src, ": merge ", k, " ('", a, " ", b,
                        "') uses a token missing from the vocabulary");
    tok.add_merge(ia->second, ib->second);
  }
  tok.guess_special_tokens();
  return tok;
}

}  // namespace scholar::text
