// WordPiece (BERT) and the Unicode data under it, against tests/reference/
// make_wordpiece_fixtures.py: a reference written from Hugging Face tokenizers' rules on Python's
// unicodedata, under four normalizer settings, on texts with accents, CJK, punctuation, control
// characters and long words.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"
#include "scholar/text/wordpiece.hpp"
#include "support.hpp"

using namespace scholar;
using text::WordPieceTokenizer;

namespace {

const io::Json& cases() {
  static const io::Json j =
      io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/wordpiece/cases.json"), "cases.json");
  return j;
}

std::vector<int32_t> ids_of(const io::Json& a) {
  std::vector<int32_t> v;
  for (const io::Json& x : a.as_array()) v.push_back(static_cast<int32_t>(x.as_int()));
  return v;
}

std::string utf8_of(const io::Json& cps) {
  std::string s;
  for (const io::Json& c : cps.as_array()) text::append_utf8(s, static_cast<uint32_t>(c.as_int()));
  return s;
}

WordPieceTokenizer::Options options_of(const io::Json& o) {
  WordPieceTokenizer::Options opt;
  opt.clean_text = o.at("clean_text").as_bool();
  opt.handle_chinese_chars = o.at("handle_chinese_chars").as_bool();
  opt.lowercase = o.at("lowercase").as_bool();
  if (!o.at("strip_accents").is_null()) opt.strip_accents = o.at("strip_accents").as_bool();
  return opt;
}

}  // namespace

TEST_CASE("Unicode categories, lowercase and NFD match Python's unicodedata", "[unicode]") {
  int n = 0;
  for (const io::Json& row : cases().at("unicode").as_array()) {
    const auto cp = static_cast<uint32_t>(row.as_array()[0].as_int());
    INFO("U+" << std::hex << cp);
    CHECK(text::category_name(text::general_category(cp)) == row.as_array()[1].as_string());
    std::string one;
    text::append_utf8(one, cp);
    CHECK(text::to_lower(one) == utf8_of(row.as_array()[2]));
    CHECK(text::nfd(one) == utf8_of(row.as_array()[3]));
    ++n;
  }
  CHECK(n >= 2500);
  // Canonical ordering: marks of a lower class move before those of a higher one.
  CHECK(text::nfd("a\xCC\x81\xCC\xA3") == "a\xCC\xA3\xCC\x81");  // U+0301 (230) after U+0323 (220)
  CHECK(text::nfd("\xE1\xB8\x8B\xCC\xA3") == "d\xCC\xA3\xCC\x87");  // ḋ + dot below
  // Invalid bytes pass through.
  CHECK(text::nfd(std::string_view("a\xFF"
                                   "b",
                                   3)) == std::string("a\xFF"
                                                      "b",
                                                      3));
  CHECK(text::to_lower(std::string_view("A\xC0Z", 3)) == std::string("a\xC0z", 3));
}

TEST_CASE("WordPiece matches the reference under four normalizer settings", "[wordpiece]") {
  const auto& texts = cases().at("texts").as_array();
  for (const auto& [name, cfg] : cases().at("configs").as_object()) {
    const WordPieceTokenizer tok = WordPieceTokenizer::from_vocab_txt(
        SCHOLAR_TEST_DATA "/wordpiece/vocab.txt", options_of(cfg.at("options")));
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::string& t = texts[i].as_string();
      INFO(name << " text " << i << ": " << t);
      const std::string norm = tok.normalize(t);
      CHECK(norm == cfg.at("normalized").as_array()[i].as_string());
      std::vector<std::string> words;
      for (auto w : tok.pre_tokenize(norm)) words.emplace_back(w);
      std::vector<std::string> want;
      for (const io::Json& w : cfg.at("words").as_array()[i].as_array())
        want.push_back(w.as_string());
      CHECK(words == want);
      CHECK(tok.encode(t) == ids_of(cfg.at("ids").as_array()[i]));
      CHECK(tok.encode_with_special(t) == ids_of(cfg.at("ids_with_special").as_array()[i]));
    }
  }
}

