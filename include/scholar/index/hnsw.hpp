// scholar/index/hnsw.hpp: approximate nearest-neighbour search on a hierarchical navigable
// small-world graph (Malkov and Yashunin, 2016), the algorithm of hnswlib and FAISS IndexHNSWFlat.
//
// clang-format off
//   scholar::index::Hnsw index(384, scholar::index::Space::cosine,
//                              {.M = 16, .ef_construction = 200});
//   index.add_batch(labels, vectors);            // n labels, n * 384 floats, over the pool
//   auto hits = index.search(query, 10, 64);     // k = 10, ef = 64
//   auto even = index.search(query, 10, 64, [](uint64_t l) { return l % 2 == 0; });
//   index.save("docs.hnsw");
//   auto again = scholar::index::Hnsw::load("docs.hnsw");
// clang-format on
//
// Each vector is a node with links to at most 2M neighbours on level 0 and M on each level above;
// a node's top level is drawn from a geometric law keyed by the seed and its label, so the levels
// do not depend on the order or the threads that added the nodes (a label that reuses a deleted
// slot keeps that slot's level). A search descends greedily from
// the top and then explores level 0 with a candidate list of ef entries: larger ef, better recall,
// slower search.
//
// Storage: vectors are kept as f32, bf16 or int8 (Storage). With bf16 or int8 the graph is walked
// on the compact vectors and, if keep_f32 (the default), the ef candidates found are ranked again
// on an f32 copy so the distances returned are exact. Without the copy the index is smallest and
// the distances are those of the compact vectors.
//
// Removal marks a node as deleted (a tombstone): it still routes searches but is never returned.
// With replace_deleted, new labels reuse deleted slots; compact() rebuilds the live nodes into a
// fresh graph and frees the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scholar/index/index.hpp"

namespace scholar::index {

/// Build and default search parameters of an Hnsw index. All of them are saved with the index.
struct HnswParams {
  /// Links per node on levels above 0 (2M on level 0). 12 to 48 is usual; 2..1024 is accepted.
  size_t M = 16;
  /// Candidate list size while inserting: larger builds slower and better.
  size_t ef_construction = 200;
  /// Candidate list size of search() when the caller passes ef = 0.
  size_t ef_search = 64;
  /// Seeds the level of each node (with its label).
  uint64_t seed = 100;
  Storage storage = Storage::f32;
  /// For bf16 and int8 storage: also keep each vector in f32 to rank the candidates exactly.
  bool keep_f32 = true;
  /// Vectors the index has room for before it first grows (it grows by half when full).
  size_t initial_capacity = 1024;
  /// When false, adding to a full index is an error instead of a reallocation.
  bool allow_growth = true;
  /// When true, add() puts new labels into the slots of removed ones before growing.
  bool replace_deleted = false;
  /// Filtered searches estimate the fraction of live vectors that pass the filter (from up to 256
  /// of them); below this fraction the graph would have to be walked far to find k passing nodes,
  /// and an exact scan of the passing vectors is both faster and exact. 0 disables the fallback.
  double exact_search_below = 0.03;
};

/// Options of Hnsw::load().
struct HnswLoadOptions {
  /// Map the file and walk the graph in place instead of reading it into memory. The pages are
  /// shared with the page cache (and with other processes that map the same file); the index is
  /// then read-only: add(), update(), remove() and compact() throw Error.
  bool mmap = false;
  /// Check the file's checksum (reads every byte once; turn off only for trusted files).
  bool verify_checksum = true;
};

/// The graph index.
///
/// Thread-safety: see VectorIndex. In addition: add() of new labels runs concurrently with
/// searches and with other adds (link lists are locked per node, striped over 4,096 mutexes, and
/// links are published with release stores that searches read with acquire loads). update(), add()
/// into a deleted slot, growth of the capacity, compact() and save() take the index exclusively for
/// their duration and wait for running searches; searches then wait for them.
class Hnsw final : public VectorIndex {
 public:
  /// An empty index. ValueError for dim = 0 or parameters outside their ranges.
  Hnsw(size_t dim, Space space, const HnswParams& params = {});
  ~Hnsw() override;
  Hnsw(Hnsw&&) noexcept;
  Hnsw& operator=(Hnsw&&) noexcept;

  /// Reads a file written by save(). Every count and offset is checked against the file's size
  /// before anything is allocated, every link against the node count; FormatError names the file
  /// and the problem (bad magic, version, checksum, truncation, links out of range, ...).
  static Hnsw load(const std::string& path, const HnswLoadOptions& options = {});

  size_t dim() const noexcept override;
  Space space() const noexcept override;
  size_t size() const noexcept override;
  bool contains(uint64_t label) const override;
  void add(uint64_t label, std::span<const float> vector) override;
  void update(uint64_t label, std::span<const float> vector) override;
  bool remove(uint64_t label) override;
  size_t memory_usage() const override;
  void save(const std::string& path) const override;

  /// Adds n = labels.size() vectors (row after row in `vectors`, n * dim() floats), inserting them
  /// concurrently on the calling thread's pool (scholar::thread_pool(); open a PoolScope to choose
  /// one). Checks every vector and label before adding any. With show_progress, reports progress
  /// (rate and ETA) through the progress callback: a bar on stderr by default.
  void add_batch(std::span<const uint64_t> labels, std::span<const float> vectors,
                 bool show_progress = false);

  /// The parameters the index was built with.
  const HnswParams& params() const noexcept;
  /// Vector slots in use, live and deleted.
  size_t slot_count() const noexcept;
  /// Vector slots allocated.
  size_t capacity() const noexcept;
  /// Removed labels whose slots have not been reused or compacted away.
  size_t deleted_count() const noexcept;
  /// memory_usage() / capacity(): bytes per vector slot, graph and f32 copy included.
  double bytes_per_vector() const;
  /// Whether the index was loaded with HnswLoadOptions::mmap.
  bool read_only() const noexcept;

  /// Rebuilds the graph from the live vectors only (in parallel) and frees the memory of deleted
  /// slots and unused capacity. Labels and vectors are kept; the new graph is built afresh.
  void compact();

  /// Grows the capacity to at least n slots (never shrinks).
  void reserve(size_t n);

 private:
  std::vector<Neighbor> do_search(std::span<const float> query, size_t k, size_t ef,
                                  const Filter& filter) const override;
  struct Impl;
  explicit Hnsw(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scholar::index
