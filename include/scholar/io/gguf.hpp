// scholar/io/gguf.hpp: read and write GGUF files (the model format of ggml and llama.cpp).
//
// Layout (version 3, little-endian): "GGUF", uint32 version, uint64 tensor count, uint64 key-value
// count; the key-values (string key, uint32 type, value); the tensor infos (name, uint32 n_dims,
// n_dims uint64 sizes innermost first, uint32 ggml type, uint64 offset into the data section);
// padding to `general.alignment` (default 32); the data. Opening a file maps it and checks all of
// it before returning: magic, version, every count and string length against the bytes left,
// tensor types, sizes that overflow, offsets that are misaligned, overlap or run past the end. Each
// problem is a FormatError naming the file, the key or tensor, and what was wrong.
//
//   auto f = io::GgufFile::open("model.gguf");
//   std::string arch = f.get("general.architecture").as_string();
//   const io::GgufTensorInfo& t = f.info("blk.0.attn_q.weight");   // t.type, t.shape
//   std::span<const uint8_t> raw = f.bytes("blk.0.attn_q.weight");  // in place, in the mapping
//
//   io::GgufWriter w;
//   w.set("general.architecture", io::GgufValue::string("llama"));
//   w.add_tensor("token_embd.weight", WeightType::f32, {V, C}, data, bytes);
//   w.save("out.gguf");                                              // atomic
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scholar/io/file.hpp"
#include "scholar/tensor/quant.hpp"
#include "scholar/tensor/shape.hpp"

namespace scholar::io {

/// GGUF value types (the numbers are the format's).
enum class GgufType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

/// "uint32", "string", "array", ...
std::string_view gguf_type_name(GgufType t);

namespace detail {
class GgufReader;
}

/// One metadata value: a scalar, a string, or an array of one element type. Arrays are stored
/// flat, never as one object per element: numbers as their bytes in the file's layout, strings as
/// one buffer of characters and a table of where each ends (a 150k-token vocabulary is three heap
/// blocks).
class GgufValue {
 public:
  GgufValue() = default;
  static GgufValue u32(uint32_t v) { return scalar(GgufType::u32, int64_t{v}); }
  static GgufValue i32(int32_t v) { return scalar(GgufType::i32, static_cast<int64_t>(v)); }
  static GgufValue u64(uint64_t v) { return scalar(GgufType::u64, v); }
  static GgufValue f32(float v) { return real(GgufType::f32, v); }
  static GgufValue f64(double v) { return real(GgufType::f64, v); }
  static GgufValue boolean(bool v) { return scalar(GgufType::boolean, uint64_t{v}); }
  static GgufValue string(std::string s);
  static GgufValue string_array(const std::vector<std::string>& items);
  static GgufValue i32_array(const std::vector<int32_t>& items);
  static GgufValue f32_array(const std::vector<float>& items);
  /// A scalar of any integer type, holding v (ValueError if it does not fit).
  static GgufValue integer(GgufType t, int64_t v);

  GgufType type() const noexcept { return type_; }
  /// Element type of an array.
  GgufType element_type() const noexcept { return elem_; }
  bool is_array() const noexcept { return type_ == GgufType::array; }
  bool is_integer() const noexcept;
  bool is_number() const noexcept {
    return is_integer() || type_ == GgufType::f32 || type_ == GgufType::f64;
  }

  /// The value as an integer (any integer type or bool; FormatError otherwise). `what` names the
  /// key in messages.
  int64_t as_int(std::string_view what = "value") const;
  /// Any number as double.
  double as_double(std::string_view what = "value") const;
  bool as_bool(std::string_view what = "value") const;
  const std::string& as_string(std::string_view what = "value") const;

  /// Number of elements of an array (FormatError if not an array).
  size_t array_size(std::string_view what = "value") const;
  /// Element i of an array as a scalar value (FormatError if not an array, IndexError if out of
  /// range). For whole arrays use the converting accessors below.
  GgufValue at(size_t i, std::string_view what = "value") const;
  /// Element i of a string array, in place (valid while this value lives).
  std::string_view string_at(size_t i, std::string_view what = "value") const;
  /// An array of strings / of integers / of numbers, converted.
  std::vector<std::string> as_strings(std::string_view what = "value") const;
  std::vector<int64_t> as_ints(std::string_view what = "value") const;
  std::vector<float> as_floats(std::string_view what = "value") const;
  /// The elements of a number or bool array as stored: little-endian, element_type()'s size each
  /// (empty for a string array or a scalar).
  std::span<const uint8_t> array_bytes() const noexcept { return raw_; }

