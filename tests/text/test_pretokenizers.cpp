// Pre-tokenization rules: GPT-2's, Llama 3's and Qwen2's, against llama.cpp's tokenization with the
// same vocabulary (fixtures from tests/reference/make_tokenizer_fixtures.sh).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/text/tokenizer.hpp"

using namespace scholar;
using text::PreTokenizer;

namespace {

std::vector<std::string> pieces(std::string_view s, PreTokenizer rule) {
  std::vector<std::string> out;
  for (std::string_view p : text::pretokenize(s, rule)) out.emplace_back(p);
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("the llama3 rule splits as its regex does", "[text]") {
  const auto L = PreTokenizer::llama3;
  CHECK(pieces("I'M 12345", L) == V{"I", "'M", " ", "123", "45"});
  CHECK(pieces("I'M 12345", PreTokenizer::qwen2) == V{"I", "'M", " ", "1", "2", "3", "4", "5"});
  CHECK(pieces("I'M 12345", PreTokenizer::gpt2) == V{"I", "'", "M", " 12345"});
  // A non-letter, non-digit character (not a line break) leads a letter run.
  CHECK(pieces("$hello world", L) == V{"$hello", " world"});
  CHECK(pieces("\thello", L) == V{"\thello"});
  CHECK(pieces("\nhello", L) == V{"\n", "hello"});
  // Other runs take one leading space and trailing line breaks.
  CHECK(pieces("a ...\n\nb", L) == V{"a", " ...\n\n", "b"});
  // Whitespace: up to the last line break; else all but the last character before text.
  CHECK(pieces("a  \n  \n  b", L) == V{"a", "  \n  \n", " ", " b"});
  CHECK(pieces("a   b", L) == V{"a", "  ", " b"});
  CHECK(pieces("end   ", L) == V{"end", "   "});
  CHECK(pieces("x\r\ny", L) == V{"x", "\r\n", "y"});
  // Letters and digits of other scripts.
  CHECK(pieces("東京 ١٢٣٤", L) == V{"東京", " ", "١٢٣", "٤"});
  for (const char* s : {"", " ", "\n", "'", "a'", "''s", "\xff\xfe", "🙂🙂 x"}) {
    std::string joined;
    for (const auto& p : pieces(s, L)) joined += p;
    CHECK(joined == s);  // the pieces always cover the text exactly
  }
}

TEST_CASE("pre-tokenizer names follow llama.cpp", "[text]") {
  CHECK(text::pre_tokenizer_from_name("llama-bpe") == PreTokenizer::llama3);
  CHECK(text::pre_tokenizer_from_name("qwen2") == PreTokenizer::qwen2);
  CHECK(text::pre_tokenizer_from_name("default") == PreTokenizer::gpt2);
  CHECK_FALSE(text::pre_tokenizer_from_name("deepseek-llm").has_value());
  for (auto r : {PreTokenizer::gpt2, PreTokenizer::llama3, PreTokenizer::qwen2})
    CHECK(text::pre_tokenizer_from_name(text::pre_tokenizer_name(r)) == r);
}

TEST_CASE("tokenization under each rule equals llama.cpp's", "[text]") {
  const std::string dir = std::string(SCHOLAR_TEST_DATA) + "/llama_cpp/";
  const io::Json want =
      io::Json::parse(io::read_file(dir + "pretokenize.json"), "pretokenize.json");
  const auto model = infer::Model::from_gguf(dir + "llama-f32.gguf");
  const auto& texts = want.at("texts").as_array();
  for (auto rule : {PreTokenizer::gpt2, PreTokenizer::llama3, PreTokenizer::qwen2}) {
    text::BpeTokenizer tok = dynamic_cast<const text::BpeTokenizer&>(model->tokenizer());
    tok.set_pre_tokenizer(rule);
    tok.set_ignore_merges(rule == PreTokenizer::llama3);  // as llama.cpp does for llama-bpe
    const auto& ids = want.at(std::string(text::pre_tokenizer_name(rule))).as_array();
    REQUIRE(ids.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int32_t> expect;
      for (const auto& v : ids[i].as_array()) expect.push_back(static_cast<int32_t>(v.as_int()));
      INFO(text::pre_tokenizer_name(rule) << " text " << i << ": " << texts[i].as_string());
      CHECK(tok.encode(texts[i].as_string()) == expect);
    }
  }
}

TEST_CASE("tokenizer.json keeps the rule and ignore_merges", "[text]") {
  const std::string dir = std::string(SCHOLAR_TEST_DATA) + "/llama_cpp/";
  text::BpeTokenizer tok = dynamic_cast<const text::BpeTokenizer&>(
      infer::Model::from_gguf(dir + "llama-f32.gguf")->tokenizer());
  for (auto rule : {PreTokenizer::llama3, PreTokenizer::qwen2, PreTokenizer::gpt2}) {
    tok.set_pre_tokenizer(rule);
    tok.set_ignore_merges(rule == PreTokenizer::llama3);
    const auto back = text::BpeTokenizer::from_json(tok.to_json());
    CHECK(back.pre_tokenizer() == rule);
    CHECK(back.ignore_merges() == (rule == PreTokenizer::llama3));
    CHECK(back.encode("It'S 2024!\n\n  ok") == tok.encode("It'S 2024!\n\n  ok"));
  }
  // An unknown Split regex is refused with the rule named.
  io::Json j = tok.to_json();
  io::Json split = io::Json::object();
  split.set("type", io::Json("Split"));
  io::Json pattern = io::Json::object();
  pattern.set("Regex", io::Json("\\s+"));
  split.set("pattern", std::move(pattern));
  j.set("pre_tokenizer", std::move(split));
  CHECK_THROWS_WITH(text::BpeTokenizer::from_json(j),
                    Catch::Contains("is not one scholar implements"));
}
