// GGUF: a bounds-checked parser over the mapping, and an atomic writer.
#include "scholar/io/gguf.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "scholar/error.hpp"

namespace scholar::io {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes little-endian");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr uint64_t kMaxString = 1ull << 30;
constexpr uint32_t kMaxDimsGguf = 4;  // GGML_MAX_DIMS

// ggml type names, for messages about types scholar does not read.
std::string ggml_type_name(uint32_t t) {
  static const char* names[] = {"F32",   "F16",   "Q4_0",    "Q4_1",   "Q4_2",    "Q4_3",  "Q5_0",
                                "Q5_1",  "Q8_0",  "Q8_1",    "Q2_K",   "Q3_K",    "Q4_K",  "Q5_K",
                                "Q6_K",  "Q8_K",  "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",
                                "IQ3_S", "IQ2_S", "IQ4_XS",  "I8",     "I16",     "I32",   "I64",
                                "F64",   "IQ1_M", "BF16"};
  if (t < std::size(names)) return names[t];
  return "unknown type " + std::to_string(t);
}

// "F32, F16, BF16, Q8_0 and Q4_0": the ggml names of the weight types scholar reads.
std::string supported_types() {
  std::string s;
  for (int i = 0; i < kWeightTypeCount; ++i) {
    if (i > 0) s += i + 1 == kWeightTypeCount ? " and " : ", ";
    s += kWeightTypes[i].ggml_name;
  }
  return s;
}

int scalar_size(GgufType t) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean:
      return 1;
    case GgufType::u16:
    case GgufType::i16:
      return 2;
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::f32:
      return 4;
    case GgufType::u64:
    case GgufType::i64:
    case GgufType::f64:
      return 8;
    default:
      return 0;
  }
}

}  // namespace

namespace detail {
// Reads the header fields in order; every read checks the bytes left first.
class GgufReader {
 public:
  GgufReader(const uint8_t* p, size_t size, const std::string& path)
      : p_(p), size_(size), path_(path) {}

  template <class... A>
  [[noreturn]] void bad(const A&... what) const {
    fail<FormatError>(path_, ": ", what..., " (at byte ", pos_, ")");
  }
  void need(uint64_t n, std::string_view what) const {
    if (n > size_ - pos_) bad("truncated: ", what, " needs ", n, " bytes, ", size_ - pos_, " left");
  }
  template <class T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  // A length-prefixed string, in place in the file.
  std::string_view string_view(std::string_view what) {
    const auto n = read<uint64_t>(what);
    if (n > kMaxString) bad(what, ": string length ", n, " is implausible");
    need(n, what);
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }
  std::string string(std::string_view what) { return std::string(string_view(what)); }
  GgufValue value(GgufType t, const std::string& key);
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};
}  // namespace detail

// --- GgufValue
// ------------------------------------------------------------------------------------

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::u8:
      return "uint8";
    case GgufType::i8:
      return "int8";
    case GgufType::u16:
      return "uint16";
    case GgufType::i16:
      return "int16";
    case GgufType::u32:
      return "uint32";
    case GgufType::i32:
      return "int32";
    case GgufType::f32:
      return "float32";
    case GgufType::boolean:
      return "bool";
    case GgufType::string:
      return "string";
    case GgufType::array:
      return "array";
    case GgufType::u64:
      return "uint64";
    case GgufType::i64:
      return "int64";
    case GgufType::f64:
      return "float64";
  }
  return "?";
}