  /// Short rendering for messages and `gguf dump`-style listings (arrays abbreviated).
  std::string to_string() const;

 private:
  friend class GgufFile;
  friend class GgufWriter;
  friend class detail::GgufReader;
  static GgufValue scalar(GgufType t, uint64_t bits);
  static GgufValue scalar(GgufType t, int64_t v);
  static GgufValue real(GgufType t, double v);
  // A number or bool of type t from its little-endian bytes at p.
  static GgufValue decode(GgufType t, const uint8_t* p);
  // Element i of a number or bool array, decoded from raw_.
  GgufValue element(size_t i) const;
  void need_array(std::string_view what) const;
  GgufType type_ = GgufType::u8;
  GgufType elem_ = GgufType::u8;
  int64_t int_ = 0;  // integers and bools (u64 above INT64_MAX wraps; as_int rejects it)
  bool u64_big_ = false;
  double real_ = 0;
  std::string str_;  // a string; for a string array, all its elements back to back
  // Arrays: count_ elements; numbers and bools as their little-endian bytes (raw_), strings as the
  // end offset of each element in str_ (ends_).
  size_t count_ = 0;
  std::vector<uint8_t> raw_;
  std::vector<uint64_t> ends_;
};

/// One tensor's entry.
struct GgufTensorInfo {
  std::string name;
  WeightType type;
  Shape shape;          ///< outermost first (GGUF stores sizes innermost first)
  uint64_t offset = 0;  ///< within the data section
  uint64_t bytes = 0;
};

/// A validated, memory-mapped GGUF file (versions 2 and 3).
///
/// Thread-safety: const member functions may be called from many threads.
class GgufFile {
 public:
  /// Maps (or reads, see FileAccess) and validates `path`: IoError if unreadable, FormatError if
  /// malformed or if a tensor has a ggml type scholar cannot use (the message names it, e.g.
  /// Q4_K).
  static GgufFile open(const std::string& path, FileAccess access = FileAccess::map);

  const std::string& path() const noexcept { return file_->path(); }
  uint32_t version() const noexcept { return version_; }
  uint64_t alignment() const noexcept { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const noexcept { return kv_; }
  /// Keys in file order.
  const std::vector<std::string>& keys() const noexcept { return key_order_; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  /// The value for `key`; FormatError naming the file and the key if there is none.
  const GgufValue& get(const std::string& key) const;
  /// The value for `key`, or nullptr.
  const GgufValue* find(const std::string& key) const;

  /// Tensor entries in file order.
  const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// FormatError naming the file and the tensor if there is none.
  const GgufTensorInfo& info(const std::string& name) const;
  /// The tensor's bytes, in place in the mapping.
  std::span<const uint8_t> bytes(const std::string& name) const;
  /// The mapping, for views that must keep it alive.
  const std::shared_ptr<MappedFile>& mapping() const noexcept { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

/// Collects metadata and tensors and writes one GGUF v3 file.
class GgufWriter {
 public:
  /// Sets (or replaces) a metadata key. Keys are written in the order first set.
  void set(const std::string& key, GgufValue value);
  /// Adds a tensor of `shape` (outermost first) whose `data` holds its bytes in `type`'s layout
  /// (ValueError if the byte count disagrees, the name is taken, or a block-format row is not a
  /// multiple of 32). `keep` keeps the data alive until save().
  void add_tensor(const std::string& name, WeightType type, const Shape& shape, const void* data,
                  size_t bytes, std::shared_ptr<const void> keep = nullptr);
  /// Writes the file atomically (temporary file + rename); data aligned to 32 bytes.
  void save(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    WeightType type;
    Shape shape;
    const void* data;
    size_t bytes;
    std::shared_ptr<const void> keep;
  };
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Entry> tensors_;
};

}  // namespace scholar::io
