// scholar/io/file.hpp: memory-mapped reads and atomic writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace scholar::io {

/// A whole file mapped into memory, copy-on-write: the pages are shared with the page cache until
/// written, and writes stay private to this process (the file never changes). Tensors that view
/// a mapping hold a shared_ptr to it, so the mapping lives as long as any of them.
///
/// Thread-safety: immutable after open(); safe to read from many threads.
class MappedFile {
 public:
  /// Maps `path`; IoError if it cannot be opened or mapped. An empty file maps to size() == 0.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const noexcept { return data_; }
  uint8_t* mutable_data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

/// Writes a file so that readers see either the old contents or the complete new ones: the bytes
/// go to a temporary file beside `path`, which is flushed to disk and renamed over `path` by
/// commit(). Destroying an AtomicFile that was not committed removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends bytes; IoError if the disk refuses them.
  void write(const void* data, size_t size);
  void write(std::string_view s) { write(s.data(), s.size()); }
  /// fsyncs, closes and renames into place; IoError on failure (the old file is then untouched).
  void commit();
  const std::string& temp_path() const noexcept { return temp_; }

 private:
  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// The whole file as bytes; IoError naming the path on failure.
std::string read_file(const std::string& path);
/// Replaces `path` atomically with `data` (see AtomicFile).
void write_file_atomic(const std::string& path, std::string_view data);

}  // namespace scholar::io
