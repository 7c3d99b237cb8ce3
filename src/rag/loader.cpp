// Documents from files: plain text, gzip, dictd dictionaries (see scholar/rag/loader.hpp).
#include "scholar/rag/loader.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/progress.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::rag {

namespace fs = std::filesystem;

namespace {

enum class Kind : uint8_t { text, markdown, gzip, dictd_dz, dictd_plain };

std::string_view format_name(Kind k) {
  switch (k) {
    case Kind::text:
      return "text";
    case Kind::markdown:
      return "markdown";
    case Kind::gzip:
      return "gzip";
    case Kind::dictd_dz:
    case Kind::dictd_plain:
      return "dictd";
  }
  return "text";
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  if (suffix.size() > s.size()) return false;
  const std::string_view tail = s.substr(s.size() - suffix.size());
  for (size_t i = 0; i < tail.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(tail[i]) != lower(suffix[i])) return false;
  }
  return true;
}

// What to do with a file: nullopt for files a folder walk ignores.
std::optional<Kind> classify(const std::string& name, const LoaderOptions& options,
                             bool given_directly) {
  if (ends_with_ci(name, ".dict.dz")) return Kind::dictd_dz;
  if (ends_with_ci(name, ".dict")) return Kind::dictd_plain;
  if (ends_with_ci(name, ".gz")) return Kind::gzip;
  for (const std::string& ext : options.extensions)
    if (!ext.empty() && ends_with_ci(name, ext))
      return ends_with_ci(name, ".md") ? Kind::markdown : Kind::text;
  if (given_directly) return ends_with_ci(name, ".md") ? Kind::markdown : Kind::text;
  return std::nullopt;
}

struct Candidate {
  fs::path path;
  std::string rel;  // '/'-separated, relative to the root (the file name for a single file)
  Kind kind;
};

// A file skipped for a reason: thrown inside one file's loading, caught by the loop over files.
struct Skip {
  std::string reason;
};

std::string hex_byte(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

// Why `s` cannot be a document's text, or nullopt if it can. `where` qualifies offsets ("" or
// " of the decompressed data").
std::optional<std::string> text_problem(std::string_view s, std::string_view where) {
  if (s.empty()) return std::string("empty");
  if (const size_t nul = s.find('\0'); nul != std::string_view::npos)
    return detail::str_cat("binary (a NUL byte at offset ", nul, where, ")");
  if (const size_t bad = text::invalid_utf8_offset(s); bad != std::string_view::npos)
    return detail::str_cat("not valid UTF-8 (byte ", hex_byte(static_cast<unsigned char>(s[bad])),
                           " at offset ", bad, where, ")");
  for (size_t i = 0; i < s.size();) {
    const text::Utf8Char c = text::decode_utf8(s, i);
    if (!text::is_white_space(c.cp)) return std::nullopt;
    i += c.len;
  }
  return std::string("contains only whitespace");
}

// Removes a UTF-8 byte-order mark and, if asked, turns CR LF and lone CR into LF.
std::string clean_text(std::string s, const LoaderOptions& options) {
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  if (options.normalize_newlines && s.find('\r') != std::string::npos) {
    size_t o = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        s[o++] = '\n';
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        s[o++] = s[i];
      }
    }
    s.resize(o);
  }
  return s;
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// The bytes of a file, after checking its size against the limit.
std::string read_limited(const fs::path& path, const LoaderOptions& options) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Skip{detail::str_cat("cannot read its size: ", ec.message())};
  if (size > options.max_file_bytes)
    throw Skip{detail::str_cat("too large: ", size, " bytes (", mib(size), "), over the limit of ",
                               options.max_file_bytes, " bytes (LoaderOptions::max_file_bytes)")};
  try {
    return io::read_file(path.string());
  } catch (const IoError& e) {
    throw Skip{detail::str_cat("unreadable: ", e.what())};
  }
}

