// scholar/io/json.hpp: a small JSON reader and writer for the files scholar meets (safetensors
// headers, tokenizer.json, config.json).
//
// Objects keep their keys in file order. Numbers keep their text, so 64-bit integers survive
// exactly (as_int) while as_double reads them as floating point. Parsing is strict RFC 8259 (UTF-8
// checked, surrogate pairs joined, depth limited) and errors name the source and the byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scholar::io {

/// One JSON value.
class Json {
 public:
  enum class Type : uint8_t { null, boolean, number, string, array, object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;     // null
  Json(const Json& o);  // deep copy
  Json(Json&&) noexcept = default;
  Json& operator=(const Json& o);
  Json& operator=(Json&&) noexcept = default;
  ~Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::boolean), bool_(b) {}
  Json(int v) : Json(static_cast<int64_t>(v)) {}
  Json(int64_t v);
  Json(uint64_t v);
  Json(double v);
  Json(const char* s) : type_(Type::string), str_(s) {}
  Json(std::string s) : type_(Type::string), str_(std::move(s)) {}
  Json(std::string_view s) : type_(Type::string), str_(s) {}
  static Json array(Array items = {});
  static Json object(Object members = {});

  /// Parses a whole document; FormatError("<source>: JSON error at byte N: ...") on bad input.
  static Json parse(std::string_view text, std::string_view source = "JSON");

  Type type() const noexcept { return type_; }
  bool is_null() const noexcept { return type_ == Type::null; }
  bool is_bool() const noexcept { return type_ == Type::boolean; }
  bool is_number() const noexcept { return type_ == Type::number; }
  bool is_string() const noexcept { return type_ == Type::string; }
  bool is_array() const noexcept { return type_ == Type::array; }
  bool is_object() const noexcept { return type_ == Type::object; }

  // Accessors throw FormatError naming `what` when the value has another type.
  bool as_bool(std::string_view what = "value") const;
  double as_double(std::string_view what = "value") const;
  /// The number as an exact integer (FormatError if it has a fraction or does not fit).
  int64_t as_int(std::string_view what = "value") const;
  const std::string& as_string(std::string_view what = "value") const;
  const Array& as_array(std::string_view what = "value") const;
  const Object& as_object(std::string_view what = "value") const;
  Array& as_array(std::string_view what = "value");
  Object& as_object(std::string_view what = "value");

  /// Member of an object, or nullptr if absent (FormatError if this is not an object).
  const Json* find(std::string_view key) const;
  /// Member of an object; FormatError naming `what` and the key if absent.
  const Json& at(std::string_view key, std::string_view what = "JSON object") const;
  /// Mutable forms of find() and at(), for editing a parsed document in place.
  Json* find(std::string_view key);
  Json& at(std::string_view key, std::string_view what = "JSON object");
  /// Sets (or replaces) a member of an object.
  void set(std::string key, Json value);
  /// Appends to an array.
  void push_back(Json value);
  size_t size() const;

  /// Compact text ("{\"a\":[1,2]}"); with indent > 0, pretty-printed with that many spaces.
  std::string dump(int indent = 0) const;

 private:
  friend class JsonParser;
  void dump_to(std::string& out, int indent, int depth) const;

  Type type_ = Type::null;
  bool bool_ = false;
  std::string str_;  // string value, or the number's text
  std::unique_ptr<Array> arr_;
  std::unique_ptr<Object> obj_;
};

/// Appends s to out as a JSON string literal (quotes and escapes included).
void json_escape(std::string& out, std::string_view s);

}  // namespace scholar::io