GgufValue GgufValue::scalar(GgufType t, uint64_t bits) {
  GgufValue v;
  v.type_ = t;
  v.int_ = static_cast<int64_t>(bits);
  v.u64_big_ = t == GgufType::u64 && bits > static_cast<uint64_t>(INT64_MAX);
  return v;
}
GgufValue GgufValue::scalar(GgufType t, int64_t x) {
  GgufValue v;
  v.type_ = t;
  v.int_ = x;
  return v;
}
GgufValue GgufValue::real(GgufType t, double x) {
  GgufValue v;
  v.type_ = t;
  v.real_ = x;
  return v;
}
GgufValue GgufValue::string(std::string s) {
  GgufValue v;
  v.type_ = GgufType::string;
  v.str_ = std::move(s);
  return v;
}
GgufValue GgufValue::string_array(const std::vector<std::string>& items) {
  GgufValue v;
  v.type_ = GgufType::array;
  v.elem_ = GgufType::string;
  v.count_ = items.size();
  size_t total = 0;
  for (const auto& x : items) total += x.size();
  v.str_.reserve(total);
  v.ends_.reserve(items.size());
  for (const auto& x : items) {
    v.str_ += x;
    v.ends_.push_back(v.str_.size());
  }
  return v;
}
GgufValue GgufValue::i32_array(const std::vector<int32_t>& items) {
  GgufValue v;
  v.type_ = GgufType::array;
  v.elem_ = GgufType::i32;
  v.count_ = items.size();
  v.raw_.resize(items.size() * sizeof(int32_t));
  if (!items.empty()) std::memcpy(v.raw_.data(), items.data(), v.raw_.size());
  return v;
}
GgufValue GgufValue::f32_array(const std::vector<float>& items) {
  GgufValue v;
  v.type_ = GgufType::array;
  v.elem_ = GgufType::f32;
  v.count_ = items.size();
  v.raw_.resize(items.size() * sizeof(float));
  if (!items.empty()) std::memcpy(v.raw_.data(), items.data(), v.raw_.size());
  return v;
}
GgufValue GgufValue::integer(GgufType t, int64_t x) {
  int64_t lo = 0, hi = 0;
  switch (t) {
    case GgufType::u8:
      hi = 255;
      break;
    case GgufType::i8:
      lo = -128, hi = 127;
      break;
    case GgufType::u16:
      hi = 65535;
      break;
    case GgufType::i16:
      lo = -32768, hi = 32767;
      break;
    case GgufType::u32:
      hi = UINT32_MAX;
      break;
    case GgufType::i32:
      lo = INT32_MIN, hi = INT32_MAX;
      break;
    case GgufType::u64:
      hi = INT64_MAX;
      break;
    case GgufType::i64:
      lo = INT64_MIN, hi = INT64_MAX;
      break;
    default:
      fail<ValueError>("GgufValue::integer: ", gguf_type_name(t), " is not an integer type");
  }
  if (x < lo || x > hi)
    fail<ValueError>("GgufValue::integer: ", x, " does not fit in ", gguf_type_name(t));
  return scalar(t, x);
}

bool GgufValue::is_integer() const noexcept {
  switch (type_) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::u16:
    case GgufType::i16:
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::u64:
    case GgufType::i64:
      return true;
    default:
      return false;
  }
}