std::string decompress(std::string_view data, const LoaderOptions& options,
                       const std::string& source) {
  try {
    return gunzip(data, options.max_file_bytes, source);
  } catch (const ValueError&) {
    throw Skip{detail::str_cat("too large: decompresses to more than ", options.max_file_bytes,
                               " bytes (", mib(options.max_file_bytes),
                               ", LoaderOptions::max_file_bytes)")};
  } catch (const FormatError& e) {
    throw Skip{e.what()};
  }
}

// Where each loaded document and each problem goes.
class Sink {
 public:
  explicit Sink(LoadResult& out) : out_(out) {}
  void problem(std::string path, std::string reason) {
    log(LogLevel::warning, detail::str_cat("rag::load_documents: skipped ", path, ": ", reason));
    out_.problems.push_back({std::move(path), std::move(reason)});
  }
  void document(Document d) { out_.documents.push_back(std::move(d)); }

 private:
  LoadResult& out_;
};

void load_text(const Candidate& c, const LoaderOptions& options, Sink& sink) {
  std::string data = read_limited(c.path, options);
  std::string_view where;
  if (c.kind == Kind::gzip) {
    data = decompress(data, options, c.path.string());
    where = " of the decompressed data";
  }
  data = clean_text(std::move(data), options);
  if (auto why = text_problem(data, where)) throw Skip{*why};
  Document d;
  d.id = c.rel;
  d.source = c.path.string();
  d.text = std::move(data);
  d.metadata["format"] = std::string(format_name(c.kind));
  sink.document(std::move(d));
}

// "foldoc.dict.dz" -> "foldoc.index" beside it.
fs::path dictd_index_path(const Candidate& c) {
  const std::string name = c.path.filename().string();
  const size_t cut = name.size() - (c.kind == Kind::dictd_dz ? 8 : 5);  // ".dict.dz" / ".dict"
  return c.path.parent_path() / (name.substr(0, cut) + ".index");
}

