// Chat templates: detection of the Jinja templates real models ship, and rendering that matches
// Jinja2's output for them (tests/reference/make_chat_fixtures.py), with the loss on replies only.
#include <catch2/catch.hpp>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/text/chat.hpp"

using namespace scholar;

TEST_CASE("chat templates render what Jinja renders for the models' own templates", "[chat]") {
  const io::Json fixture =
      io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/chat/templates.json"), "templates.json");
  int n = 0;
  for (const io::Json& c : fixture.at("cases").as_array()) {
    const std::string& format = c.at("format").as_string();
    INFO(format << " case " << n);
    const auto t = text::ChatTemplate::detect(c.at("template").as_string());
    REQUIRE(t.has_value());
    CHECK(t->name() == format);
    std::vector<text::ChatMessage> messages;
    std::string replies;  // every assistant message, as the trainable text should hold it
    for (const io::Json& m : c.at("messages").as_array())
      messages.push_back({m.at("role").as_string(), m.at("content").as_string()});
    std::string got, trainable;
    for (const auto& p : t->render(messages, c.at("add_generation_prompt").as_bool())) {
      const std::string piece = p.kind == text::ChatPiece::Kind::bos ? c.at("bos_token").as_string()
                                : p.kind == text::ChatPiece::Kind::eos
                                    ? c.at("eos_token").as_string()
                                    : p.text;
      got += piece;
      if (p.trainable) trainable += piece;
    }
    CHECK(got == c.at("expected").as_string());
    // The trainable text is each reply and the marker that ends it, nothing of the prompts.
    for (const auto& m : messages) {
      if (m.role == "assistant") {
        const auto a = m.content.find_first_not_of(' ');
        CHECK(trainable.find(m.content.substr(a, m.content.find_last_not_of(' ') - a + 1)) !=
              std::string::npos);
      } else {
        CHECK(trainable.find(m.content) == std::string::npos);
      }
    }
    CHECK(trainable.find(c.at("eos_token").as_string()) != std::string::npos);
    ++n;
  }
  CHECK(n == 12);
}

TEST_CASE("chat templates: the plain default, prompts, and errors", "[chat]") {
  const text::ChatTemplate plain;
  CHECK(plain.name() == "plain");
  CHECK(plain.prompt({{"system", "Be brief."}, {"user", "What is foo?"}}) ==
        "### System:\nBe brief.\n\n### User:\nWhat is foo?\n\n### Assistant:\n");
  const auto pieces =
      plain.render(std::vector<text::ChatMessage>{{"user", "Q"}, {"assistant", "A"}});
  std::string trainable;
  bool eos = false;
  for (const auto& p : pieces) {
    if (p.trainable) trainable += p.text;
    eos = eos || (p.kind == text::ChatPiece::Kind::eos && p.trainable);
  }
  CHECK(trainable == "A");
  CHECK(eos);
  CHECK(text::ChatTemplate::from_name("llama3").format() == text::ChatFormat::llama3);
  CHECK_FALSE(text::ChatTemplate::detect("").has_value());
  CHECK_FALSE(text::ChatTemplate::detect("{{ messages[0]['content'] }}").has_value());
  CHECK_THROWS_WITH(text::ChatTemplate::from_name("alpaca"), Catch::Contains("unknown"));
  CHECK_THROWS_WITH(plain.render(std::vector<text::ChatMessage>{{"robot", "x"}}),
                    Catch::Contains("role 'robot'"));
  CHECK_THROWS_WITH(plain.render(std::vector<text::ChatMessage>{{"user", "x"}, {"system", "y"}}),
                    Catch::Contains("must come first"));
}