int64_t GgufValue::as_int(std::string_view what) const {
  if (!is_integer() && type_ != GgufType::boolean)
    fail<FormatError>(what, ": expected an integer, found ", gguf_type_name(type_));
  if (u64_big_) fail<FormatError>(what, ": uint64 value too large");
  return int_;
}
double GgufValue::as_double(std::string_view what) const {
  if (type_ == GgufType::f32 || type_ == GgufType::f64) return real_;
  return static_cast<double>(as_int(what));
}
bool GgufValue::as_bool(std::string_view what) const {
  if (type_ != GgufType::boolean)
    fail<FormatError>(what, ": expected a bool, found ", gguf_type_name(type_));
  return int_ != 0;
}
const std::string& GgufValue::as_string(std::string_view what) const {
  if (type_ != GgufType::string)
    fail<FormatError>(what, ": expected a string, found ", gguf_type_name(type_));
  return str_;
}
void GgufValue::need_array(std::string_view what) const {
  if (type_ != GgufType::array)
    fail<FormatError>(what, ": expected an array, found ", gguf_type_name(type_));
}
size_t GgufValue::array_size(std::string_view what) const {
  need_array(what);
  return count_;
}
GgufValue GgufValue::decode(GgufType t, const uint8_t* p) {
  auto get = [p]<class T>(T) {
    T x;
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  switch (t) {
    case GgufType::u8:
    case GgufType::boolean:
      return scalar(t, int64_t{get(uint8_t{})});
    case GgufType::i8:
      return scalar(t, int64_t{get(int8_t{})});
    case GgufType::u16:
      return scalar(t, int64_t{get(uint16_t{})});
    case GgufType::i16:
      return scalar(t, int64_t{get(int16_t{})});
    case GgufType::u32:
      return scalar(t, int64_t{get(uint32_t{})});
    case GgufType::i32:
      return scalar(t, int64_t{get(int32_t{})});
    case GgufType::u64:
      return scalar(t, get(uint64_t{}));
    case GgufType::i64:
      return scalar(t, get(int64_t{}));
    case GgufType::f32:
      return real(t, get(float{}));
    case GgufType::f64:
      return real(t, get(double{}));
    default:
      break;
  }
  SCHOLAR_ASSERT(false, "GgufValue::decode of ", gguf_type_name(t));
}
GgufValue GgufValue::element(size_t i) const {
  return decode(elem_, raw_.data() + i * static_cast<size_t>(scalar_size(elem_)));
}
GgufValue GgufValue::at(size_t i, std::string_view what) const {
  need_array(what);
  if (i >= count_) fail<IndexError>(what, ": index ", i, " out of range for ", count_, " elements");
  if (elem_ == GgufType::string) return string(std::string(string_at(i, what)));
  return element(i);
}
std::string_view GgufValue::string_at(size_t i, std::string_view what) const {
  need_array(what);
  if (elem_ != GgufType::string)
    fail<FormatError>(what, ": expected an array of strings, found ", gguf_type_name(elem_));
  if (i >= count_) fail<IndexError>(what, ": index ", i, " out of range for ", count_, " elements");
  const size_t begin = i == 0 ? 0 : ends_[i - 1];
  return std::string_view(str_).substr(begin, ends_[i] - begin);
}
std::vector<std::string> GgufValue::as_strings(std::string_view what) const {
  need_array(what);
  if (elem_ != GgufType::string)
    fail<FormatError>(what, ": expected an array of strings, found ", gguf_type_name(elem_));
  std::vector<std::string> out;
  out.reserve(count_);
  for (size_t i = 0; i < count_; ++i) out.emplace_back(string_at(i, what));
  return out;
}
std::vector<int64_t> GgufValue::as_ints(std::string_view what) const {
  need_array(what);
  std::vector<int64_t> out;
  out.reserve(count_);
  if (elem_ == GgufType::string)
    fail<FormatError>(what, ": expected an integer, found ", gguf_type_name(elem_));
  for (size_t i = 0; i < count_; ++i) out.push_back(element(i).as_int(what));
  return out;
}
std::vector<float> GgufValue::as_floats(std::string_view what) const {
  need_array(what);
  std::vector<float> out;
  out.reserve(count_);
  if (elem_ == GgufType::string)
    fail<FormatError>(what, ": expected a number, found ", gguf_type_name(elem_));
  if (elem_ == GgufType::f32) {  // the common case (token scores): straight from the bytes
    out.resize(count_);
    if (count_) std::memcpy(out.data(), raw_.data(), count_ * sizeof(float));
    return out;
  }
  for (size_t i = 0; i < count_; ++i) out.push_back(static_cast<float>(element(i).as_double(what)));
  return out;
}

std::string GgufValue::to_string() const {
  switch (type_) {
    case GgufType::string:
      return '"' + (str_.size() > 60 ? str_.substr(0, 60) + "..." : str_) + '"';
    case GgufType::boolean:
      return int_ ? "true" : "false";
    case GgufType::f32:
    case GgufType::f64:
      return scholar::detail::str_cat(real_);
    case GgufType::array: {
      std::string s = scholar::detail::str_cat(gguf_type_name(elem_), "[", count_, "] [");
      for (size_t i = 0; i < count_ && i < 5; ++i) s += (i ? ", " : "") + at(i).to_string();
      return s + (count_ > 5 ? ", ...]" : "]");
    }
    default:
      return u64_big_ ? std::to_string(static_cast<uint64_t>(int_)) : std::to_string(int_);
  }
}

// --- reading
// ----------------------------------------------------------------------------------------

GgufValue detail::GgufReader::value(GgufType t, const std::string& key) {
  switch (t) {
    case GgufType::string:
      return GgufValue::string(string(key));
    case GgufType::array: {
      const auto raw = read<uint32_t>(key);
      if (raw > static_cast<uint32_t>(GgufType::f64))
        bad("key ", key, ": unknown array element type ", raw);
      const auto elem = static_cast<GgufType>(raw);
      if (elem == GgufType::array) bad("key ", key, ": nested arrays are not supported");
      const auto n = read<uint64_t>(key);
      // Every element takes at least one byte (a string at least 8): check before allocating.
      const uint64_t min_size = elem == GgufType::string ? 8 : std::max(scalar_size(elem), 1);
      if (n > left() / min_size)
        bad("key ", key, ": array of ", n, " ", gguf_type_name(elem),
            " runs past the end of the file");
      GgufValue v;
      v.type_ = GgufType::array;
      v.elem_ = elem;
      v.count_ = static_cast<size_t>(n);
      if (elem == GgufType::string) {
        // Lengths are checked one by one; reserve only a bounded amount up front.
        v.ends_.reserve(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
        for (uint64_t i = 0; i < n; ++i) {
          v.str_ += string_view(key);
          v.ends_.push_back(v.str_.size());
        }
      } else {
        const size_t bytes = static_cast<size_t>(n) * static_cast<size_t>(scalar_size(elem));
        need(bytes, key);
        v.raw_.assign(p_ + pos_, p_ + pos_ + bytes);
        if (elem == GgufType::boolean)
          for (uint8_t b : v.raw_)
            if (b > 1) bad("key ", key, ": bool value ", int{b}, " is neither 0 nor 1");
        pos_ += bytes;
      }
      return v;
    }
    default:
      break;
  }
  const int size = scalar_size(t);
  if (size == 0) bad("key ", key, ": unknown value type ", static_cast<uint32_t>(t));
  need(static_cast<uint64_t>(size), key);
  GgufValue v = GgufValue::decode(t, p_ + pos_);
  pos_ += static_cast<size_t>(size);
  if (t == GgufType::boolean && v.int_ > 1)
    bad("key ", key, ": bool value ", v.int_, " is neither 0 nor 1");
  return v;
}

GgufFile GgufFile::open(const std::string& path, FileAccess access) {
  GgufFile f;
  f.file_ = MappedFile::open(path, access);
  detail::GgufReader r(f.file_->data(), f.file_->size(), path);
  if (f.file_->size() < 4 || r.read<uint32_t>("magic") != kMagic)
    fail<FormatError>(path, ": not a GGUF file (bad magic)");
  f.version_ = r.read<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3)
    fail<FormatError>(path, ": GGUF version ", f.version_, " is not supported (2 and 3 are)");
  const auto n_tensors = r.read<uint64_t>("tensor count");
  const auto n_kv = r.read<uint64_t>("metadata count");
  // A key-value takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8.
  if (n_kv > r.left() / 13) r.bad("metadata count ", n_kv, " is larger than the file can hold");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.string("metadata key");
    const auto t = r.read<uint32_t>("value type of " + key);
    if (t > static_cast<uint32_t>(GgufType::f64)) r.bad("key ", key, ": unknown value type ", t);
    GgufValue v = r.value(static_cast<GgufType>(t), key);
    if (f.kv_.count(key)) r.bad("key ", key, " appears twice");
    f.key_order_.push_back(key);
    f.kv_.emplace(std::move(key), std::move(v));
  }
  if (const GgufValue* a = f.find("general.alignment")) {
    const int64_t al = a->as_int(path + ": general.alignment");
    if (al <= 0 || (al & (al - 1)) != 0 || al > (1 << 20))
      fail<FormatError>(path, ": general.alignment ", al, " is not a power of two");
    f.alignment_ = static_cast<uint64_t>(al);
  }
  if (n_tensors > r.left() / 24)
    r.bad("tensor count ", n_tensors, " is larger than the file can hold");
  f.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = r.string("tensor name");
    const auto nd = r.read<uint32_t>("dimension count of " + t.name);
    if (nd == 0 || nd > kMaxDimsGguf)
      r.bad("tensor ", t.name, ": ", nd, " dimensions (1 to 4 allowed)");
    uint64_t ne[kMaxDimsGguf];
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      ne[d] = r.read<uint64_t>("dimensions of " + t.name);
      if (ne[d] == 0 || ne[d] > (1ull << 40) || numel > (1ull << 46) / ne[d])
        r.bad("tensor ", t.name, ": dimension ", d, " of size ", ne[d], " is out of range");
      numel *= ne[d];
    }
    for (uint32_t d = nd; d-- > 0;) t.shape.push_back(static_cast<int64_t>(ne[d]));
    const auto type = r.read<uint32_t>("type of " + t.name);
    const std::optional<WeightType> wt = weight_type_from_ggml(type);
    if (!wt)
      fail<FormatError>(path, ": tensor ", t.name, " has type ", ggml_type_name(type),
                        ", which scholar cannot read (", supported_types(), " are supported)");
    t.type = *wt;
    if (ne[0] % static_cast<uint64_t>(weight_type_info(t.type).block_values) != 0)
      r.bad("tensor ", t.name, ": rows of ", ne[0], " values are not a whole number of ",
            weight_type_name(t.type), " blocks");
    t.bytes = row_bytes(t.type, static_cast<int64_t>(ne[0])) * (numel / ne[0]);
    t.offset = r.read<uint64_t>("offset of " + t.name);
    if (t.offset % f.alignment_ != 0)
      r.bad("tensor ", t.name, ": offset ", t.offset, " is not a multiple of the alignment ",
            f.alignment_);
    if (f.index_.count(t.name)) r.bad("tensor ", t.name, " appears twice");
    f.index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }
  f.data_start_ = (r.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  const uint64_t size = f.file_->size();
  const uint64_t data_size = f.data_start_ <= size ? size - f.data_start_ : 0;
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : f.tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      fail<FormatError>(path, ": tensor ", t.name, ": data [", t.offset, ", ", t.offset + t.bytes,
                        ") runs past the end of the data section (", data_size,
                        " bytes; the file is truncated?)");
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
      fail<FormatError>(path, ": tensors ", by_offset[i - 1]->name, " and ", by_offset[i]->name,
                        " overlap");
  return f;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail<FormatError>(path(), ": metadata key ", key, " is missing");
  return *v;
}

