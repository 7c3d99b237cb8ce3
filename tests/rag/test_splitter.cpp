// The recursive splitter: exact byte ranges (also where text repeats), lengths in code points or
// tokens never above chunk_size, UTF-8 never cut, LangChain's merge and overlap on hand-checked
// cases, and the same invariants on seeded random texts.
#include <catch2/catch.hpp>
#include <random>

#include "scholar/error.hpp"
#include "scholar/rag/splitter.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"

using namespace scholar;

namespace {

std::vector<std::string> texts(const std::vector<rag::Chunk>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) out.push_back(c.text);
  return out;
}

bool is_white(std::string_view s, size_t i) {
  const auto c = text::decode_utf8(s, i);
  return c.cp != text::kInvalidCodePoint && text::is_white_space(c.cp);
}

bool continuation(std::string_view s, size_t i) {
  return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
}

// What must hold for every split: each chunk is exactly its range, in order, within chunk_size,
// on character boundaries, stripped; with separators kept, every non-whitespace byte of the text
// is in some chunk.
void check_invariants(std::string_view doc, const std::vector<rag::Chunk>& chunks,
                      const rag::Splitter& splitter) {
  const auto& opt = splitter.options();
  std::vector<bool> covered(doc.size(), false);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const rag::Chunk& c = chunks[i];
    INFO("chunk " << i << " [" << c.begin << ", " << c.end << "): '" << c.text << "'");
    REQUIRE(c.begin < c.end);
    REQUIRE(c.end <= doc.size());
    CHECK(c.text == doc.substr(c.begin, c.end - c.begin));
    CHECK(c.index == i);
    CHECK_FALSE(continuation(doc, c.begin));
    CHECK_FALSE(continuation(doc, c.end));
    const size_t len = splitter.length(c.text);
    CHECK((len <= opt.chunk_size || text::utf8_length(c.text) == 1));
    if (i > 0) {
      CHECK(c.begin >= chunks[i - 1].begin);
      CHECK(c.end > chunks[i - 1].end);
    }
    if (opt.strip_whitespace) {
      CHECK_FALSE(is_white(doc, c.begin));
      size_t last = c.end - 1;
      while (last > c.begin && continuation(doc, last)) --last;
      CHECK_FALSE(is_white(doc, last));
    }
    for (size_t j = c.begin; j < c.end; ++j) covered[j] = true;
  }
  if (opt.keep_separator) {
    for (size_t i = 0; i < doc.size();) {
      const auto ch = text::decode_utf8(doc, i);
      if (!is_white(doc, i) && !covered[i]) {
        FAIL_CHECK("byte " << i << " of the text is in no chunk");
        break;
      }
      i += ch.len;
    }
  }
}

std::vector<rag::Chunk> split_checked(const rag::Splitter& s, std::string_view doc) {
  auto chunks = s.split(doc, "doc");
  check_invariants(doc, chunks, s);
  return chunks;
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

TEST_CASE("chunks merge pieces up to chunk_size and overlap by whole pieces", "[rag][splitter]") {
  // Words of 5 characters with their spaces: two fit in 10; the overlap of 5 keeps one.
  const rag::Splitter s({.chunk_size = 10, .chunk_overlap = 5});
  const auto chunks = split_checked(s, "aaaa bbbb cccc dddd eeee");
  CHECK(texts(chunks) ==
        std::vector<std::string>{"aaaa bbbb", "bbbb cccc", "cccc dddd", "dddd eeee"});
  CHECK(chunks[1].begin == 5);
  CHECK(chunks[1].end == 14);
  CHECK(chunks[0].document_id == "doc");
  // No overlap.
  const rag::Splitter none({.chunk_size = 10, .chunk_overlap = 0});
  CHECK(texts(split_checked(none, "aaaa bbbb cccc dddd eeee")) ==
        std::vector<std::string>{"aaaa bbbb", "cccc dddd", "eeee"});
  // Paragraphs first: each paragraph fits alone, never two together.
  const rag::Splitter para({.chunk_size = 20, .chunk_overlap = 0});
  CHECK(texts(split_checked(para, "para one.\n\npara two is here.\n\npara three.")) ==
        std::vector<std::string>{"para one.", "para two is here.", "para three."});
  // A text that fits is one chunk, stripped.
  CHECK(texts(split_checked(para, "  short text\n")) == std::vector<std::string>{"short text"});
}

TEST_CASE("a piece longer than chunk_size is cut between characters", "[rag][splitter]") {
  const std::string doc(250, 'a');
  const rag::Splitter s({.chunk_size = 100, .chunk_overlap = 0});
  auto chunks = split_checked(s, doc);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].end == 100);
  CHECK(chunks[2].text.size() == 50);
  // With an overlap of 10 characters: [0, 100), [90, 190), [180, 250).
  const rag::Splitter o({.chunk_size = 100, .chunk_overlap = 10});
  chunks = split_checked(o, doc);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[1].begin == 90);
  CHECK(chunks[1].end == 190);
  CHECK(chunks[2].begin == 180);
  CHECK(chunks[2].end == 250);
  // Multi-byte characters count once each and are never cut: 120 x "é" (2 bytes) in chunks of 50.
  const std::string accents = repeat("é", 120);
  chunks = split_checked(s, accents);
  const rag::Splitter fifty({.chunk_size = 50, .chunk_overlap = 0});
  chunks = split_checked(fifty, accents);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].end == 100);  // 50 characters, 100 bytes
  CHECK(text::utf8_length(chunks[2].text) == 20);
}

