// Prompts with numbered sources that never overflow the budget, and ask() end to end on a tiny
// generator (random weights: the test checks the plumbing, not the prose).
#include <catch2/catch.hpp>

#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/rag/answer.hpp"
#include "scholar/text/tokenizer.hpp"
#include "support.hpp"

using namespace scholar;

namespace {

std::shared_ptr<const text::BpeTokenizer> tokenizer() {
  static const auto tok = [] {
    const std::string corpus =
        "A kludge is a clumsy but working fix. Cruft is excess software. A daemon runs in the "
        "background. To grok is to understand deeply. Answer the question using the numbered "
        "sources below. Cite the sources you use by their numbers, like [1]. Question: Answer:";
    text::BpeTokenizer::TrainOptions o;
    o.vocab_size = 320;
    o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    return std::make_shared<const text::BpeTokenizer>(text::BpeTokenizer::train(corpus, o));
  }();
  return tok;
}

std::vector<rag::Source> candidates() {
  std::vector<rag::Source> v;
  const char* texts[] = {"A kludge is a clumsy but working fix, built under deadline pressure.",
                         "Cruft is excess software that piles up over the years in old code.",
                         "A daemon is a program that runs in the background and serves.",
                         "To grok something is to understand it deeply and intuitively."};
  for (int i = 0; i < 4; ++i)
    v.push_back({0, static_cast<uint64_t>(i + 10), "doc" + std::to_string(i), "file.txt", texts[i],
                 1.0 - 0.1 * i, false});
  return v;
}

}  // namespace

TEST_CASE("a prompt takes sources best first and never exceeds its budget", "[answer]") {
  const auto& tok = *tokenizer();
  const auto c = candidates();
  const auto all = rag::build_prompt("What is a kludge?", c, tok, 100000);
  REQUIRE(all.sources.size() == 4);
  CHECK(all.left_out == 0);
  for (int i = 0; i < 4; ++i) {
    CHECK(all.sources[static_cast<size_t>(i)].n == i + 1);
    CHECK(all.text.find("[" + std::to_string(i + 1) + "] doc" + std::to_string(i) + "\n" +
                        c[static_cast<size_t>(i)].text) != std::string::npos);
  }
  CHECK(all.text.find("Question: What is a kludge?\nAnswer:") != std::string::npos);
  CHECK(all.ids == tok.encode(all.text));  // no BOS: GPT-2 style tokenizers have none
  // Every budget from the bare question upwards: within budget, sources in order, at most one cut.
  const size_t bare = rag::build_prompt("What is a kludge?", {}, tok, 100000).ids.size();
  size_t last_count = 0;
  for (size_t budget = bare; budget <= all.ids.size(); budget += 3) {
    INFO("budget " << budget);
    const auto p = rag::build_prompt("What is a kludge?", c, tok, static_cast<int64_t>(budget));
    CHECK(p.ids.size() <= budget);
    CHECK(p.sources.size() >= last_count);
    last_count = p.sources.size();
    CHECK(p.sources.size() + p.left_out == 4);
    for (size_t i = 0; i < p.sources.size(); ++i) {
      CHECK(p.sources[i].chunk_id == c[i].chunk_id);
      CHECK(c[i].text.starts_with(p.sources[i].text));
      CHECK((p.sources[i].cut == (p.sources[i].text != c[i].text)));
      if (i + 1 < p.sources.size()) CHECK_FALSE(p.sources[i].cut);
    }
  }
  CHECK(last_count == 4);
  CHECK_THROWS_WITH(rag::build_prompt("What is a kludge?", c, tok, static_cast<int64_t>(bare) - 1),
                    Catch::Contains("tokens") && Catch::Contains("shorten the question"));
  // The compact templates: no instructions, fewer tokens.
  const auto compact =
      rag::build_prompt("What is a kludge?", c, tok, 100000, rag::PromptOptions::compact());
  CHECK(compact.text.starts_with("[1] " + c[0].text + "\n[2] "));
  CHECK(compact.text.ends_with("Question: What is a kludge?\nAnswer:"));
  CHECK(compact.ids.size() < all.ids.size());
  // Template fields in the question or the sources are not expanded again.
  const auto odd = rag::build_prompt("Is {sources} a field?", c, tok, 100000);
  CHECK(odd.text.find("Is {sources} a field?") != std::string::npos);
}