TEST_CASE("WordPiece reads tokenizer.json, vocab.txt and its own JSON alike", "[wordpiece]") {
  const auto from_json = WordPieceTokenizer::load(SCHOLAR_TEST_DATA "/wordpiece/tokenizer.json");
  const auto from_txt =
      WordPieceTokenizer::from_vocab_txt(SCHOLAR_TEST_DATA "/wordpiece/vocab.txt");
  CHECK(from_json.fingerprint() == from_txt.fingerprint());
  CHECK(from_json.kind() == "wordpiece");
  CHECK(from_json.vocab_size() == from_txt.vocab_size());
  const auto& uncased = cases().at("configs").at("uncased");
  const auto& texts = cases().at("texts").as_array();
  // tokenizer_from_json dispatches on the model type; to_json round-trips.
  const auto generic = text::load_tokenizer(SCHOLAR_TEST_DATA "/wordpiece/tokenizer.json");
  REQUIRE(generic->kind() == "wordpiece");
  const auto again = text::tokenizer_from_json(from_json.to_json(), "round trip");
  CHECK(again->fingerprint() == from_json.fingerprint());
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO("text " << i);
    const auto want = ids_of(uncased.at("ids").as_array()[i]);
    CHECK(from_json.encode(texts[i].as_string()) == want);
    CHECK(generic->encode(texts[i].as_string()) == want);
    CHECK(again->encode(texts[i].as_string()) == want);
  }
  // Special tokens: [CLS] and [SEP] frame model input; [unused3] is not special.
  CHECK(from_json.cls_id() == *from_json.find("[CLS]"));
  CHECK(from_json.sep_id() == *from_json.find("[SEP]"));
  CHECK(from_json.special_tokens().unk == *from_json.find("[UNK]"));
  CHECK(from_json.special_tokens().pad == *from_json.find("[PAD]"));
  CHECK(from_json.is_special(*from_json.find("[MASK]")));
  CHECK_FALSE(from_json.is_special(*from_json.find("[unused3]")));
}

TEST_CASE("WordPiece frames model input, truncates and decodes", "[wordpiece]") {
  const auto tok = WordPieceTokenizer::load(SCHOLAR_TEST_DATA "/wordpiece/tokenizer.json");
  const auto body = tok.encode("The quick brown fox jumps over the lazy dog.");
  auto framed = tok.encode_for_model("The quick brown fox jumps over the lazy dog.");
  REQUIRE(framed.size() == body.size() + 2);
  CHECK(framed.front() == tok.cls_id());
  CHECK(framed.back() == tok.sep_id());
  CHECK(std::equal(body.begin(), body.end(), framed.begin() + 1));
  framed = tok.encode_for_model("The quick brown fox jumps over the lazy dog.", 5);
  CHECK(framed == std::vector<int32_t>{tok.cls_id(), body[0], body[1], body[2], tok.sep_id()});
  CHECK(tok.encode_for_model("", 3) == std::vector<int32_t>{tok.cls_id(), tok.sep_id()});
  CHECK_THROWS_AS(tok.encode_for_model("x", 2), ValueError);
  // Decoding glues continuations and cleans up spaces before punctuation.
  CHECK(tok.decode(tok.encode_for_model("Hello, world! hackers don't")) ==
        "hello, world! hackers don't");
  CHECK(tok.decode(tok.encode("supercalifragilistic")) == "supercalifragilistic");
  CHECK_THROWS_AS(tok.decode(std::vector<int32_t>{tok.vocab_size()}), IndexError);
  // A word longer than max_input_chars_per_word, or with no cut, is one [UNK].
  CHECK(tok.encode(std::string(101, 'a')) == std::vector<int32_t>{tok.special_tokens().unk});
  CHECK(tok.encode("a\xF0\x9F\x98\x80") == std::vector<int32_t>{tok.special_tokens().unk});
  // Invalid UTF-8 is dropped as U+FFFD would be, never a crash.
  CHECK(tok.encode(std::string_view("hello\xFF"
                                    "world",
                                    11)) == tok.encode("helloworld"));
}

