// scholar/rag/bm25.hpp: keyword search with Okapi BM25, the lexical half of hybrid retrieval.
//
// Bm25Index is an inverted index over texts keyed by uint64_t ids (chunk numbers, say). Texts are
// cut into terms by an Analyzer (lowercase, split on whatever is not a letter or number, each CJK
// ideograph a term of its own), and a query's documents are scored as Lucene's BM25Similarity does:
//
//   score(D, Q) = sum over the terms t of Q of
//                 idf(t) * tf(t, D) * (k1 + 1) / (tf(t, D) + k1 * (1 - b + b * |D| / avgdl))
//   idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
//
// where tf(t, D) is how often t occurs in D, |D| the number of terms of D, avgdl the mean of |D|
// over the index, N the number of documents and n(t) how many of them contain t. A term that
// occurs twice in the query counts twice. Adding and removing documents updates the index in
// place; nothing is ever rebuilt.
//
//   rag::Bm25Index bm25;
//   for (const rag::Chunk& c : chunks) bm25.add(next_id++, c.text);
//   for (const rag::Bm25Hit& h : bm25.search("virtual memory swap", 10)) show(h.id, h.score);
//   bm25.save("chunks.bm25");                         // atomic; Bm25Index::load reads it back
//
// Thread-safety: const members (search, contains, size, save) may run concurrently with each
// other; add() and remove() need the index to themselves (no other call at the same time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace scholar::rag {

/// How an Analyzer cuts text into terms.
struct AnalyzerOptions {
  /// Terms to leave out of documents and queries (compared after lowercasing; they also do not
  /// count in a document's length). Empty: none, the default. english_stopwords() has a list.
  std::vector<std::string> stopwords;
};

/// Lucene's classic English stop words (StandardAnalyzer's former default set, 33 words).
std::vector<std::string> english_stopwords();

/// Text to terms: lowercased (text::to_lower), then cut into runs of letters and numbers (\p{L},
/// \p{N}, with the marks \p{M} that follow them, so "naïve" in NFD and Devanagari stay whole);
/// everything else separates terms. Each CJK ideograph (text::is_cjk_ideograph) is a term of its
/// own, as Lucene's StandardTokenizer makes them: unigrams find every word of a Chinese or Japanese
/// query whatever its segmentation, at the cost of some precision that bigrams would have. Kana and
/// Hangul runs stay whole words.
///
/// Thread-safety: const after construction.
class Analyzer {
 public:
  explicit Analyzer(AnalyzerOptions options = {});
  /// Calls `fn` with each term of `text`, in order (the view is valid only during the call).
  void for_each_term(std::string_view text, const std::function<void(std::string_view)>& fn) const;
  /// The terms of `text`, in order.
  std::vector<std::string> terms(std::string_view text) const;
  const AnalyzerOptions& options() const noexcept { return options_; }

 private:
  bool is_stopword(std::string_view term) const;
  AnalyzerOptions options_;  // stopwords lowercased, sorted, unique
};

/// BM25's two parameters.
struct Bm25Params {
  float k1 = 1.5f;  ///< term-frequency saturation: 0 counts presence only; >= 0
  float b = 0.75f;  ///< length normalization: 0 none, 1 full; in [0, 1]
};

/// One search result.
struct Bm25Hit {
  uint64_t id;
  float score;
  friend bool operator==(const Bm25Hit&, const Bm25Hit&) = default;
};

/// An inverted index scored with Okapi BM25 (see the top of this file).
///
/// Memory: about 8 bytes per (term, document) pair in the postings plus 8 more to remove documents
/// in place, and the terms themselves.
class Bm25Index {
 public:
  /// ValueError for k1 < 0, b outside [0, 1] or either not finite.
  explicit Bm25Index(Bm25Params params = {}, AnalyzerOptions analyzer = {});

  /// Indexes `text` under `id`. ValueError if `id` is already in the index (remove it first). A
  /// text without terms is added (it counts in N and avgdl) but never matches.
  void add(uint64_t id, std::string_view text);
  /// Removes a document; false if it was not in the index. The id may be added again.
  bool remove(uint64_t id);
  bool contains(uint64_t id) const;
  /// Documents in the index.
  size_t size() const noexcept;
  /// Distinct terms in the index.
  size_t term_count() const noexcept;

  /// The k best documents for `query`, best first (equal scores: smaller id first). Only documents
  /// sharing a term with the query are returned, so fewer than k may come back (none for a query
  /// without terms). ValueError for k = 0.
  std::vector<Bm25Hit> search(std::string_view query, size_t k) const;

  /// Writes the index to `path` atomically (io::AtomicFile): parameters, analyzer options, terms
  /// and postings, ending with a checksum. IoError if the disk refuses.
  void save(const std::string& path) const;
  /// Reads a file written by save(). FormatError naming the file for anything else: another
  /// magic or format version, a truncated or altered file (checksum), or contents that do not
  /// hold together. The loaded index returns bit-identical search results.
  static Bm25Index load(const std::string& path);

  const Bm25Params& params() const noexcept { return params_; }
  const Analyzer& analyzer() const noexcept { return analyzer_; }

 private:
  struct Posting {
    uint32_t slot;  // the document's row in the per-document arrays
    uint32_t tf;
  };
  struct DocTerms {
    std::vector<uint32_t> terms;  // sorted term ids of the document
    std::vector<uint32_t> where;  // where[i]: the position of its posting in postings_[terms[i]]
  };
  struct TermHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  uint32_t term_id(std::string_view term);
  void drop_posting(uint32_t term, uint32_t pos);

  Bm25Params params_;
  Analyzer analyzer_;
  // Terms: id <-> text; ids of terms no document uses any more are reused.
  std::unordered_map<std::string, uint32_t, TermHash, std::equal_to<>> term_ids_;
  std::vector<std::string> term_text_;  // "" for a free id
  std::vector<std::vector<Posting>> postings_;
  std::vector<uint32_t> free_terms_;
  // Documents by slot; slots of removed documents are reused.
  std::unordered_map<uint64_t, uint32_t> slot_of_;
  std::vector<uint64_t> slot_id_;
  std::vector<uint32_t> slot_length_;
  std::vector<DocTerms> slot_terms_;
  std::vector<uint32_t> free_slots_;
  uint64_t total_length_ = 0;
};

}  // namespace scholar::rag