const GgufTensorInfo& GgufFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail<FormatError>(path(), ": tensor ", name, " is missing");
  return tensors_[it->second];
}

std::span<const uint8_t> GgufFile::bytes(const std::string& name) const {
  const GgufTensorInfo& t = info(name);
  return {file_->data() + data_start_ + t.offset, static_cast<size_t>(t.bytes)};
}

// --- writing
// ----------------------------------------------------------------------------------------

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key.empty()) fail<ValueError>("GgufWriter::set: empty key");
  for (auto& [k, v] : kv_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, WeightType type, const Shape& shape,
                            const void* data, size_t bytes, std::shared_ptr<const void> keep) {
  if (name.empty()) fail<ValueError>("GgufWriter::add_tensor: empty name");
  for (const auto& e : tensors_)
    if (e.name == name) fail<ValueError>("GgufWriter::add_tensor: tensor ", name, " added twice");
  if (shape.rank() < 1 || shape.rank() > 4)
    fail<ValueError>("GgufWriter::add_tensor: ", name, " has rank ", shape.rank(), " (1 to 4)");
  const int64_t cols = shape[shape.rank() - 1];
  if (cols % weight_type_info(type).block_values != 0)
    fail<ValueError>("GgufWriter::add_tensor: ", name, ": rows of ", cols,
                     " values cannot be stored as ", weight_type_name(type));
  const size_t want = row_bytes(type, cols) * static_cast<size_t>(shape.numel() / cols);
  if (bytes != want)
    fail<ValueError>("GgufWriter::add_tensor: ", name, " ", shape.str(), " as ",
                     weight_type_name(type), " takes ", want, " bytes, given ", bytes);
  tensors_.push_back({name, type, shape, data, bytes, std::move(keep)});
}

