// safetensors: validation on open, zero-copy loads, atomic saves.
#include "scholar/io/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "scholar/error.hpp"
#include "scholar/io/json.hpp"

namespace scholar::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes little-endian");

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // as the reference implementation

struct DTypeName {
  StDType t;
  const char* name;
  int size;
};
constexpr DTypeName kDTypes[] = {
    {StDType::F64, "F64", 8},   {StDType::F32, "F32", 4}, {StDType::F16, "F16", 2},
    {StDType::BF16, "BF16", 2}, {StDType::I64, "I64", 8}, {StDType::I32, "I32", 4},
    {StDType::I16, "I16", 2},   {StDType::I8, "I8", 1},   {StDType::U8, "U8", 1},
    {StDType::BOOL, "BOOL", 1},
};

StDType st_dtype_of(DType t) {
  switch (t) {
    case DType::f32:
      return StDType::F32;
    case DType::bf16:
      return StDType::BF16;
    case DType::f16:
      return StDType::F16;
    case DType::i32:
      return StDType::I32;
  }
  return StDType::F32;
}

}  // namespace

std::string_view st_dtype_name(StDType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d.name;
  return "?";
}

int st_dtype_size(StDType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d.size;
  return 0;
}

SafetensorsFile SafetensorsFile::open(const std::string& path, FileAccess access) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path, access);
  const uint8_t* p = f.file_->data();
  const size_t size = f.file_->size();
  auto bad = [&](auto&&... what) { fail<FormatError>(path, ": ", what...); };
  if (size < 8) bad("file of ", size, " bytes is too short for a safetensors header");
  uint64_t n = 0;
  std::memcpy(&n, p, 8);
  if (n > kMaxHeader)
    bad("header length ", n, " exceeds the 100 MiB limit (not a safetensors file?)");
  if (n > size - 8) bad("header length ", n, " runs past the end of the ", size, "-byte file");
  if (n < 2 || p[8] != '{') bad("header does not start with a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(n));
  const Json header = Json::parse(text, path + " header");
  f.data_start_ = 8 + static_cast<size_t>(n);
  const size_t data_size = size - f.data_start_;

  for (const auto& [name, entry] : header.as_object(path + " header")) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : entry.as_object(path + ": __metadata__"))
        f.metadata_[k] = v.as_string(path + ": __metadata__." + k);
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (f.index_.count(name)) bad("tensor '", name, "' appears twice in the header");
    StTensorInfo info;
    info.name = name;
    const std::string& dt = entry.at("dtype", where).as_string(where + " dtype");
    const DTypeName* found = nullptr;
    for (const auto& d : kDTypes)
      if (dt == d.name) found = &d;
    if (!found) bad("tensor '", name, "' has unknown dtype '", dt, "'");
    info.dtype = found->t;
    const auto& dims = entry.at("shape", where).as_array(where + " shape");
    if (dims.size() > static_cast<size_t>(kMaxDims))
      bad("tensor '", name, "' has ", dims.size(), " dimensions (at most ", kMaxDims, ")");
    uint64_t numel = 1;
    for (const Json& d : dims) {
      const int64_t v = d.as_int(where + " shape");
      if (v < 0) bad("tensor '", name, "' has a negative dimension ", v);
      if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(v))
        bad("tensor '", name, "' has a shape too large to address");
      numel *= static_cast<uint64_t>(v);
      info.shape.push_back(v);
    }
    const auto& offs = entry.at("data_offsets", where).as_array(where + " data_offsets");
    if (offs.size() != 2)
      bad("tensor '", name, "' data_offsets must have 2 entries, has ", offs.size());
    const int64_t b = offs[0].as_int(where + " data_offsets"),
                  e = offs[1].as_int(where + " data_offsets");
    if (b < 0 || e < b) bad("tensor '", name, "' has invalid data_offsets [", b, ", ", e, "]");
    if (static_cast<uint64_t>(e) > data_size)
      bad("tensor '", name, "' data [", b, ", ", e, ") runs past the end of the ", data_size,
          "-byte data section (truncated file?)");
    const uint64_t want = numel * static_cast<uint64_t>(found->size);
    if (want != static_cast<uint64_t>(e - b))
      bad("tensor '", name, "' of shape ", info.shape.str(), " and dtype ", dt, " needs ", want,
          " bytes but data_offsets give ", e - b);
    info.begin = static_cast<size_t>(b);
    info.end = static_cast<size_t>(e);
    f.index_[name] = f.tensors_.size();
    f.tensors_.push_back(std::move(info));
  }

  // The byte ranges must tile the data section exactly: no overlaps, no holes.
  std::vector<const StTensorInfo*> order;
  for (const auto& t : f.tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* x, auto* y) {
    return x->begin != y->begin ? x->begin < y->begin : x->end < y->end;
  });
  size_t expected = 0;
  const StTensorInfo* prev = nullptr;
  for (const StTensorInfo* t : order) {
    if (t->begin < expected)
      bad("tensor '", t->name, "' data [", t->begin, ", ", t->end, ") overlaps tensor '",
          prev->name, "' [", prev->begin, ", ", prev->end, ")");
    if (t->begin > expected)
      bad("bytes [", expected, ", ", t->begin,
          ") of the data section belong to no tensor (before '", t->name, "')");
    expected = t->end;
    if (t->end > t->begin) prev = t;
  }
  if (expected != data_size)
    bad("the data section has ", data_size, " bytes but the tensors cover ", expected);
  return f;
}

const StTensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail<FormatError>(path(), ": no tensor named '", name, "'");
  return tensors_[it->second];
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
  const StTensorInfo& i = info(name);
  return {file_->data() + data_start_ + i.begin, i.end - i.begin};
}

template <Element T>
Tensor<T> SafetensorsFile::load(const std::string& name) const {
  const StTensorInfo& i = info(name);
  uint8_t* src = file_->mutable_data() + data_start_ + i.begin;
  const int64_t n = i.shape.numel();
  auto mismatch = [&]() -> Tensor<T> {
    fail<FormatError>(path(), ": tensor '", name, "' has dtype ", st_dtype_name(i.dtype),
                      ", which cannot be loaded as ", dtype_name(dtype_of<T>()));
  };
  // Zero-copy when the stored dtype is T and the bytes are aligned for T.
  if (i.dtype == st_dtype_of(dtype_of<T>())) {
    if (reinterpret_cast<uintptr_t>(src) % alignof(T) == 0 && n > 0)
      return Tensor<T>::wrap(reinterpret_cast<T*>(src), i.shape, std::shared_ptr<void>(file_));
    Tensor<T> t = Tensor<T>::empty(i.shape);
    if (n > 0) std::memcpy(t.data(), src, static_cast<size_t>(n) * sizeof(T));
    return t;
  }
  Tensor<T> out = Tensor<T>::empty(i.shape);
  T* dst = out.data();
  auto read = [&](auto tag, int64_t k) {
    using S = decltype(tag);
    S v;
    std::memcpy(&v, src + k * static_cast<int64_t>(sizeof(S)), sizeof(S));
    return v;
  };
  if constexpr (std::is_same_v<T, float>) {
    switch (i.dtype) {
      case StDType::F16:
        for (int64_t k = 0; k < n; ++k) dst[k] = f16::to_float(read(uint16_t{}, k));
        return out;
      case StDType::BF16:
        for (int64_t k = 0; k < n; ++k)
          dst[k] = static_cast<float>(bf16::from_bits(read(uint16_t{}, k)));
        return out;
      case StDType::F64:
        for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<float>(read(double{}, k));
        return out;
      default:
        return mismatch();
    }
  } else if constexpr (std::is_same_v<T, int32_t>) {
    if (i.dtype != StDType::I64) return mismatch();
    for (int64_t k = 0; k < n; ++k) {
      const int64_t v = read(int64_t{}, k);
      if (v < INT32_MIN || v > INT32_MAX)
        fail<FormatError>(path(), ": tensor '", name, "' element ", k, " = ", v,
                          " does not fit in int32");
      dst[k] = static_cast<int32_t>(v);
    }
    return out;
  } else {
    if (i.dtype != StDType::F32) return mismatch();
    for (int64_t k = 0; k < n; ++k) dst[k] = T(read(float{}, k));
    return out;
  }
}

template <Element T>
void SafetensorsWriter::add(const std::string& name, const Tensor<T>& t) {
  if (name.empty()) fail<ValueError>("SafetensorsWriter::add: empty tensor name");
  if (name == "__metadata__")
    fail<ValueError>("SafetensorsWriter::add: '__metadata__' is reserved");
  if (!t.defined()) fail<ValueError>("SafetensorsWriter::add: tensor '", name, "' is undefined");
  for (const Entry& e : entries_)
    if (e.name == name) fail<ValueError>("SafetensorsWriter::add: tensor '", name, "' added twice");
  auto held = std::make_shared<Tensor<T>>(t.contiguous());
  entries_.push_back(Entry{name, st_dtype_of(dtype_of<T>()), t.shape(), held, held->data(),
                           static_cast<size_t>(t.numel()) * sizeof(T)});
}

std::string SafetensorsWriter::header_bytes() const {
  Json header = Json::object();
  if (!metadata_.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata_) meta.set(k, Json(v));
    header.set("__metadata__", std::move(meta));
  }
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    Json shape = Json::array();
    for (int64_t d : e.shape) shape.push_back(Json(d));
    Json entry = Json::object();
    entry.set("dtype", Json(std::string(st_dtype_name(e.dtype))));
    entry.set("shape", std::move(shape));
    entry.set("data_offsets", Json::array({Json(offset), Json(offset + e.bytes)}));
    header.set(e.name, std::move(entry));
    offset += e.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  const uint64_t n = text.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + text;
}

std::string SafetensorsWriter::serialize() const {
  std::string out = header_bytes();
  for (const Entry& e : entries_) out.append(static_cast<const char*>(e.data), e.bytes);
  return out;
}

void SafetensorsWriter::save(const std::string& path) const {
  AtomicFile f(path);
  f.write(header_bytes());
  for (const Entry& e : entries_) f.write(e.data, e.bytes);  // streamed: no second copy in memory
  f.commit();
}

template Tensor<float> SafetensorsFile::load<float>(const std::string&) const;
template Tensor<bf16> SafetensorsFile::load<bf16>(const std::string&) const;
template Tensor<f16> SafetensorsFile::load<f16>(const std::string&) const;
template Tensor<int32_t> SafetensorsFile::load<int32_t>(const std::string&) const;
template void SafetensorsWriter::add<float>(const std::string&, const Tensor<float>&);
template void SafetensorsWriter::add<bf16>(const std::string&, const Tensor<bf16>&);
template void SafetensorsWriter::add<f16>(const std::string&, const Tensor<f16>&);
template void SafetensorsWriter::add<int32_t>(const std::string&, const Tensor<int32_t>&);

}  // namespace scholar::io
