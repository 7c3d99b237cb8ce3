// A strict JSON parser and a writer (see scholar/io/json.hpp).
#include "scholar/io/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "scholar/error.hpp"
#include "scholar/text/utf8.hpp"  // dependency-free: shared by every layer

namespace scholar::io {

Json::Json(const Json& o)
    : type_(o.type_),
      bool_(o.bool_),
      str_(o.str_),
      arr_(o.arr_ ? std::make_unique<Array>(*o.arr_) : nullptr),
      obj_(o.obj_ ? std::make_unique<Object>(*o.obj_) : nullptr) {}

Json& Json::operator=(const Json& o) {
  if (this != &o) *this = Json(o);
  return *this;
}

Json::Json(int64_t v) : type_(Type::number), str_(std::to_string(v)) {}
Json::Json(uint64_t v) : type_(Type::number), str_(std::to_string(v)) {}
Json::Json(double v) : type_(Type::number) {
  if (!std::isfinite(v)) fail<ValueError>("JSON cannot hold the non-finite number ", v);
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  str_.assign(buf, r.ptr);
}

Json Json::array(Array items) {
  Json j;
  j.type_ = Type::array;
  j.arr_ = std::make_unique<Array>(std::move(items));
  return j;
}

Json Json::object(Object members) {
  Json j;
  j.type_ = Type::object;
  j.obj_ = std::make_unique<Object>(std::move(members));
  return j;
}

namespace {
const char* type_name(Json::Type t) {
  switch (t) {
    case Json::Type::null:
      return "null";
    case Json::Type::boolean:
      return "a boolean";
    case Json::Type::number:
      return "a number";
    case Json::Type::string:
      return "a string";
    case Json::Type::array:
      return "an array";
    case Json::Type::object:
      return "an object";
  }
  return "?";
}
[[noreturn]] void wrong_type(std::string_view what, const char* want, Json::Type got) {
  fail<FormatError>(what, ": expected ", want, ", found ", type_name(got));
}
}  // namespace

bool Json::as_bool(std::string_view what) const {
  if (type_ != Type::boolean) wrong_type(what, "a boolean", type_);
  return bool_;
}

double Json::as_double(std::string_view what) const {
  if (type_ != Type::number) wrong_type(what, "a number", type_);
  return std::strtod(str_.c_str(), nullptr);
}

int64_t Json::as_int(std::string_view what) const {
  if (type_ != Type::number) wrong_type(what, "a number", type_);
  int64_t v = 0;
  auto r = std::from_chars(str_.data(), str_.data() + str_.size(), v);
  if (r.ec == std::errc() && r.ptr == str_.data() + str_.size()) return v;
  // Allow integral values written with a fraction or exponent (1.0, 1e3) if exact.
  const double d = as_double(what);
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15)
    return static_cast<int64_t>(d);
  fail<FormatError>(what, ": expected an integer, found ", str_);
}

const std::string& Json::as_string(std::string_view what) const {
  if (type_ != Type::string) wrong_type(what, "a string", type_);
  return str_;
}
const Json::Array& Json::as_array(std::string_view what) const {
  if (type_ != Type::array) wrong_type(what, "an array", type_);
  return *arr_;
}
const Json::Object& Json::as_object(std::string_view what) const {
  if (type_ != Type::object) wrong_type(what, "an object", type_);
  return *obj_;
}
Json::Array& Json::as_array(std::string_view what) {
  if (type_ != Type::array) wrong_type(what, "an array", type_);
  return *arr_;
}
Json::Object& Json::as_object(std::string_view what) {
  if (type_ != Type::object) wrong_type(what, "an object", type_);
  return *obj_;
}

const Json* Json::find(std::string_view key) const {
  for (const auto& [k, v] : as_object("JSON value"))
    if (k == key) return &v;
  return nullptr;
}

const Json& Json::at(std::string_view key, std::string_view what) const {
  if (const Json* v = find(key)) return *v;
  fail<FormatError>(what, " has no member \"", key, "\"");
}

Json* Json::find(std::string_view key) {
  return const_cast<Json*>(std::as_const(*this).find(key));
}

Json& Json::at(std::string_view key, std::string_view what) {
  return const_cast<Json&>(std::as_const(*this).at(key, what));
}

void Json::set(std::string key, Json value) {
  Object& o = as_object("JSON value");
  for (auto& [k, v] : o)
    if (k == key) {
      v = std::move(value);
      return;
    }
  o.emplace_back(std::move(key), std::move(value));
}

void Json::push_back(Json value) {
  as_array("JSON value").push_back(std::move(value));
}

