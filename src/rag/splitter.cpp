// Recursive character text splitting with exact byte ranges (see scholar/rag/splitter.hpp).
//
// The text is never copied while it is cut: pieces are byte ranges of the document, so a chunk
// (a run of consecutive pieces) is one range too, and its offsets need no search afterwards.
#include "scholar/rag/splitter.hpp"

#include "scholar/error.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::rag {

namespace {

bool white_at(std::string_view s, size_t i, size_t& len) {
  const text::Utf8Char c = text::decode_utf8(s, i);
  len = c.len;
  return c.cp != text::kInvalidCodePoint && text::is_white_space(c.cp);
}

// Narrows [b, e) to exclude White_Space at both ends.
void strip(std::string_view s, size_t& b, size_t& e) {
  size_t len;
  while (b < e && white_at(s, b, len)) b += len;
  while (e > b) {
    size_t start = e - 1;  // the lead byte of the last character (at most 3 continuation bytes)
    while (start > b && e - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
      --start;
    if (!white_at(s, start, len) || start + len != e) break;
    e = start;
  }
}

}  // namespace

std::vector<std::string> default_separators() {
  return {"\n\n",   "\n", ". ", "! ", "? ",
          "\u3002",  // 。 ideographic full stop
          "\uFF61",  // ｡ halfwidth ideographic full stop
          "\uFF0E",  // ． fullwidth full stop
          "\uFF01",  // ！ fullwidth exclamation mark
          "\uFF1F",  // ？ fullwidth question mark
          "\uFF1B",  // ； fullwidth semicolon
          "; ",     ", ",
          "\uFF0C",  // ， fullwidth comma
          "\u3001",  // 、 ideographic comma
          " "};
}

Splitter::Splitter(SplitterOptions options) : options_(std::move(options)) {
  if (options_.chunk_size == 0) fail<ValueError>("rag::Splitter: chunk_size must be at least 1");
  if (options_.chunk_overlap >= options_.chunk_size)
    fail<ValueError>("rag::Splitter: chunk_overlap (", options_.chunk_overlap,
                     ") must be smaller than chunk_size (", options_.chunk_size, ")");
}

Splitter::Splitter(SplitterOptions options, const text::Tokenizer& tokenizer)
    : Splitter(std::move(options)) {
  tokenizer_ = &tokenizer;
}

size_t Splitter::length(std::string_view s) const {
  return tokenizer_ ? tokenizer_->encode(s).size() : text::utf8_length(s);
}

std::vector<Chunk> Splitter::split(const Document& doc) const {
  return split(doc.text, doc.id);
}

std::vector<Chunk> Splitter::split(std::span<const Document> docs) const {
  std::vector<Chunk> all;
  for (const Document& d : docs) {
    std::vector<Chunk> part = split(d);
    all.insert(all.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  return all;
}

std::vector<Chunk> Splitter::split(std::string_view text, std::string_view document_id) const {
  std::vector<Span> spans;
  split_range(text, 0, text.size(), 0, spans);
  std::vector<Chunk> chunks;
  chunks.reserve(spans.size());
  for (const Span& s : spans) {
    SCHOLAR_ASSERT(s.begin < s.end && s.end <= text.size());
    SCHOLAR_ASSERT(chunks.empty() || (s.begin >= chunks.back().begin && s.end > chunks.back().end),
                   "chunks out of order");
    chunks.push_back({std::string(document_id), s.begin, s.end,
                      std::string(text.substr(s.begin, s.end - s.begin)), chunks.size()});
  }
  return chunks;
}

// Splits text[begin, end) on the first separator from `level` on that occurs in it, recursing into
// pieces longer than chunk_size, and appends the merged chunks' ranges to `out`.
void Splitter::split_range(std::string_view text, size_t begin, size_t end, size_t level,
                           std::vector<Span>& out) const {
  const std::vector<std::string>& seps = options_.separators;
  const std::string_view part = text.substr(begin, end - begin);
  size_t chosen = seps.size();
  for (size_t i = level; i < seps.size(); ++i)
    if (seps[i].empty() || part.find(seps[i]) != std::string_view::npos) {
      chosen = i;
      break;
    }
  const bool by_characters = chosen == seps.size() || seps[chosen].empty();

  std::vector<Span> pieces;
  if (by_characters) {
    for (size_t i = begin; i < end;) {
      const size_t n = text::decode_utf8(text, i).len;
      pieces.push_back({i, i + n, 0, 0});
      i += n;
    }
  } else {
    const std::string& sep = seps[chosen];
    const std::string_view upto = text.substr(0, end);
    size_t start = begin, prev_end = begin;
    auto add = [&](size_t b, size_t e) {
      if (e <= b) return;
      const size_t gap = b > prev_end ? length(text.substr(prev_end, b - prev_end)) : 0;
      pieces.push_back({b, e, 0, pieces.empty() ? 0 : gap});
      prev_end = e;
    };
    for (size_t at; (at = upto.find(sep, start)) != std::string_view::npos;) {
      add(start, options_.keep_separator ? at + sep.size() : at);
      start = at + sep.size();
    }
    add(start, end);
  }

  std::vector<Span> good;  // a run of consecutive pieces short enough to merge
  for (Span& p : pieces) {
    p.length = length(text.substr(p.begin, p.end - p.begin));
    if (p.length <= options_.chunk_size) {
      good.push_back(p);
      continue;
    }
    merge(text, good, out);
    good.clear();
    if (by_characters)
      emit(text, {p}, 0, 1, out);  // one character over the limit (in tokens): alone
    else
      split_range(text, p.begin, p.end, chosen + 1, out);
  }
  merge(text, good, out);
}

// Merges consecutive pieces into chunks of at most chunk_size, as LangChain's _merge_splits: when
// the next piece does not fit, the window of pieces becomes a chunk, and pieces leave the window's
// front until what remains is at most chunk_overlap and leaves room for the next piece.
void Splitter::merge(std::string_view text, const std::vector<Span>& p,
                     std::vector<Span>& out) const {
  const size_t n = p.size(), size = options_.chunk_size, overlap = options_.chunk_overlap;
  size_t first = 0, next = 0, total = 0;  // the window is p[first, next); total: its length
  auto window_length = [&](size_t a, size_t b) {
    size_t t = 0;
    for (size_t j = a; j < b; ++j) t += p[j].length + (j > a ? p[j].gap : 0);
    return t;
  };
  for (;;) {
    if (next < n && (next == first || total + p[next].gap + p[next].length <= size)) {
      total += (next > first ? p[next].gap : 0) + p[next].length;
      ++next;
      continue;
    }
    if (next == first) break;  // nothing left (next == n)
    const size_t end = emit(text, p, first, next, out);
    if (end == n) break;
    // A token count that the sum of the pieces' counts underestimated: the chunk ended early, and
    // the estimate cannot be trusted to make the window move on, so at least one piece leaves it.
    bool shrunk = end < next;
    if (shrunk) {
      next = end;
      total = window_length(first, next);
    }
    while (first < next &&
           (shrunk || total > overlap || total + p[next].gap + p[next].length > size)) {
      total -= p[first].length + (first + 1 < next ? p[first + 1].gap : 0);
      ++first;
      shrunk = false;
    }
  }
}

// Appends the chunk made of pieces [first, last) (stripped, if asked). Lengths in characters add
// up exactly; in tokens the pieces' sum is an estimate, so the chunk is counted again and, while
// over chunk_size, loses pieces at its end. Returns one past the last piece used.
size_t Splitter::emit(std::string_view text, const std::vector<Span>& p, size_t first, size_t last,
                      std::vector<Span>& out) const {
  for (;;) {
    size_t b = p[first].begin, e = p[last - 1].end;
    if (options_.strip_whitespace) strip(text, b, e);
    if (b >= e) return last;  // only whitespace: no chunk
    if (!tokenizer_ || last - first == 1 || length(text.substr(b, e - b)) <= options_.chunk_size) {
      // (Stripping can make a chunk that only repeats the previous one, when the pieces it adds
      // are whitespace: it is dropped.)
      if (out.empty() || e > out.back().end) out.push_back({b, e, 0, 0});
      return last;
    }
    --last;
  }
}

}  // namespace scholar::rag
