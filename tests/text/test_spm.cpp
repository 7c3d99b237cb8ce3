// SentencePiece-style tokenization (GGUF tokenizer.ggml.model "llama") against llama.cpp's, on a
// vocabulary made by tests/reference/make_spm_fixture.py (fixtures from
// tests/reference/make_tokenizer_fixtures.sh).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/io/json.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/text/tokenizer.hpp"

using namespace scholar;
using text::SpmTokenizer;

namespace {

std::vector<int32_t> ids_of(const io::Json& a) {
  std::vector<int32_t> out;
  for (const auto& v : a.as_array()) out.push_back(static_cast<int32_t>(v.as_int()));
  return out;
}

const std::string kDir = std::string(SCHOLAR_TEST_DATA) + "/llama_cpp/";

}  // namespace

TEST_CASE("SPM tokenization equals llama.cpp's", "[text]") {
  const io::Json want = io::Json::parse(io::read_file(kDir + "spm.json"), "spm.json");
  const auto tok = SpmTokenizer::from_gguf(io::GgufFile::open(kDir + "spm-vocab.gguf"));
  const auto& texts = want.at("texts").as_array();
  const auto& plain = want.at("plain").as_array();
  const auto& special = want.at("special").as_array();
  REQUIRE(plain.size() == texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& t = texts[i].as_string();
    INFO("text " << i << ": " << t);
    CHECK(tok.encode(t) == ids_of(plain[i]));
    CHECK(tok.encode_with_special(t) == ids_of(special[i]));
  }
}

TEST_CASE("SPM decoding restores the text after the space prefix", "[text]") {
  const auto tok = SpmTokenizer::from_gguf(io::GgufFile::open(kDir + "spm-vocab.gguf"));
  CHECK(tok.add_space_prefix());
  for (std::string s : {"The hacker's kludge", "naïve 東京 🙂", "a\n\n  b", "tab\tx"}) {
    CHECK(tok.decode(tok.encode(s)) == " " + s);
  }
  // Invalid UTF-8 splits as llama.cpp splits it: 0xFF claims four bytes, here the escaped space
  // after it, which then comes back through byte pieces as U+2581 rather than a space.
  CHECK(tok.decode(tok.encode("\xff x")) == " \xff\xe2\x96\x81x");
  // Control tokens decode to nothing; byte pieces to their byte.
  CHECK(tok.token_bytes(1).empty());
  CHECK(tok.is_special(1));
  CHECK(tok.token_bytes(*tok.find("<0x41>")) == "A");
  CHECK_FALSE(tok.is_special(*tok.find("<0x41>")));
  CHECK_THROWS_AS(tok.token_bytes(tok.vocab_size()), IndexError);
}

TEST_CASE("an SPM vocabulary survives GGUF export", "[text]") {
  // The tokenizer rides along with a model: export one and read it back.
  auto spm = std::make_shared<SpmTokenizer>(
      SpmTokenizer::from_gguf(io::GgufFile::open(kDir + "spm-vocab.gguf")));
  nn::TransformerLM lm(nn::TransformerConfig::llama(spm->vocab_size() + 3, 64, 1, 32, 2, 2, 32), 1);
  const std::string path = "/tmp/scholar_test_spm_" + std::to_string(::getpid()) + ".gguf";
  infer::Model::from_module(lm, spm)->save_gguf(path, WeightType::f32);
  const auto back = infer::Model::from_gguf(path);
  const auto* t = dynamic_cast<const SpmTokenizer*>(&back->tokenizer());
  REQUIRE(t != nullptr);
  CHECK(t->vocab_size() == spm->vocab_size() + 3);  // padded to the model's vocabulary
  const std::string s = "It's 1984 -- naïve hackers!\n  <s> ok";
  CHECK(t->encode(s) == spm->encode(s));
  CHECK(t->encode_with_special(s) == spm->encode_with_special(s));
  std::remove(path.c_str());
}

TEST_CASE("SPM vocabularies that cannot work are errors", "[text]") {
  CHECK_THROWS_AS(SpmTokenizer({{"<0xZZ>", 0, SpmTokenizer::PieceType::byte}}, true), FormatError);
  CHECK_THROWS_AS(SpmTokenizer({}, true), FormatError);
  // Without byte fallback a character with no piece is an error, not a silent drop.
  SpmTokenizer small({{"\xe2\x96\x81", 0, SpmTokenizer::PieceType::normal},
                      {"a", 0, SpmTokenizer::PieceType::normal}},
                     true);
  CHECK(small.encode("a a") == std::vector<int32_t>{0, 1, 0, 1});
  CHECK_THROWS_AS(small.encode("b"), ValueError);
}