TEST_CASE("offsets stay exact when the same text repeats", "[rag][splitter]") {
  // LangChain looks chunks up with str.find and so gives every repeat the first one's offset.
  const std::string doc = repeat("The same sentence again. ", 40) + "\n\n" +
                          repeat("Same paragraph.\n\n", 10) + repeat("word ", 30);
  for (size_t overlap : {0, 10, 30}) {
    const rag::Splitter s({.chunk_size = 60, .chunk_overlap = overlap});
    const auto chunks = split_checked(s, doc);
    REQUIRE(chunks.size() > 20);
    for (size_t i = 1; i < chunks.size(); ++i) CHECK(chunks[i].begin > chunks[i - 1].begin);
    // Identical texts, different places.
    CHECK(chunks[1].text == chunks[2].text);
    CHECK(chunks[1].begin != chunks[2].begin);
  }
}

TEST_CASE("CJK text without spaces splits at CJK punctuation, then characters", "[rag][splitter]") {
  const std::string sentence = "虚拟内存让进程使用比物理内存更多的内存。";  // 20 characters
  const std::string doc =
      repeat(sentence, 6) + "内存管理器在内存和磁盘之间移动页面！" +
      "没有标点的很长的一段文字没有标点的很长的一段文字没有标点的很长的一段文字";
  const rag::Splitter s({.chunk_size = 25, .chunk_overlap = 0});
  const auto chunks = split_checked(s, doc);
  // Sentences of 20 characters end at 。: one per chunk.
  for (size_t i = 0; i < 6; ++i) CHECK(chunks[i].text == sentence);
  // The unpunctuated tail (36 characters) is cut by characters into 25 + 11.
  CHECK(text::utf8_length(chunks.back().text) == 11);
  CHECK(text::utf8_length(chunks[chunks.size() - 2].text) == 25);
  // Small chunks with overlap still keep every character whole.
  const rag::Splitter tiny({.chunk_size = 7, .chunk_overlap = 3});
  split_checked(tiny, doc);
  // Fullwidth punctuation and the ideographic comma are separators too. As in LangChain, pieces
  // merge only with their siblings: "十" (after "；") does not join "七八九；" (after "、").
  const rag::Splitter t({.chunk_size = 6, .chunk_overlap = 0});
  CHECK(texts(split_checked(t, "一二三，四五六、七八九；十")) ==
        std::vector<std::string>{"一二三，", "四五六、", "七八九；", "十"});
}

TEST_CASE("empty and whitespace-only documents have no chunks", "[rag][splitter]") {
  const rag::Splitter s({.chunk_size = 10, .chunk_overlap = 2});
  CHECK(s.split("", "x").empty());
  CHECK(s.split("   \n\n \t \n", "x").empty());
  CHECK(s.split("\u3000\u00A0\u2003", "x").empty());  // Unicode White_Space, not only ASCII
  CHECK(texts(split_checked(s, "\u3000abc\u00A0")) == std::vector<std::string>{"abc"});
  // Whitespace is kept inside chunks and stripped only at their ends.
  const rag::Splitter keep({.chunk_size = 10, .chunk_overlap = 2, .strip_whitespace = false});
  const auto raw = split_checked(keep, "  ab  ");
  REQUIRE(raw.size() == 1);
  CHECK(raw[0].text == "  ab  ");
}

TEST_CASE("separators can be dropped at chunk edges, and replaced", "[rag][splitter]") {
  const std::string doc = "one; two; three; four";
  const rag::Splitter keep({.chunk_size = 11, .chunk_overlap = 0, .separators = {"; "}});
  CHECK(texts(split_checked(keep, doc)) == std::vector<std::string>{"one; two;", "three; four"});
  const rag::Splitter drop(
      {.chunk_size = 11, .chunk_overlap = 0, .separators = {"; "}, .keep_separator = false});
  // "one; two" is 8 characters with its inner separator; + "; three" would be 15.
  const auto chunks = drop.split(doc, "d");
  check_invariants(doc, chunks, drop);
  CHECK(texts(chunks) == std::vector<std::string>{"one; two", "three; four"});
  CHECK(chunks[1].begin == 10);
}