namespace {
void put_string(std::string& out, std::string_view s) {
  append_bytes(out, uint64_t{s.size()});
  out.append(s);
}
void put_value(std::string& out, const GgufValue& v, GgufType t);
}  // namespace

void GgufWriter::save(const std::string& path) const {
  constexpr uint64_t kAlign = 32;
  std::string head;
  append_bytes(head, kMagic);
  append_bytes(head, uint32_t{3});
  append_bytes(head, uint64_t{tensors_.size()});
  append_bytes(head, uint64_t{kv_.size() + (kv_.end() == std::find_if(kv_.begin(), kv_.end(),
                                                                      [](auto& kv) {
                                                                        return kv.first ==
                                                                               "general.alignment";
                                                                      })
                                                ? 1
                                                : 0)});
  bool has_align = false;
  for (const auto& [k, v] : kv_) {
    put_string(head, k);
    append_bytes(head, static_cast<uint32_t>(v.type()));
    put_value(head, v, v.type());
    if (k == "general.alignment") {
      has_align = true;
      if (v.as_int("general.alignment") != static_cast<int64_t>(kAlign))
        fail<ValueError>("GgufWriter: general.alignment must be 32");
    }
  }
  if (!has_align) {
    put_string(head, "general.alignment");
    append_bytes(head, static_cast<uint32_t>(GgufType::u32));
    append_bytes(head, uint32_t{kAlign});
  }
  uint64_t offset = 0;
  for (const auto& e : tensors_) {
    put_string(head, e.name);
    append_bytes(head, static_cast<uint32_t>(e.shape.rank()));
    for (int d = e.shape.rank(); d-- > 0;) append_bytes(head, static_cast<uint64_t>(e.shape[d]));
    append_bytes(head, static_cast<uint32_t>(e.type));
    append_bytes(head, offset);
    offset += (e.bytes + kAlign - 1) / kAlign * kAlign;
  }
  head.resize((head.size() + kAlign - 1) / kAlign * kAlign, '\0');
  AtomicFile out(path);
  out.write(head);
  static const char zeros[kAlign] = {};
  for (const auto& e : tensors_) {
    out.write(e.data, e.bytes);
    const size_t pad = (kAlign - e.bytes % kAlign) % kAlign;
    if (pad) out.write(zeros, pad);
  }
  out.commit();
}

