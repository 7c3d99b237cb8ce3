// scholar/io/file.hpp: memory-mapped reads and atomic writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace scholar::io {

/// Appends the bytes of a trivially copyable value, in the machine's byte order (little-endian on
/// every platform scholar builds for), to a buffer being serialized.
template <class T>
requires std::is_trivially_copyable_v<T>
void append_bytes(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

/// How MappedFile::open brings a file into memory.
enum class FileAccess : uint8_t {
  /// mmap: pages come from the page cache as they are touched and are shared with other
  /// processes mapping the file; opening is instant.
  map,
  /// Read the whole file into private memory on transparent huge pages (where the kernel allows
  /// them): opening reads every byte, but later sweeps over the data (decoding reads every weight
  /// per token) take fewer TLB misses. llama.cpp's --no-mmap.
  copy,
};

/// A whole file in memory, copy-on-write: with FileAccess::map the pages are shared with the page
/// cache until written, and writes stay private to this process (the file never changes). Tensors
/// that view a mapping hold a shared_ptr to it, so the mapping lives as long as any of them.
///
/// Thread-safety: immutable after open(); safe to read from many threads.
class MappedFile {
 public:
  /// Maps (or reads, see FileAccess) `path`; IoError if it cannot be opened, mapped or read. An
  /// empty file maps to size() == 0.
  static std::shared_ptr<MappedFile> open(const std::string& path,
                                          FileAccess access = FileAccess::map);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const noexcept { return data_; }
  uint8_t* mutable_data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }
  FileAccess access() const noexcept { return access_; }

 private:
  MappedFile() = default;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* region_ = nullptr;  // what to munmap: data_ itself, or the aligned copy's reservation
  size_t region_size_ = 0;
  FileAccess access_ = FileAccess::map;
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
