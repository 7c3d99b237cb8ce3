// scholar/io/safetensors.hpp: read and write safetensors files (Hugging Face's tensor format).
//
// Layout: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "value"}}, then the data. Opening a file maps it and checks the whole
// header before anything is read: bad length, malformed JSON, unknown dtypes, shapes whose size
// disagrees with their byte range, and ranges that fall outside the data, overlap or leave holes
// all throw FormatError naming the file and the tensor.
//
//   auto f = io::SafetensorsFile::open("model.safetensors");
//   Tensor<float> w = f.load<float>("transformer.wte.weight");   // zero-copy view of the mapping
//
//   io::SafetensorsWriter out;
//   out.add("w", w);
//   out.save("copy.safetensors");                                 // atomic
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "scholar/io/file.hpp"
#include "scholar/tensor/tensor.hpp"

namespace scholar::io {

/// Element types a safetensors file may declare.
enum class StDType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

/// "F32", "BF16", ...
std::string_view st_dtype_name(StDType t);
/// Bytes per element.
int st_dtype_size(StDType t);

/// One tensor's entry in the header.
struct StTensorInfo {
  std::string name;
  StDType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte range within the data section
};

/// A validated, memory-mapped safetensors file.
///
/// Thread-safety: const member functions may be called from many threads.
class SafetensorsFile {
 public:
  /// Maps (or reads, see FileAccess) and validates `path` (IoError if unreadable, FormatError if
  /// malformed).
  static SafetensorsFile open(const std::string& path, FileAccess access = FileAccess::map);

  const std::string& path() const noexcept { return file_->path(); }
  /// Entries in header order.
  const std::vector<StTensorInfo>& tensors() const noexcept { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  /// The entry for `name`; FormatError naming the file if there is none.
  const StTensorInfo& info(const std::string& name) const;
  /// The "__metadata__" strings.
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// Tensor `name` as T. float reads F32 (a zero-copy, copy-on-write view of the mapping when the
  /// data is 4-byte aligned), F16, BF16 and F64 (converted). bf16/f16 read their own dtype
  /// (zero-copy) or F32 (rounded). int32_t reads I32 or I64 (FormatError if a value overflows).
  /// Anything else is a FormatError naming the tensor and both dtypes.
  template <Element T>
  Tensor<T> load(const std::string& name) const;

  /// The raw bytes of tensor `name`.
  std::span<const uint8_t> bytes(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<StTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

/// Collects tensors and writes them as one safetensors file.
class SafetensorsWriter {
 public:
  /// Adds a tensor under `name` (ValueError if the name is taken or empty). The tensor is held, not
  /// copied, until save(); a non-contiguous one is made contiguous.
  template <Element T>
  void add(const std::string& name, const Tensor<T>& t);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  /// Writes the file atomically (temporary file + rename). Tensors are stored in the order added.
  void save(const std::string& path) const;
  /// The bytes save() would write.
  std::string serialize() const;

 private:
  std::string header_bytes() const;
  struct Entry {
    std::string name;
    StDType dtype;
    Shape shape;
    std::shared_ptr<void> keep;  // a Tensor<T> kept alive
    const void* data;
    size_t bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

extern template Tensor<float> SafetensorsFile::load<float>(const std::string&) const;
extern template Tensor<bf16> SafetensorsFile::load<bf16>(const std::string&) const;
extern template Tensor<f16> SafetensorsFile::load<f16>(const std::string&) const;
extern template Tensor<int32_t> SafetensorsFile::load<int32_t>(const std::string&) const;
extern template void SafetensorsWriter::add<float>(const std::string&, const Tensor<float>&);
extern template void SafetensorsWriter::add<bf16>(const std::string&, const Tensor<bf16>&);
extern template void SafetensorsWriter::add<f16>(const std::string&, const Tensor<f16>&);
extern template void SafetensorsWriter::add<int32_t>(const std::string&, const Tensor<int32_t>&);

}  // namespace scholar::io
