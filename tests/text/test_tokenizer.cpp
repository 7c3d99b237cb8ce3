// The Tokenizer interface: kinds, fingerprints, special tokens, and saving and loading any kind.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "scholar/error.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/text/tokenizer.hpp"

using namespace scholar;

namespace {

const std::string kLlamaCpp = std::string(SCHOLAR_TEST_DATA) + "/llama_cpp/";

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("scholar_tok_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

const char* kTexts[] = {"The hacker's kludge <|endoftext|> works", "naïve 東京 🙂", "a\n\n  b",
                        "<s> x </s>", ""};

}  // namespace

TEST_CASE("a BPE tokenizer saved and loaded keeps its ids, specials and fingerprint",
          "[text][tokenizer]") {
  std::string corpus;
  for (int i = 0; i < 40; ++i)
    corpus += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  const auto tok = text::BpeTokenizer::train(
      corpus, {.vocab_size = 300, .special_tokens = {"<|endoftext|>", "<pad>"}});
  CHECK(tok.kind() == "bpe");
  // Guessed from the names: GPT-2's <|endoftext|> both begins and ends; <pad> pads.
  const auto end = *tok.find("<|endoftext|>");
  CHECK(tok.special_tokens() == text::SpecialTokens{.bos = end, .eos = end, .pad = end + 1});
  const std::string path = temp_path("bpe.json");
  tok.save(path);
  const auto back = text::load_tokenizer(path);
  CHECK(back->kind() == "bpe");
  CHECK(back->fingerprint() == tok.fingerprint());
  CHECK(back->special_tokens() == tok.special_tokens());
  for (const char* t : kTexts) CHECK(back->encode_with_special(t) == tok.encode_with_special(t));
  // Another vocabulary, or the same one with another rule, has another fingerprint.
  const auto other = text::BpeTokenizer::train(corpus + "more text\n", {.vocab_size = 300});
  CHECK(other.fingerprint() != tok.fingerprint());
  auto relaxed = text::BpeTokenizer::load(path);
  relaxed.set_pre_tokenizer(text::PreTokenizer::llama3);
  CHECK(relaxed.fingerprint() != tok.fingerprint());
  CHECK(tok.fingerprint().size() == 16);
  std::filesystem::remove(path);
}

TEST_CASE("an SPM tokenizer from GGUF saved as JSON loads back identical", "[text][tokenizer]") {
  const auto tok = text::SpmTokenizer::from_gguf(io::GgufFile::open(kLlamaCpp + "spm-vocab.gguf"));
  CHECK(tok.kind() == "spm");
  // make_spm_fixture.py wrote BOS 1 and EOS 2.
  CHECK(tok.special_tokens().bos == 1);
  CHECK(tok.special_tokens().eos == 2);
  const std::string path = temp_path("spm.json");
  tok.save(path);
  const auto back = text::load_tokenizer(path);
  CHECK(back->kind() == "spm");
  CHECK(back->fingerprint() == tok.fingerprint());
  CHECK(back->special_tokens() == tok.special_tokens());
  CHECK(back->vocab_size() == tok.vocab_size());
  for (const char* t : kTexts) {
    CHECK(back->encode(t) == tok.encode(t));
    CHECK(back->encode_with_special(t) == tok.encode_with_special(t));
  }
  std::filesystem::remove(path);
}

TEST_CASE("bad special ids and unknown tokenizer files are errors", "[text][tokenizer]") {
  text::BpeTokenizer tok;
  CHECK_THROWS_AS(tok.set_special_tokens({.eos = 256}), IndexError);
  CHECK_THROWS_AS(tok.set_special_tokens({.bos = -2}), IndexError);
  tok.set_special_tokens({.eos = 255});
  CHECK(tok.special_tokens().eos == 255);
  CHECK_THROWS_WITH(text::tokenizer_from_json(io::Json::parse(R"({"type": "wordpiece-x"})"), "t"),
                    Catch::Contains("wordpiece-x"));
  CHECK_THROWS_AS(
      text::tokenizer_from_json(io::Json::parse(R"({"type": "scholar-spm", "version": 9})"), "t"),
      FormatError);
  CHECK_THROWS_AS(
      text::tokenizer_from_json(io::Json::parse(R"({"model": {"type": "Unigram"}})"), "t"),
      FormatError);
}