void load_dictd(const Candidate& c, const LoaderOptions& options, Sink& sink) {
  const fs::path index_path = dictd_index_path(c);
  std::error_code ec;
  if (!fs::is_regular_file(index_path, ec))
    throw Skip{detail::str_cat("a dictd dictionary needs its index ",
                               index_path.filename().string(), " beside it, and there is none")};
  std::string data = read_limited(c.path, options);
  if (c.kind == Kind::dictd_dz) data = decompress(data, options, c.path.string());
  std::string index;
  try {
    index = read_limited(index_path, options);
  } catch (const Skip& s) {
    throw Skip{detail::str_cat("its index ", index_path.filename().string(), ": ", s.reason)};
  }

  const std::string index_name = index_path.filename().string();
  std::map<std::pair<uint64_t, uint64_t>, size_t> seen;  // (offset, length) -> document number
  std::set<std::string, std::less<>> ids;
  std::vector<Document> docs;
  size_t line_no = 0;
  for (size_t pos = 0; pos < index.size();) {
    size_t eol = index.find('\n', pos);
    if (eol == std::string::npos) eol = index.size();
    std::string_view line(index.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = detail::str_cat(index_name, ":", line_no);
    // headword \t offset \t length [\t original headword]
    const size_t t1 = line.find('\t');
    const size_t t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    if (t2 == std::string_view::npos) {
      sink.problem(where, "not a dictd index line (headword, offset and length separated by tabs)");
      continue;
    }
    const std::string_view headword = line.substr(0, t1);
    const size_t t3 = line.find('\t', t2 + 1);
    const std::string_view off_digits = line.substr(t1 + 1, t2 - t1 - 1);
    const std::string_view len_digits =
        line.substr(t2 + 1, t3 == std::string_view::npos ? std::string_view::npos : t3 - t2 - 1);
    // dictd's own entries: 00-database-info, -short, -url, ... (and the older 00databaseinfo).
    if (headword.starts_with("00-database-") || headword.starts_with("00database")) continue;
    if (!text::is_valid_utf8(headword)) {
      sink.problem(where, "the headword is not valid UTF-8");
      continue;
    }
    uint64_t offset = 0, length = 0;
    try {
      offset = decode_dictd_number(off_digits);
      length = decode_dictd_number(len_digits);
    } catch (const FormatError& e) {
      sink.problem(where, e.what());
      continue;
    }
    if (offset > data.size() || length > data.size() - offset) {
      sink.problem(where, detail::str_cat("the entry '", headword, "' at offset ", offset,
                                          ", length ", length, " lies outside the ", data.size(),
                                          " bytes of the dictionary"));
      continue;
    }
    if (auto it = seen.find({offset, length}); it != seen.end()) {
      std::string& aliases = docs[it->second].metadata["aliases"];
      if (!aliases.empty()) aliases += '\n';
      aliases.append(headword);
      continue;
    }
    std::string id = detail::str_cat(c.rel, "#", headword);
    if (ids.count(id))
      for (int n = 2;; ++n)
        if (std::string alt = detail::str_cat(id, "#", n); !ids.count(alt)) {
          id = std::move(alt);
          break;
        }
    ids.insert(id);
    std::string body = clean_text(data.substr(offset, length), options);
    if (auto why = text_problem(body, " of the entry")) {
      sink.problem(id, *why);
      continue;
    }
    Document d;
    d.id = std::move(id);
    d.source = c.path.string();
    d.text = std::move(body);
    d.metadata["format"] = "dictd";
    d.metadata["headword"] = std::string(headword);
    seen.emplace(std::pair{offset, length}, docs.size());
    docs.push_back(std::move(d));
  }
  if (docs.empty()) throw Skip{detail::str_cat("no entries in its index ", index_name)};
  for (Document& d : docs) sink.document(std::move(d));
}

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// Every candidate file under `dir`; folders that cannot be listed are problems (the root itself,
// an IoError).
void walk(const fs::path& root, const fs::path& dir, const LoaderOptions& options,
          std::vector<Candidate>& out, Sink& sink) {
  auto rel = [&](const fs::path& p) { return p.lexically_relative(root).generic_string(); };
  auto unlistable = [&](const std::error_code& ec) {
    if (dir == root)
      fail<IoError>("rag::load_documents: cannot list the folder ", root.string(), ": ",
                    ec.message());
    sink.problem(rel(dir) + "/", detail::str_cat("cannot list the folder: ", ec.message()));
  };
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return unlistable(ec);
  for (const fs::directory_iterator end; it != end;) {
    const fs::path& p = it->path();
    std::error_code e2;
    if (options.include_hidden || !is_hidden(p)) {
      if (!it->is_symlink(e2) && it->is_directory(e2)) {
        walk(root, p, options, out, sink);
      } else if (it->is_regular_file(e2)) {  // follows links to files; skips sockets, dangling
        if (auto kind = classify(p.filename().string(), options, false))
          out.push_back({p, rel(p), *kind});
      }
    }
    it.increment(ec);
    if (ec) return unlistable(ec);
  }
}

}  // namespace

uint64_t decode_dictd_number(std::string_view digits) {
  if (digits.empty()) fail<FormatError>("dictd number: empty");
  uint64_t v = 0;
  for (const char ch : digits) {
    int d;
    if (ch >= 'A' && ch <= 'Z')
      d = ch - 'A';
    else if (ch >= 'a' && ch <= 'z')
      d = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9')
      d = ch - '0' + 52;
    else if (ch == '+')
      d = 62;
    else if (ch == '/')
      d = 63;
    else
      fail<FormatError>("dictd number '", digits, "': '", ch,
                        "' is not one of its base-64 digits (A-Z a-z 0-9 + /)");
    if (v > (uint64_t{1} << 53) >> 6) fail<FormatError>("dictd number '", digits, "' is too large");
    v = v * 64 + static_cast<uint64_t>(d);
  }
  return v;
}

