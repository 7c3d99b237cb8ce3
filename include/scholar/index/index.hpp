// scholar/index/index.hpp: vector search: distance spaces, the common interface, and FlatIndex.
//
// A vector index maps user labels (uint64_t) to vectors of a fixed dimension and answers "which k
// stored vectors are nearest to this query?". Two implementations share one interface:
//
//   FlatIndex  exact search by comparing the query with every vector. The right choice below a few
//              tens of thousands of vectors, and the oracle that Hnsw is tested against.
//   Hnsw       (scholar/index/hnsw.hpp) a navigable small-world graph: approximate, sublinear.
//
//   scholar::index::FlatIndex flat(3, scholar::index::Space::l2);
//   flat.add(7, std::vector<float>{1, 0, 0});
//   auto hits = flat.search(std::vector<float>{1, 0.1f, 0}, 5);  // [{label 7, distance 0.01}]
//
// Distances: smaller is nearer in every space. l2 is the squared Euclidean distance;
// inner_product is 1 - <q, x> (as hnswlib reports it); cosine is 1 - <q, x> / (|q| |x|), computed
// by normalizing vectors when they are added and queries when they are searched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scholar::index {

/// How the distance between two vectors is measured (smaller is nearer in all three).
enum class Space : uint8_t {
  l2,             ///< sum (q[i] - x[i])^2
  inner_product,  ///< 1 - sum q[i] x[i]
  cosine          ///< 1 - cos(q, x); vectors are normalized on insert (a zero vector is an error)
};

/// How an index stores each vector.
enum class Storage : uint8_t {
  f32,   ///< 4 bytes per dimension, exact
  bf16,  ///< 2 bytes per dimension (8 significant bits)
  int8   ///< 1 byte per dimension: each vector's range split in 255 steps, plus 8 bytes per vector
};

std::string_view space_name(Space s);
std::string_view storage_name(Storage s);

/// One search result.
struct Neighbor {
  uint64_t label;
  float distance;
  friend bool operator==(const Neighbor&, const Neighbor&) = default;
};

/// A predicate on labels: search returns only vectors whose label passes. It is called from the
/// searching thread, possibly many times per search, and must be safe to call concurrently if the
/// same filter is used by concurrent searches. It must not call into the index it filters (the
/// search holds the index's lock).
using Filter = std::function<bool(uint64_t label)>;

/// The interface both indexes implement.
///
/// Thread-safety (both implementations): any number of threads may call search(), search_batch()
/// and the other const members while other threads call add(), update() and remove(); each call
/// sees the index before or after each concurrent change. save() sees a consistent snapshot.
class VectorIndex {
 public:
  virtual ~VectorIndex() = default;

  /// Dimension of every vector.
  virtual size_t dim() const noexcept = 0;
  virtual Space space() const noexcept = 0;
  /// Live vectors (added and not removed).
  virtual size_t size() const noexcept = 0;
  /// Whether `label` is live in the index.
  virtual bool contains(uint64_t label) const = 0;

  /// Adds a vector under a new label. ShapeError if vector.size() != dim(); ValueError if it holds
  /// a NaN or infinity, if the label is already live (use update()), or (cosine) if it is zero.
  virtual void add(uint64_t label, std::span<const float> vector) = 0;
  /// Replaces the vector of a live label; IndexError if the label is not in the index.
  virtual void update(uint64_t label, std::span<const float> vector) = 0;
  /// Removes a label; returns false if it was not in the index. The label may be added again.
  virtual bool remove(uint64_t label) = 0;

  /// The k nearest live vectors to `query` that pass `filter` (if set), nearest first; fewer than k
  /// if fewer exist. `ef` is the size of the candidate list an approximate index keeps (0: its
  /// default; otherwise at least k); an exact index checks it and ignores it. ValueError for k = 0,
  /// 0 < ef < k or a non-finite query; ShapeError for a query of the wrong size.
  std::vector<Neighbor> search(std::span<const float> query, size_t k, size_t ef = 0,
                               const Filter& filter = nullptr) const;
  /// search() for n queries stored row after row in `queries` (n * dim() floats), spread over the
  /// calling thread's pool (scholar::thread_pool(); a PoolScope chooses one). Result i belongs to
  /// query i.
  std::vector<std::vector<Neighbor>> search_batch(std::span<const float> queries, size_t k,
                                                  size_t ef = 0,
                                                  const Filter& filter = nullptr) const;

  /// Bytes of memory the index holds (vectors, graph, label table).
  virtual size_t memory_usage() const = 0;

  /// Writes the index to `path` atomically (a temporary file renamed into place): an interrupted
  /// save leaves any previous file intact. IoError if the disk refuses.
  virtual void save(const std::string& path) const = 0;

 protected:
  virtual std::vector<Neighbor> do_search(std::span<const float> query, size_t k, size_t ef,
                                          const Filter& filter) const = 0;
  void check_query(std::span<const float> query, size_t k, size_t ef) const;
};

/// Exact search over every vector, stored as f32.
///
/// Thread-safety: see VectorIndex (a reader-writer lock; searches run in parallel).
class FlatIndex final : public VectorIndex {
 public:
  FlatIndex(size_t dim, Space space);
  ~FlatIndex() override;
  FlatIndex(FlatIndex&&) noexcept;
  FlatIndex& operator=(FlatIndex&&) noexcept;

  /// Reads a file written by FlatIndex::save(). FormatError naming the file and the problem for
  /// anything that is not such a file (wrong magic or version, counts that do not fit the file,
  /// a bad checksum, non-finite vectors, duplicate labels).
  static FlatIndex load(const std::string& path);

  size_t dim() const noexcept override;
  Space space() const noexcept override;
  size_t size() const noexcept override;
  bool contains(uint64_t label) const override;
  void add(uint64_t label, std::span<const float> vector) override;
  void update(uint64_t label, std::span<const float> vector) override;
  bool remove(uint64_t label) override;
  size_t memory_usage() const override;
  void save(const std::string& path) const override;

  /// Every live label, in storage order.
  std::vector<uint64_t> labels() const;

 private:
  std::vector<Neighbor> do_search(std::span<const float> query, size_t k, size_t ef,
                                  const Filter& filter) const override;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scholar::index