TEST_CASE("lengths can be counted in tokens", "[rag][splitter]") {
  std::string corpus;
  for (int i = 0; i < 30; ++i)
    corpus += std::string("the quick brown fox jumps over the lazy dog. memory and paging ") +
              std::to_string(i) + "\n";
  const auto tok = text::BpeTokenizer::train(corpus, {.vocab_size = 320});
  const std::string doc = corpus + "\n\nUnseen wörds: ÜBERGRÖSSENTRÄGER, 内存管理器, " +
                          repeat("x", 300) + " and the end.";
  for (size_t size : {8, 20, 64}) {
    const rag::Splitter s({.chunk_size = size, .chunk_overlap = size / 4}, tok);
    INFO("chunk_size " << size);
    CHECK(s.length("the quick brown fox") == tok.encode("the quick brown fox").size());
    const auto chunks = split_checked(s, doc);
    for (const auto& c : chunks) CHECK(tok.encode(c.text).size() <= size);
  }
  // Counting in tokens packs more text into a chunk than counting bytes-as-tokens would.
  const rag::Splitter chars({.chunk_size = 20, .chunk_overlap = 0});
  const rag::Splitter toks({.chunk_size = 20, .chunk_overlap = 0}, tok);
  CHECK(toks.split(corpus, "c").size() < chars.split(corpus, "c").size());
}

TEST_CASE("splitter options are checked", "[rag][splitter]") {
  CHECK_THROWS_AS(rag::Splitter({.chunk_size = 0, .chunk_overlap = 0}), ValueError);
  CHECK_THROWS_AS(rag::Splitter({.chunk_size = 10, .chunk_overlap = 10}), ValueError);
  CHECK_THROWS_AS(rag::Splitter({.chunk_size = 10, .chunk_overlap = 11}), ValueError);
  CHECK_NOTHROW(rag::Splitter({.chunk_size = 1, .chunk_overlap = 0}));
}

TEST_CASE("documents split one after another", "[rag][splitter]") {
  std::vector<rag::Document> docs(3);
  docs[0] = {"a.txt", "a.txt", "alpha beta gamma delta", {}};
  docs[1] = {"b.txt", "b.txt", "   ", {}};
  docs[2] = {"c.txt", "c.txt", "epsilon zeta", {}};
  const rag::Splitter s({.chunk_size = 12, .chunk_overlap = 0});
  const auto chunks = s.split(docs);
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].document_id == "a.txt");
  CHECK(chunks[0].text == "alpha beta");
  CHECK(chunks[1].index == 1);
  CHECK(chunks[2].document_id == "c.txt");
  CHECK(chunks[2].index == 0);
  CHECK(chunks[2].text == "epsilon zeta");
}

TEST_CASE("random texts keep every invariant", "[rag][splitter]") {
  std::mt19937 rng(1234);
  const std::vector<std::string> atoms = {"a",  "bb", "ccc",  "é",  "内存", "🙂", " ",      " ",
                                          " ",  "\n", "\n\n", ". ", "。",   "，",   "\u3000", "! ",
                                          "; ", ", ", "\t",   "x",  "Ω",    "d"};
  for (int trial = 0; trial < 300; ++trial) {
    std::string doc;
    const size_t n = rng() % 200;
    for (size_t i = 0; i < n; ++i) doc += atoms[rng() % atoms.size()];
    const size_t size = 1 + rng() % 40;
    const size_t overlap = rng() % size;
    const bool keep = rng() % 4 != 0, strip = rng() % 4 != 0;
    const rag::Splitter s({.chunk_size = size,
                           .chunk_overlap = overlap,
                           .keep_separator = keep,
                           .strip_whitespace = strip});
    INFO("trial " << trial << " size " << size << " overlap " << overlap << " keep " << keep
                  << " strip " << strip << " text '" << doc << "'");
    split_checked(s, doc);
  }
  // Invalid UTF-8 bytes count as one character each; the valid character at the end stays whole.
  const std::string bad =
      "ab\xff\xfe"
      "cd \xe5\x86 \xe5\x86\x85";
  const size_t valid = bad.size() - 3;
  for (size_t size = 1; size < 6; ++size) {
    const rag::Splitter s({.chunk_size = size, .chunk_overlap = size / 2});
    for (const auto& c : s.split(bad, "bad")) {
      CHECK(c.text == bad.substr(c.begin, c.end - c.begin));
      CHECK((c.begin <= valid || c.begin >= valid + 3));
      CHECK((c.end <= valid || c.end >= valid + 3));
    }
  }
}
