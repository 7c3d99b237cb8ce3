// scholar/rag/splitter.hpp: cutting documents into overlapping chunks for retrieval.
//
// Splitter works as LangChain's RecursiveCharacterTextSplitter: it splits a text on the first
// separator of its list that occurs in it (paragraphs, then lines, then sentences, clauses, words,
// and at last single characters), splits again with the later separators any piece still longer
// than chunk_size, and merges neighbouring pieces into chunks of at most chunk_size, each new chunk
// starting with up to chunk_overlap of the previous chunk's last pieces. Unlike LangChain, each
// chunk knows its exact place: text == document.text.substr(begin, end - begin), always, even when
// the same sentence occurs many times.
//
//   rag::Splitter splitter({.chunk_size = 800, .chunk_overlap = 100});   // in characters
//   for (const rag::Chunk& c : splitter.split(doc))
//     index.add(c.index, c.text);                                        // c.begin, c.end: bytes
//
//   rag::Splitter by_tokens({.chunk_size = 256, .chunk_overlap = 32}, tokenizer);  // in tokens
//
// Lengths are counted in characters (Unicode code points, never bytes), or in tokens of a
// tokenizer (tokenizer.encode(piece).size()). A chunk never ends inside a UTF-8 character.
//
// Thread-safety: split() is const and may run concurrently (the tokenizer's encode is const too).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/rag/loader.hpp"

namespace scholar::text {
class Tokenizer;
}

namespace scholar::rag {

/// One piece of a document, as retrieval indexes and returns it.
struct Chunk {
  std::string document_id;  ///< Document::id of the document it was cut from
  size_t begin = 0;         ///< byte offset of the chunk in the document's text
  size_t end = 0;           ///< one past its last byte: text == doc.text.substr(begin, end - begin)
  std::string text;
  size_t index = 0;  ///< 0, 1, 2, ... within its document, in order of begin
};

/// The separators Splitter tries, in order: "\n\n", "\n"; sentence ends ". ", "! ", "? ", and the
/// CJK and fullwidth ones "。", "｡", "．", "！", "？", "；"; then "; ", ", ", "，", "、", " ".
/// After the last separator a piece is cut between characters.
std::vector<std::string> default_separators();

/// How Splitter cuts.
struct SplitterOptions {
  /// The largest chunk, in characters (or tokens when the splitter has a tokenizer). At least 1.
  size_t chunk_size = 1000;
  /// How much of the end of a chunk the next one repeats (whole pieces only; at most this much).
  /// Smaller than chunk_size.
  size_t chunk_overlap = 200;
  /// Tried in order; "" stands for "between characters" (which is also always tried last).
  std::vector<std::string> separators = default_separators();
  /// Whether a separator stays in the text, at the end of the piece before it ("end. " stays
  /// whole). If false, separators are dropped where a chunk begins or ends; inside a chunk they
  /// always remain, since the chunk is one range of the text.
  bool keep_separator = true;
  /// Drops Unicode White_Space at both ends of each chunk (begin and end then mark the stripped
  /// range); chunks that are only whitespace are dropped.
  bool strip_whitespace = true;
};

/// Recursive character text splitting with exact byte ranges (see the top of this file).
class Splitter {
 public:
  /// Lengths in characters. ValueError for chunk_size 0 or chunk_overlap >= chunk_size.
  explicit Splitter(SplitterOptions options = {});
  /// Lengths in tokens of `tokenizer`, which must outlive the splitter. A single character that
  /// alone takes more than chunk_size tokens still becomes a chunk (of that character only).
  Splitter(SplitterOptions options, const text::Tokenizer& tokenizer);

  /// The chunks of one document, in order. An empty or whitespace-only text gives none.
  std::vector<Chunk> split(const Document& doc) const;
  /// The same for a bare text; chunks carry `document_id`.
  std::vector<Chunk> split(std::string_view text, std::string_view document_id = {}) const;
  /// The chunks of several documents, document after document (index restarts at 0 for each).
  std::vector<Chunk> split(std::span<const Document> docs) const;

  /// The length of `s` as this splitter counts it (characters or tokens).
  size_t length(std::string_view s) const;
  const SplitterOptions& options() const noexcept { return options_; }

 private:
  // A piece of the text: bytes [begin, end), its length as counted, and the length of the text
  // between the previous piece and it (a dropped separator; 0 when separators are kept).
  struct Span {
    size_t begin, end, length, gap;
  };
  void split_range(std::string_view text, size_t begin, size_t end, size_t level,
                   std::vector<Span>& out) const;
  void merge(std::string_view text, const std::vector<Span>& pieces, std::vector<Span>& out) const;
  size_t emit(std::string_view text, const std::vector<Span>& pieces, size_t first, size_t last,
              std::vector<Span>& out) const;

  SplitterOptions options_;
  const text::Tokenizer* tokenizer_ = nullptr;
};

}  // namespace scholar::rag
