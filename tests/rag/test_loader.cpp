// The loader: a folder of text, Markdown, gzip and dictd files written here (gzip by hand, with
// stored blocks and our own CRC-32, so zlib is checked against the format rather than against
// itself), the problems it must report without stopping, and FOLDOC and the Jargon File when
// Debian's packages are installed.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "scholar/error.hpp"
#include "scholar/progress.hpp"
#include "scholar/rag/loader.hpp"
#include "support.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

uint32_t crc32(std::string_view s) {
  uint32_t c = 0xFFFFFFFFu;
  for (const char ch : s) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_le(std::string& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A gzip member (RFC 1952) holding `data` in stored deflate blocks (RFC 1951, BTYPE 00) of at most
// `block` bytes.
std::string gzip_stored(std::string_view data, size_t block = 65535) {
  std::string out("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
  size_t pos = 0;
  do {
    const size_t n = std::min(block, data.size() - pos);
    const bool last = pos + n == data.size();
    out.push_back(last ? 1 : 0);
    put_le(out, static_cast<uint32_t>(n), 2);
    put_le(out, static_cast<uint32_t>(~n & 0xFFFF), 2);
    out.append(data.substr(pos, n));
    pos += n;
  } while (pos < data.size());
  put_le(out, crc32(data), 4);
  put_le(out, static_cast<uint32_t>(data.size()), 4);
  return out;
}

// Writes bits least significant first, as deflate packs them.
class BitWriter {
 public:
  void bits(uint32_t v, int count) {
    for (int i = 0; i < count; ++i) {
      acc_ |= ((v >> i) & 1u) << fill_;
      if (++fill_ == 8) {
        out_.push_back(static_cast<char>(acc_));
        acc_ = 0;
        fill_ = 0;
      }
    }
  }
  // A Huffman code goes most significant bit first.
  void code(uint32_t c, int len) {
    for (int i = len - 1; i >= 0; --i) bits((c >> i) & 1u, 1);
  }
  std::string finish() {
    if (fill_) out_.push_back(static_cast<char>(acc_));
    return out_;
  }

 private:
  std::string out_;
  uint32_t acc_ = 0;
  int fill_ = 0;
};

// A gzip member of 1 + 258 * copies bytes `ch` (ASCII) in a few hundred bytes: one fixed-Huffman
// block of a literal and `copies` matches of length 258 at distance 1.
std::string gzip_run(char ch, size_t copies) {
  BitWriter w;
  w.bits(1, 1);                                  // BFINAL
  w.bits(1, 2);                                  // BTYPE 01: fixed Huffman codes
  w.code(0x30u + static_cast<uint32_t>(ch), 8);  // literals 0..143: 8-bit codes from 0x30
  for (size_t i = 0; i < copies; ++i) {
    w.code(0xC0u + (285 - 280), 8);  // length code 285 = 258, no extra bits
    w.code(0, 5);                    // distance code 0 = 1
  }
  w.code(0, 7);  // end of block (256)
  const std::string data(1 + 258 * copies, ch);
  std::string out("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
  out += w.finish();
  put_le(out, crc32(data), 4);
  put_le(out, static_cast<uint32_t>(data.size()), 4);
  return out;
}

void write(const fs::path& p, std::string_view bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// dictd's base-64 digits of n.
std::string b64(uint64_t n) {
  static const char* kDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  do {
    s.insert(s.begin(), kDigits[n % 64]);
    n /= 64;
  } while (n);
  return s;
}

// A dictionary of a few entries and its index; entries are long enough for 2-digit offsets.
struct TinyDict {
  std::string data, index;
  TinyDict() {
    auto entry = [&](const std::string& headword, const std::string& body) {
      const size_t at = data.size();
      data += body;
      index += headword + "\t" + b64(at) + "\t" + b64(body.size()) + "\n";
      return std::pair{at, body.size()};
    };
    entry("00-database-info", "This dictionary was made for a test.\n");
    entry("alpha", "alpha\n\n   The first letter of the Greek alphabet, and a first test entry.\n");
    const auto beta =
        entry("beta", "Beta\n\n   A test version of software; also a Greek letter.\n");
    entry("beta", "beta\n\n   Another entry under the same headword (as FOLDOC has \"actor\").\n");
    index += std::string("b\t") + b64(beta.first) + "\t" + b64(beta.second) +
             "\n";  // alias of the first beta
    entry("café", "café\n\n   A place that serves coffee.\r\n");
    index += "broken line without tabs\n";
    index += "bad\t!!\tB\n";
    index += std::string("outside\t") + b64(100000) + "\tB\n";
    entry("latin1", std::string("caf\xe9\n"));
  }
};

struct Captured {
  std::vector<std::string> warnings;
  Captured() {
    set_log_callback([this](LogLevel level, std::string_view m) {
      if (level == LogLevel::warning) warnings.emplace_back(m);
    });
  }
  ~Captured() { set_log_callback({}); }
};

const rag::Document* find(const rag::LoadResult& r, const std::string& id) {
  for (const auto& d : r.documents)
    if (d.id == id) return &d;
  return nullptr;
}

const rag::LoadProblem* problem(const rag::LoadResult& r, const std::string& path) {
  for (const auto& p : r.problems)
    if (p.path == path) return &p;
  return nullptr;
}

bool contains(const std::string& s, std::string_view needle) {
  return s.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("a folder loads recursively, in sorted order, reporting what it skips", "[rag][loader]") {
  const fs::path root = test::temp_dir("rag_loader", "tree");
  write(root / "b.md", "# Title\n\nSome *Markdown*.\n");
  write(root / "a.txt", "Plain text, naïve café, 内存.\n");
  write(root / "sub" / "c.txt", "In a folder.\n");
  write(root / "sub" / "deeper" / "d.md", "Deeper.\n");
  write(root / "sub" / "ignored.html", "<p>not loaded</p>");
  write(root / ".hidden" / "x.txt", "hidden folder");
  write(root / ".y.txt", "hidden file");
  write(root / "crlf.txt", "line one\r\nline two\rline three\r\n");
  write(root / "bom.TXT", "\xEF\xBB\xBFwith a byte-order mark");
  write(root / "e.txt.gz",
        gzip_stored(std::string("Compressed text.\n") + std::string(100000, 'z'), 40000));
  write(root / "two.gz", gzip_stored("first member, ") + gzip_stored("second member"));
  write(root / "run.gz", gzip_run('z', 400));
  write(root / "binary.txt", std::string("abc\0def", 7));
  write(root / "latin1.txt", "caf\xe9 cr\xe8me");
  write(root / "empty.txt", "");
  write(root / "blank.md", " \n\t\u3000\n");
  write(root / "truncated.gz", gzip_stored("some text that will be cut").substr(0, 20));
  write(root / "notgzip.gz", "plain text with a .gz name");
  write(root / "big.txt", std::string(200000, 'b'));
  const TinyDict dict;
  write(root / "dict" / "tiny.dict.dz", gzip_stored(dict.data));
  write(root / "dict" / "tiny.index", dict.index);
  write(root / "dict" / "plain.dict", dict.data);
  write(root / "dict" / "plain.index", dict.index);
  write(root / "dict" / "orphan.dict.dz", gzip_stored(dict.data));

  Captured log;
  const rag::LoadResult r = rag::load_documents(root.string(), {.max_file_bytes = 4096 * 40});

  std::vector<std::string> ids;
  for (const auto& d : r.documents) ids.push_back(d.id);
  // Sorted by relative path; dictd entries in index order, inside their file's place.
  const std::vector<std::string> want = {"a.txt",
                                         "b.md",
                                         "bom.TXT",
                                         "crlf.txt",
                                         "dict/plain.dict#alpha",
                                         "dict/plain.dict#beta",
                                         "dict/plain.dict#beta#2",
                                         "dict/plain.dict#café",
                                         "dict/tiny.dict.dz#alpha",
                                         "dict/tiny.dict.dz#beta",
                                         "dict/tiny.dict.dz#beta#2",
                                         "dict/tiny.dict.dz#café",
                                         "e.txt.gz",
                                         "run.gz",
                                         "sub/c.txt",
                                         "sub/deeper/d.md",
                                         "two.gz"};
  CHECK(ids == want);

  CHECK(find(r, "a.txt")->text == "Plain text, naïve café, 内存.\n");
  CHECK(find(r, "a.txt")->source == (root / "a.txt").string());
  CHECK(find(r, "a.txt")->metadata.at("format") == "text");
  CHECK(find(r, "b.md")->metadata.at("format") == "markdown");
  CHECK(find(r, "crlf.txt")->text == "line one\nline two\nline three\n");
  CHECK(find(r, "bom.TXT")->text == "with a byte-order mark");
  CHECK(find(r, "e.txt.gz")->text == std::string("Compressed text.\n") + std::string(100000, 'z'));
  CHECK(find(r, "e.txt.gz")->metadata.at("format") == "gzip");
  CHECK(find(r, "two.gz")->text == "first member, second member");
  CHECK(find(r, "run.gz")->text == std::string(1 + 258 * 400, 'z'));
  const rag::Document* beta = find(r, "dict/tiny.dict.dz#beta");
  CHECK(beta->text == "Beta\n\n   A test version of software; also a Greek letter.\n");
  CHECK(beta->metadata.at("headword") == "beta");
  CHECK(beta->metadata.at("aliases") == "b");
  CHECK(beta->metadata.at("format") == "dictd");
  CHECK(beta->source == (root / "dict" / "tiny.dict.dz").string());
  CHECK(find(r, "dict/tiny.dict.dz#beta#2")->metadata.at("headword") == "beta");
  CHECK(find(r, "dict/tiny.dict.dz#café")->text == "café\n\n   A place that serves coffee.\n");
  CHECK(find(r, "dict/tiny.dict.dz#alpha")->metadata.count("aliases") == 0);

  auto reason = [&](const std::string& path) {
    const rag::LoadProblem* p = problem(r, path);
    INFO("no problem reported for " << path);
    REQUIRE(p != nullptr);
    return p->reason;
  };
  CHECK(contains(reason("binary.txt"), "binary (a NUL byte at offset 3)"));
  CHECK(contains(reason("latin1.txt"), "not valid UTF-8 (byte 0xe9 at offset 3)"));
  CHECK(contains(reason("empty.txt"), "empty"));
  CHECK(contains(reason("blank.md"), "only whitespace"));
  CHECK(contains(reason("truncated.gz"), "truncated"));
  CHECK(contains(reason("notgzip.gz"), "not gzip"));
  CHECK(contains(reason("big.txt"), "too large"));
  CHECK(contains(reason("big.txt"), "max_file_bytes"));
  CHECK(contains(reason("dict/orphan.dict.dz"), "orphan.index"));
  CHECK(contains(reason("tiny.index:7"), "not a dictd index line"));
  CHECK(contains(reason("tiny.index:8"), "'!' is not one of its base-64 digits"));
  CHECK(contains(reason("tiny.index:9"), "outside"));
  CHECK(contains(reason("dict/tiny.dict.dz#latin1"), "not valid UTF-8"));
  // Nothing hidden, nothing ignored by extension, no dictd bookkeeping entry.
  for (const auto& d : r.documents) {
    CHECK_FALSE(contains(d.id, "hidden"));
    CHECK_FALSE(contains(d.id, ".y"));
    CHECK_FALSE(contains(d.id, "ignored"));
    CHECK_FALSE(contains(d.id, "00-database"));
  }
  for (const auto& p : r.problems) CHECK_FALSE(contains(p.path, "ignored"));
  // Every problem went to the log as a warning too.
  REQUIRE(log.warnings.size() == r.problems.size());
  CHECK(contains(log.warnings[0], "skipped"));

  // The same tree loads the same way again.
  const rag::LoadResult again = rag::load_documents(root.string(), {.max_file_bytes = 4096 * 40});
  REQUIRE(again.documents.size() == r.documents.size());
  for (size_t i = 0; i < r.documents.size(); ++i) {
    CHECK(again.documents[i].id == r.documents[i].id);
    CHECK(again.documents[i].text == r.documents[i].text);
  }
  // Hidden entries on request; the size limit applies to decompressed data too.
  const auto hidden = rag::load_documents(root.string(), {.include_hidden = true});
  CHECK(find(hidden, ".hidden/x.txt") != nullptr);
  CHECK(find(hidden, ".y.txt") != nullptr);
  const auto small = rag::load_documents(root.string(), {.max_file_bytes = 50000});
  CHECK(contains(problem(small, "run.gz")->reason, "decompresses to more than 50000 bytes"));
  CHECK(contains(problem(small, "e.txt.gz")->reason, "too large"));
  // Newlines kept as they are when asked.
  const auto raw = rag::load_documents((root / "crlf.txt").string(), {.normalize_newlines = false});
  CHECK(raw.documents.at(0).text == "line one\r\nline two\rline three\r\n");
}

TEST_CASE("a single file loads whatever its extension", "[rag][loader]") {
  const fs::path root = test::temp_dir("rag_loader", "single");
  write(root / "README", "no extension\n");
  write(root / "notes.txt", "notes\n");
  const auto a = rag::load_documents((root / "README").string());
  REQUIRE(a.documents.size() == 1);
  CHECK(a.documents[0].id == "README");
  CHECK(a.documents[0].text == "no extension\n");
  const auto b = rag::load_documents((root / "notes.txt").string());
  CHECK(b.documents.at(0).id == "notes.txt");
  CHECK(b.problems.empty());
  // A file that is a problem gives a result with the problem, not an exception.
  write(root / "bad.txt", "\xff");
  Captured log;
  const auto c = rag::load_documents((root / "bad.txt").string());
  CHECK(c.documents.empty());
  REQUIRE(c.problems.size() == 1);
  CHECK(c.problems[0].path == "bad.txt");
}

TEST_CASE("a missing path or a folder with nothing to load is an error naming it",
          "[rag][loader]") {
  const fs::path root = test::temp_dir("rag_loader", "errors");
  const std::string missing = (root / "nowhere").string();
  try {
    (void)rag::load_documents(missing);
    FAIL("no error for a missing path");
  } catch (const IoError& e) {
    CHECK(contains(e.what(), missing));
    CHECK(contains(e.what(), "does not exist"));
  }
  fs::create_directories(root / "empty");
  CHECK_THROWS_AS(rag::load_documents((root / "empty").string()), ValueError);
  write(root / "only_other" / "x.html", "<p>");
  write(root / "only_other" / ".hidden.txt", "hidden");
  try {
    (void)rag::load_documents((root / "only_other").string());
    FAIL("no error for a folder without loadable files");
  } catch (const ValueError& e) {
    CHECK(contains(e.what(), (root / "only_other").string()));
  }
}

TEST_CASE("gunzip and dictd numbers", "[rag][loader]") {
  const std::string text = std::string("hello gzip ") + std::string(70000, 'q');
  CHECK(rag::gunzip(gzip_stored(text, 1000), 1 << 20, "t") == text);
  CHECK(rag::gunzip(gzip_stored(""), 10, "t").empty());
  CHECK(rag::gunzip(gzip_stored("a") + gzip_stored("b") + std::string(4, '\0'), 10, "t") == "ab");
  CHECK_THROWS_AS(rag::gunzip(gzip_stored(text), 1000, "t"), ValueError);
  CHECK_THROWS_AS(rag::gunzip(gzip_stored(text).substr(0, 500), 1 << 20, "t"), FormatError);
  CHECK_THROWS_AS(rag::gunzip("plain", 100, "t"), FormatError);
  CHECK_THROWS_AS(rag::gunzip(gzip_stored("a") + "junk", 100, "t"), FormatError);
  std::string corrupt = gzip_stored("checked by CRC");
  corrupt[12] ^= 1;  // a bit of the stored block's length
  CHECK_THROWS_AS(rag::gunzip(corrupt, 100, "t"), FormatError);
  std::string bad_crc = gzip_stored("checked by CRC");
  bad_crc[bad_crc.size() - 6] ^= 1;
  CHECK_THROWS_AS(rag::gunzip(bad_crc, 100, "t"), FormatError);

  CHECK(rag::decode_dictd_number("A") == 0);
  CHECK(rag::decode_dictd_number("B") == 1);
  CHECK(rag::decode_dictd_number("/") == 63);
  CHECK(rag::decode_dictd_number("BA") == 64);
  CHECK(rag::decode_dictd_number("Gb9L") == ((6 * 64 + 27) * 64 + 61) * 64 + 11);
  for (uint64_t n : {uint64_t{0}, uint64_t{63}, uint64_t{64}, uint64_t{4095}, uint64_t{1} << 40})
    CHECK(rag::decode_dictd_number(b64(n)) == n);
  CHECK_THROWS_AS(rag::decode_dictd_number(""), FormatError);
  CHECK_THROWS_AS(rag::decode_dictd_number("A=B"), FormatError);
  CHECK_THROWS_AS(rag::decode_dictd_number("//////////////"), FormatError);
}

TEST_CASE("FOLDOC and the Jargon File load from Debian's packages", "[rag][loader]") {
  const std::string foldoc = "/usr/share/dictd/foldoc.dict.dz";
  if (fs::exists(foldoc)) {
    const auto r = rag::load_documents(foldoc);
    CHECK(r.problems.empty());
    CHECK(r.documents.size() > 10000);
    const rag::Document* actor = find(r, "foldoc.dict.dz#actor");
    const rag::Document* actor2 = find(r, "foldoc.dict.dz#actor#2");
    REQUIRE(actor != nullptr);
    REQUIRE(actor2 != nullptr);
    CHECK(actor->metadata.at("headword") == "actor");
    CHECK(actor->text != actor2->text);
    for (const auto& d : r.documents) {
      CHECK_FALSE(d.id.starts_with("foldoc.dict.dz#00"));
      if (d.id.starts_with("foldoc.dict.dz#00")) break;
    }
  } else {
    WARN("dict-foldoc is not installed (scripts/deps.sh demo): FOLDOC not tried");
  }
  const std::string jargon = "/usr/share/doc/jargon-text/jargon.txt.gz";
  if (fs::exists(jargon)) {
    const auto r = rag::load_documents(jargon);
    REQUIRE(r.documents.size() == 1);
    CHECK(r.documents[0].id == "jargon.txt.gz");
    CHECK(r.documents[0].text.size() > 1000000);
    CHECK(contains(r.documents[0].text, "hacker"));
  } else {
    WARN("jargon-text is not installed (scripts/deps.sh demo): the Jargon File not tried");
  }
}