size_t Json::size() const {
  if (type_ == Type::array) return arr_->size();
  if (type_ == Type::object) return obj_->size();
  return 0;
}

// --- parser --------------------------------------------------------------------------------------

class JsonParser {
 public:
  JsonParser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Json document() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (pos_ != s_.size()) error("unexpected text after the value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 512;

  [[noreturn]] void error(std::string_view msg) const {
    fail<FormatError>(source_, ": JSON error at byte ", pos_, ": ", msg);
  }

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool consume(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than 512 levels");
    if (pos_ >= s_.size()) error("unexpected end of input");
    const char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Json(string());
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (consume("true")) return Json(true);
    if (consume("false")) return Json(false);
    if (consume("null")) return Json();
    error("unexpected character");
  }

  Json object(int depth) {
    ++pos_;  // '{'
    Json obj = Json::object();
    Json::Object& members = *obj.obj_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return obj;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') error("expected a string key");
      std::string key = string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') error("expected ':' after a key");
      ++pos_;
      skip_ws();
      members.emplace_back(std::move(key), value(depth + 1));
      skip_ws();
      if (pos_ >= s_.size()) error("unterminated object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return obj;
      }
      error("expected ',' or '}' in an object");
    }
  }

  Json array(int depth) {
    ++pos_;  // '['
    Json arr = Json::array();
    Json::Array& items = *arr.arr_;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return arr;
    }
    for (;;) {
      skip_ws();
      items.push_back(value(depth + 1));
      skip_ws();
      if (pos_ >= s_.size()) error("unterminated array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return arr;
      }
      error("expected ',' or ']' in an array");
    }
  }

  Json number() {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t b = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - b;
    };
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      error("expected a digit");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) error("expected a digit after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) error("expected a digit in the exponent");
    }
    Json j;
    j.type_ = Json::Type::number;
    j.str_.assign(s_.substr(start, pos_ - start));
    return j;
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        error("bad hex digit in \\u escape");
    }
    return v;
  }

  // Copies one UTF-8 sequence starting at pos_, checking it is well formed.
  void utf8_sequence(std::string& out) {
    const auto c = static_cast<unsigned char>(s_[pos_]);
    int len = 0;
    unsigned cp = 0;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, cp = c & 0x07;
    else
      error("invalid UTF-8 in a string");
    if (pos_ + static_cast<size_t>(len) > s_.size()) error("truncated UTF-8 in a string");
    for (int i = 1; i < len; ++i) {
      const auto cc = static_cast<unsigned char>(s_[pos_ + static_cast<size_t>(i)]);
      if ((cc & 0xC0) != 0x80) error("invalid UTF-8 in a string");
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      error("invalid UTF-8 in a string");
    out.append(s_.substr(pos_, static_cast<size_t>(len)));
    pos_ += static_cast<size_t>(len);
  }

  std::string string() {
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) error("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) error("control character in a string");
      if (c >= 0x80) {
        utf8_sequence(out);
        continue;
      }
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!consume("\\u")) error("high surrogate without a low surrogate");
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("high surrogate without a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error("lone low surrogate");
          }
          text::append_utf8(out, cp);
          break;
        }
        default:
          error("unknown escape");
      }
    }
  }

  std::string_view s_;
  std::string_view source_;
  size_t pos_ = 0;
};

Json Json::parse(std::string_view text, std::string_view source) {
  return JsonParser(text, source).document();
}

// --- writer --------------------------------------------------------------------------------------

void json_escape(std::string& out, std::string_view s) {
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void Json::dump_to(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent <= 0) return;
    out.push_back('\n');
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (type_) {
    case Type::null:
      out += "null";
      break;
    case Type::boolean:
      out += bool_ ? "true" : "false";
      break;
    case Type::number:
      out += str_;
      break;
    case Type::string:
      json_escape(out, str_);
      break;
    case Type::array: {
      out.push_back('[');
      for (size_t i = 0; i < arr_->size(); ++i) {
        if (i) out.push_back(',');
        newline(depth + 1);
        (*arr_)[i].dump_to(out, indent, depth + 1);
      }
      if (!arr_->empty()) newline(depth);
      out.push_back(']');
      break;
    }
    case Type::object: {
      out.push_back('{');
      for (size_t i = 0; i < obj_->size(); ++i) {
        if (i) out.push_back(',');
        newline(depth + 1);
        json_escape(out, (*obj_)[i].first);
        out += indent > 0 ? ": " : ":";
        (*obj_)[i].second.dump_to(out, indent, depth + 1);
      }
      if (!obj_->empty()) newline(depth);
      out.push_back('}');
      break;
    }
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

}  // namespace scholar::io