namespace {
void put_value(std::string& out, const GgufValue& v, GgufType t) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean:
      append_bytes(out, static_cast<uint8_t>(v.as_int()));
      break;
    case GgufType::u16:
    case GgufType::i16:
      append_bytes(out, static_cast<uint16_t>(v.as_int()));
      break;
    case GgufType::u32:
    case GgufType::i32:
      append_bytes(out, static_cast<uint32_t>(v.as_int()));
      break;
    case GgufType::u64:
    case GgufType::i64:
      append_bytes(out, static_cast<uint64_t>(v.as_int()));
      break;
    case GgufType::f32:
      append_bytes(out, static_cast<float>(v.as_double()));
      break;
    case GgufType::f64:
      append_bytes(out, v.as_double());
      break;
    case GgufType::string:
      put_string(out, v.as_string());
      break;
    case GgufType::array: {
      append_bytes(out, static_cast<uint32_t>(v.element_type()));
      const size_t n = v.array_size();
      append_bytes(out, uint64_t{n});
      if (v.element_type() == GgufType::string) {
        for (size_t i = 0; i < n; ++i) put_string(out, v.string_at(i));
      } else {
        const auto raw = v.array_bytes();
        out.append(reinterpret_cast<const char*>(raw.data()), raw.size());
      }
      break;
    }
  }
}
}  // namespace

}  // namespace scholar::io