std::string gunzip(std::string_view data, uint64_t max_bytes, std::string_view source) {
  if (data.size() < 2 || static_cast<unsigned char>(data[0]) != 0x1f ||
      static_cast<unsigned char>(data[1]) != 0x8b)
    fail<FormatError>(source, ": not gzip data (expected the bytes 1f 8b at the start)");
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    fail<Error>(source, ": zlib could not start inflating");
  struct Guard {
    z_stream* zs;
    ~Guard() { inflateEnd(zs); }
  } guard{&zs};

  std::string out;
  char buf[1 << 16];
  size_t fed = 0;  // input bytes handed to zlib so far
  auto feed = [&] {
    const size_t n = std::min<size_t>(data.size() - fed, UINT_MAX);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + fed));
    zs.avail_in = static_cast<uInt>(n);
    fed += n;
  };
  feed();
  for (;;) {
    if (zs.avail_in == 0 && fed < data.size()) feed();
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const size_t got = sizeof buf - zs.avail_out;
    if (got > max_bytes - std::min<uint64_t>(out.size(), max_bytes))
      fail<ValueError>(source, ": decompresses to more than ", max_bytes, " bytes");
    out.append(buf, got);
    if (rc == Z_STREAM_END) {
      const size_t consumed = fed - zs.avail_in;
      if (consumed == data.size()) return out;
      // Another gzip member follows (as `cat a.gz b.gz` makes), or trailing bytes.
      const std::string_view rest = data.substr(consumed);
      if (rest.size() >= 2 && static_cast<unsigned char>(rest[0]) == 0x1f &&
          static_cast<unsigned char>(rest[1]) == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      if (rest.find_first_not_of('\0') == std::string_view::npos) return out;  // zero padding
      fail<FormatError>(source, ": ", rest.size(),
                        " bytes after the end of the gzip data at offset ", consumed,
                        " are not another gzip member");
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0 && fed == data.size())
      fail<FormatError>(source, ": the gzip data is truncated (it ends after ", data.size(),
                        " bytes, inside a compressed stream)");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      fail<FormatError>(source, ": corrupt gzip data at input offset ", fed - zs.avail_in,
                        " (zlib: ", zs.msg ? zs.msg : "error", ")");
  }
}

LoadResult load_documents(const std::string& path, const LoaderOptions& options) {
  std::error_code ec;
  const fs::path root(path);
  const fs::file_status st = fs::status(root, ec);
  if (st.type() == fs::file_type::not_found)
    fail<IoError>("rag::load_documents: ", path, " does not exist");
  if (ec) fail<IoError>("rag::load_documents: cannot access ", path, ": ", ec.message());

  LoadResult result;
  Sink sink(result);
  std::vector<Candidate> files;
  if (fs::is_directory(st)) {
    walk(root, root, options, files, sink);
    if (files.empty() && result.problems.empty()) {
      std::string kinds;
      for (const std::string& e : options.extensions) kinds += std::string("*") + e + ", ";
      fail<ValueError>("rag::load_documents: the folder ", path, " holds no file to load (", kinds,
                       "*.gz, *.dict.dz or *.dict with its .index)");
    }
    std::sort(files.begin(), files.end(),
              [](const Candidate& a, const Candidate& b) { return a.rel < b.rel; });
  } else if (fs::is_regular_file(st)) {
    const std::string name = root.filename().string();
    files.push_back({root, name, *classify(name, options, true)});
  } else {
    fail<IoError>("rag::load_documents: ", path, " is neither a regular file nor a folder");
  }

  for (const Candidate& c : files) {
    try {
      if (c.kind == Kind::dictd_dz || c.kind == Kind::dictd_plain)
        load_dictd(c, options, sink);
      else
        load_text(c, options, sink);
    } catch (const Skip& s) {
      sink.problem(c.rel, s.reason);
    }
  }
  return result;
}

}  // namespace scholar::rag