TEST_CASE("WordPiece reports bad vocabularies and files", "[wordpiece]") {
  CHECK_THROWS_AS(WordPieceTokenizer({}, {}), FormatError);
  CHECK_THROWS_AS(WordPieceTokenizer({"a", "b"}, {}), FormatError);  // no [UNK]
  CHECK_THROWS_AS(WordPieceTokenizer({"[UNK]", "a", "a"}, {}), FormatError);
  CHECK_THROWS_AS(WordPieceTokenizer({"[UNK]", ""}, {}), FormatError);
  const std::string dir = test::temp_dir("test_text", "wordpiece_bad");
  io::Json j = io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/wordpiece/tokenizer.json"));
  io::Json bad = j;
  bad.at("normalizer").set("type", io::Json("NFKC"));
  CHECK_THROWS_WITH(WordPieceTokenizer::from_json(bad, "t.json"),
                    Catch::Contains("t.json") && Catch::Contains("NFKC"));
  bad = j;
  bad.at("model").at("vocab").set("hello", io::Json(int64_t{999999}));
  CHECK_THROWS_AS(WordPieceTokenizer::from_json(bad, "t.json"), FormatError);
  // A cased vocab.txt: tokenizer_config.json beside it turns lowercasing off.
  std::filesystem::copy_file(SCHOLAR_TEST_DATA "/wordpiece/vocab.txt", dir + "/vocab.txt");
  io::write_file_atomic(dir + "/tokenizer_config.json", R"({"do_lower_case": false})");
  const auto cased = WordPieceTokenizer::from_vocab_txt(dir + "/vocab.txt");
  CHECK_FALSE(cased.options().lowercase);
  const auto& cfg = cases().at("configs").at("cased");
  CHECK(cased.encode(cases().at("texts").as_array()[2].as_string()) ==
        ids_of(cfg.at("ids").as_array()[2]));
  io::write_file_atomic(dir + "/v2.txt", std::string_view("[UNK]\n\xFF\n", 8));
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_txt(dir + "/v2.txt"),
                    Catch::Contains("v2.txt") && Catch::Contains("UTF-8"));
}

TEST_CASE("WordPiece learns a vocabulary that spells its corpus", "[wordpiece]") {
  std::vector<std::string> corpus;
  for (int i = 0; i < 50; ++i) {
    corpus.push_back("The hacker kludged the kernel; hackers love kludges and kernels.");
    corpus.push_back("Naïve users reboot the router, then the routers reboot themselves.");
    corpus.push_back("東京の天気は晴れです。");
  }
  std::vector<std::string_view> views(corpus.begin(), corpus.end());
  text::WordPieceTokenizer::TrainOptions opt;
  opt.vocab_size = 120;
  int64_t last_done = -1;
  opt.progress = [&](int64_t done, int64_t) { last_done = done; };
  const auto tok = text::WordPieceTokenizer::train(views, opt);
  CHECK(tok.vocab_size() <= 120);
  CHECK(tok.vocab_size() > 60);
  CHECK(last_done > 0);
  CHECK(tok.token_bytes(0) == "[PAD]");
  CHECK(tok.is_special(*tok.find("[MASK]")));
  // Frequent words became whole tokens; every training word is spelled without [UNK].
  CHECK(tok.encode("hacker").size() == 1);
  CHECK(tok.encode("the").size() == 1);
  for (const std::string& s : corpus) {
    const auto ids = tok.encode(s);
    CHECK(std::count(ids.begin(), ids.end(), tok.special_tokens().unk) == 0);
    // Decoding gives back the normalized words (lowercased, accents stripped, CJK spaced).
    std::string words;
    const std::string norm = tok.normalize(s);
    for (auto w : tok.pre_tokenize(norm)) words += std::string(w) + " ";
    std::string back;
    for (int32_t id : ids) {
      const std::string& t = tok.token_bytes(id);
      if (t.starts_with("##"))
        back += t.substr(2);
      else
        back += (back.empty() ? "" : " ") + t;
    }
    CHECK(back + " " == words);
  }
  // Deterministic.
  CHECK(text::WordPieceTokenizer::train(views, opt).fingerprint() == tok.fingerprint());
  opt.vocab_size = 3;
  CHECK_THROWS_AS(text::WordPieceTokenizer::train(views, opt), ValueError);
}