TEST_CASE("a prompt uses the model's chat template when it has one", "[answer]") {
  auto tok = std::make_shared<text::BpeTokenizer>(*tokenizer());
  tok->set_chat_template(
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
      "<|im_end|>\n{% endfor %}<|im_start|>assistant\n");
  const auto p = rag::build_prompt("What is cruft?", candidates(), *tok, 100000);
  CHECK(p.text.starts_with("<|im_start|>user\nAnswer the question"));
  CHECK(p.text.ends_with("Answer:<|im_end|>\n<|im_start|>assistant\n"));
  // The markers are special tokens (after the BOS the tokenizer has, if any).
  const size_t first = tok->special_tokens().bos >= 0 ? 1 : 0;
  CHECK(p.ids.at(first) == *tok->find("<|im_start|>"));
  rag::PromptOptions plain;
  plain.use_chat_template = false;
  CHECK(rag::build_prompt("What is cruft?", candidates(), *tok, 100000, plain)
            .text.starts_with("Answer the question"));
  // A format the tokenizer does not name, by request.
  rag::PromptOptions forced;
  forced.chat_format = "chatml";
  CHECK(rag::build_prompt("What is cruft?", candidates(), *tokenizer(), 100000, forced)
            .text.starts_with("<|im_start|>user\n"));
  forced.chat_format = "nonsense";
  CHECK_THROWS_AS(rag::build_prompt("What is cruft?", candidates(), *tokenizer(), 100000, forced),
                  ValueError);
}

TEST_CASE("ask retrieves, prompts within the context and streams the answer", "[answer]") {
  const std::string dir = test::temp_dir("test_rag", "ask");
  auto embedder = rag::SentenceEncoder::load(SCHOLAR_TEST_DATA "/bert/minilm_tiny");
  auto store = rag::Store::create(dir + "/s", std::move(embedder));
  store.add(std::vector<rag::Document>{
      {"kludge", "kludge.txt", "A kludge is a clumsy but working fix.", {}},
      {"daemon", "daemon.txt", "A daemon is a program that runs in the background.", {}},
      {"grok", "grok.txt", "To grok something is to understand it deeply.", {}}});
  const auto tok = tokenizer();
  const auto cfg = nn::TransformerConfig::llama(tok->vocab_size(), 256, 2, 64, 4, 2, 128);
  const nn::TransformerLM lm(cfg, 3);
  const auto model = infer::Model::from_module(lm, tok);
  rag::AskOptions opt;
  opt.search.k = 2;
  opt.search.mode = rag::SearchMode::bm25;
  opt.generation.temperature = 0;
  opt.generation.max_new_tokens = 6;
  opt.generation.ignore_eos = true;
  std::string streamed;
  const auto a = rag::ask(store, model, "What is a daemon in the background?", opt,
                          [&](std::string_view piece) { streamed += piece; });
  CHECK(streamed == a.text);
  CHECK(a.generation.generated_tokens == 6);
  REQUIRE(a.sources.size() == 2);
  CHECK(a.sources[0].document_id == "daemon");
  CHECK(a.sources[0].n == 1);
  CHECK(a.prompt.find("[1] daemon\nA daemon is a program") != std::string::npos);
  CHECK(a.with_sources().find("Sources:\n[1] daemon (daemon.txt)\n[2] ") != std::string::npos);
  // A question longer than the context is a clear error.
  std::string long_question;
  for (int i = 0; i < 200; ++i) long_question += "kludge daemon grok ";
  CHECK_THROWS_WITH(rag::ask(store, model, long_question, opt),
                    Catch::Contains("shorten the question"));
  opt.generation.max_new_tokens = 1000;
  CHECK_THROWS_WITH(rag::ask(store, model, "What is a kludge?", opt),
                    Catch::Contains("no room for a prompt"));
}
