// Little-endian byte records for scholar's own binary files: a writer that appends fixed-size
// values and length-prefixed strings, and a reader whose every read is bounds-checked, failures
// being FormatErrors that name the file and the field. Both end with a digest of what precedes it,
// so truncation and corruption are told apart from a valid file.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/digest.hpp"
#include "scholar/error.hpp"

namespace scholar::io::detail {

class ByteWriter {
 public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_string(std::string_view s) {
    put(static_cast<uint64_t>(s.size()));
    out_.append(s);
  }
  void put_bytes(std::string_view s) { out_.append(s); }
  /// Appends the digest of everything written so far and returns the bytes.
  std::string finish() {
    scholar::detail::Digest d;
    d.text(out_);
    put(d.value());
    return std::move(out_);
  }

 private:
  std::string out_;
};

class ByteReader {
 public:
  /// Checks the trailing digest first (FormatError naming `path` if it does not match).
  ByteReader(std::string_view data, std::string path) : data_(data), path_(std::move(path)) {
    if (data_.size() < 8) bad("the file is too short (", data_.size(), " bytes)");
    uint64_t want;
    std::memcpy(&want, data_.data() + data_.size() - 8, 8);
    data_.remove_suffix(8);
    scholar::detail::Digest d;
    d.text(data_);
    if (d.value() != want) bad("checksum mismatch: the file is truncated or damaged");
  }
  template <class T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  std::string get_string(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    if (n > data_.size() - pos_) bad(what, " claims ", n, " bytes, more than remain");
    return std::string(take(static_cast<size_t>(n), what), static_cast<size_t>(n));
  }
  const char* take(size_t n, const char* what) {
    if (n > data_.size() - pos_)
      bad(what, " needs ", n, " bytes at offset ", pos_, " but only ", data_.size() - pos_,
          " remain");
    const char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  bool done() const noexcept { return pos_ == data_.size(); }
  size_t remaining() const noexcept { return data_.size() - pos_; }
  template <class... Args>
  [[noreturn]] void bad(const Args&... args) const {
    fail<FormatError>(path_, ": ", args...);
  }

 private:
  std::string_view data_;
  std::string path_;
  size_t pos_ = 0;
};

}  // namespace scholar::io::detail
