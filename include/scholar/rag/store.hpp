// scholar/rag/store.hpp: a retrieval store on disk — chunks, their vectors (HNSW), their terms
// (BM25), and a manifest naming the embedder and the splitter that made them.
//
//   auto embedder = rag::SentenceEncoder::load("my-embedder");
//   auto store = rag::Store::create("foldoc.store", embedder, {.splitter = {.chunk_size = 800}});
//   store.add(rag::load_documents("/usr/share/dictd/foldoc.dict.dz").documents);
//   store.commit();                                          // atomic
//   for (const rag::SearchHit& h : store.search("what is a kludge", {.k = 5}))
//     std::printf("%.3f %s\n", h.score, store.chunk(h.chunk_id).text.c_str());
//
// A store is one directory: manifest.json plus one chunks, one HNSW and one BM25 file of the
// current generation. commit() writes the next generation's files beside the old ones, then
// replaces the manifest (a rename, the only step that changes what the store holds), then deletes
// the old files: a process killed at any point leaves the store as it was before the commit or
// as it is after, never between. Documents are added, replaced (same id, new text) and removed in
// place, without rebuilding the indexes.
//
// The manifest records the embedder's fingerprint: opening a store with another embedder is a
// FormatError (its vectors would be meaningless next to the stored ones), as is a store of another
// format version. One process at a time writes a store; others may open and search it meanwhile.
//
// Thread-safety: const members (search, chunk, document, counts) may run concurrently with each
// other; add, remove and commit need the store to themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/rag/bm25.hpp"
#include "scholar/rag/embedder.hpp"
#include "scholar/rag/loader.hpp"
#include "scholar/rag/splitter.hpp"

namespace scholar::index {
class Hnsw;
}

namespace scholar::rag {

/// How a store cuts and indexes documents (fixed when it is created; recorded in the manifest).
struct StoreOptions {
  SplitterOptions splitter{.chunk_size = 800, .chunk_overlap = 100};
  /// Measure chunk_size in tokens of the embedder's tokenizer (SentenceEncoder only) instead of
  /// characters.
  bool split_by_tokens = false;
  Bm25Params bm25;
  size_t hnsw_m = 16;                 ///< graph degree
  size_t hnsw_ef_construction = 200;  ///< candidate list while inserting
  size_t embed_batch = 256;           ///< chunks per embedder call while adding
};

/// How to search.
enum class SearchMode : uint8_t {
  dense,  ///< nearest vectors (cosine) of the embedded query
  bm25,   ///< keyword scores
  hybrid  ///< both, fused by reciprocal rank (weights settable)
};
/// "dense", "bm25", "hybrid"; and back (ValueError naming the choices).
std::string_view search_mode_name(SearchMode m);
SearchMode search_mode_from_name(std::string_view name);

/// Settings of one search.
struct SearchOptions {
  size_t k = 5;
  SearchMode mode = SearchMode::hybrid;
  size_t ef_search = 0;   ///< HNSW candidate list (0: max(64, candidates))
  size_t candidates = 0;  ///< hybrid: results taken from each side before fusing (0: 4 k, >= 20)
  double dense_weight = 1.0;  ///< hybrid: weight of the dense ranking in the fusion
  double bm25_weight = 1.0;   ///< hybrid: weight of the BM25 ranking
  double rrf_k = 60;          ///< hybrid: weight / (rank + rrf_k)
};

/// One result: a chunk, its score (cosine similarity, BM25 score, or fused score), and its rank
/// in each ranking that found it (0: not found there).
struct SearchHit {
  uint64_t chunk_id = 0;
  double score = 0;
  size_t dense_rank = 0, bm25_rank = 0;
};

/// A chunk as the store keeps it.
struct StoredChunk {
  uint64_t id = 0;                       ///< unique in the store, never reused
  std::string document_id;               ///< its document's Document::id
  size_t begin = 0, end = 0, index = 0;  ///< as Chunk: bytes of the document's text, order
  std::string text;
};

/// A document as the store keeps it (its text lives in its chunks).
struct StoredDocument {
  std::string id, source;
  std::map<std::string, std::string> metadata;
  std::vector<uint64_t> chunk_ids;  ///< in order
  std::string digest;               ///< of its text: re-adding an unchanged document is a no-op
};

/// What add() did.
struct AddReport {
  size_t documents_added = 0, documents_replaced = 0, documents_unchanged = 0;
  size_t documents_without_chunks = 0;  ///< empty or whitespace-only texts
  size_t chunks_added = 0, chunks_removed = 0;
  double seconds = 0;
  double chunks_per_second = 0;  ///< splitting, embedding and indexing
};

/// What a store's manifest says, readable without an embedder (StoreInfo::read).
struct StoreInfo {
  int64_t version = 0, generation = 0;
  std::string embedder_name, embedder_fingerprint;
  std::string embedder_location;  ///< Embedder::location() when the store was made ("" if none)
  size_t dim = 0;
  size_t documents = 0, chunks = 0;
  std::string splitter;  ///< "800 characters, overlap 100", ...
  /// FormatError naming the file for a missing, damaged or foreign manifest.
  static StoreInfo read(const std::string& dir);
};

/// A retrieval store (see the top of this file).
class Store {
 public:
  /// Makes a new, empty store in `dir` (created if needed). ValueError if `dir` already holds a
  /// store. Nothing is on disk until commit().
  static Store create(const std::string& dir, std::shared_ptr<const Embedder> embedder,
                      StoreOptions options = {});
  /// Opens a store. FormatError naming the file if the manifest or a file it names is missing,
  /// truncated or damaged, or was written by another format version; FormatError naming both
  /// fingerprints if `embedder` is not the one the store was built with. Files of older
  /// generations left by an interrupted cleanup are removed; files of a newer one (a commit that
  /// was interrupted, or is running in another process) are left for the next commit to replace.
  /// One process at a time may add and commit; any number may open and search.
  static Store open(const std::string& dir, std::shared_ptr<const Embedder> embedder);
  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  /// Splits, embeds and indexes documents; a document whose id is in the store already replaces
  /// it, unless its text is unchanged. Reports progress (chunks/s) through scholar's progress
  /// callback. Nothing is on disk until commit(). On an exception the store is as before the
  /// call.
  AddReport add(std::span<const Document> documents);
  /// Removes a document and its chunks; false if the store does not hold it.
  bool remove(const std::string& document_id);
  /// Writes the changes (see the top of this file). IoError if the disk refuses; the store on disk
  /// is then as it was.
  void commit();

  /// The best chunks for `query`. ValueError for k = 0 or bad weights.
  std::vector<SearchHit> search(std::string_view query, const SearchOptions& options = {}) const;

  /// IndexError if the store has no such chunk / document.
  const StoredChunk& chunk(uint64_t id) const;
  const StoredDocument& document(const std::string& id) const;
  bool contains(const std::string& document_id) const;
  size_t document_count() const noexcept;
  size_t chunk_count() const noexcept;
  /// Every document id, sorted.
  std::vector<std::string> document_ids() const;

  const Embedder& embedder() const noexcept;
  const StoreOptions& options() const noexcept;
  const std::string& dir() const noexcept;
  /// The generation on disk (0 before the first commit).
  int64_t generation() const noexcept;
  /// For tests of crash safety: `hook` is called at each step of commit() ("chunks", "dense",
  /// "bm25", "manifest", "cleanup") before the step runs.
  void set_commit_hook(std::function<void(std::string_view step)> hook);

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scholar::rag
