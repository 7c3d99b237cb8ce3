// Supervised fine-tuning data: JSONL in both forms, loss on the replies only, truncation and
// refusals naming the line, packed rows that compute exactly what their examples compute alone,
// and LoRA SFT through the Trainer.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "scholar/distill/distill.hpp"
#include "scholar/io/file.hpp"
#include "scholar/nn/lora.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/train/instruct.hpp"
#include "scholar/train/trainer.hpp"
#include "support.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  return test::temp_dir("sft", name);
}

const char* kWords[] = {"daemon", "kludge", "foo", "hack", "cruft", "grok", "munge", "frob"};
const char* kMeanings[] = {"a program that runs in the background",
                           "a clumsy but working fix",
                           "a name for anything, used in examples",
                           "a quick job that does what is needed",
                           "code nobody needs any more",
                           "to understand deeply",
                           "to change data in a destructive way",
                           "to adjust without a plan"};

// n examples "What is <word i>?" -> "<meaning i + shift>."
std::vector<train::Conversation> examples(int n, int shift = 0) {
  std::vector<train::Conversation> v;
  for (int i = 0; i < n; ++i)
    v.push_back({{{"user", std::string("What is ") + kWords[i % 8] + "?"},
                  {"assistant", std::string(kMeanings[(i + shift) % 8]) + "."}},
                 i + 1});
  return v;
}

text::BpeTokenizer tokenizer() {
  std::string corpus;
  for (int i = 0; i < 8; ++i)
    corpus += std::string("What is ") + kWords[i] + "? " + kMeanings[i] +
              ".\n### User:\n### Assistant:\n";
  auto tok = text::BpeTokenizer::train(
      corpus,
      {.vocab_size = 600, .special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}});
  return tok;
}

std::string message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("instruction JSONL: both forms, and errors that name the line", "[sft]") {
  const std::string dir = temp_dir("jsonl");
  io::write_file_atomic(dir + "/a.jsonl",
                        "{\"prompt\": \"What is foo?\", \"completion\": \"A name.\"}\n\n"
                        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                        "{\"role\": \"user\", \"content\": \"Hi\"}, "
                        "{\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n");
  const auto ex = train::read_instruction_jsonl(dir + "/a.jsonl");
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].messages.size() == 2);
  CHECK(ex[0].messages[1].role == "assistant");
  CHECK(ex[0].messages[1].content == "A name.");
  CHECK(ex[1].line == 3);
  CHECK(ex[1].messages[0].role == "system");
  // Round trip through the messages form.
  train::save_instruction_jsonl(ex, dir + "/b.jsonl");
  const auto back = train::read_instruction_jsonl(dir + "/b.jsonl");
  REQUIRE(back.size() == 2);
  CHECK(back[1].messages[2].content == "Hello.");

  auto bad = [&](const std::string& text) {
    io::write_file_atomic(dir + "/bad.jsonl",
                          "{\"prompt\": \"a\", \"completion\": \"b\"}\n" + text);
    return message([&] { train::read_instruction_jsonl(dir + "/bad.jsonl"); });
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(bad("{\"prompt\": \"x\"}\n"),
             Contains("bad.jsonl:2") && Contains("no \"completion\""));
  CHECK_THAT(bad("{\"prompt\": \"x\", \"completion\": 3}\n"),
             Contains(":2") && Contains("strings"));
  CHECK_THAT(bad("{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n"),
             Contains(":2") && Contains("role 'bot'"));
  CHECK_THAT(bad("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n"),
             Contains(":2") && Contains("no assistant message"));
  CHECK_THAT(bad("{\"prompt\": \"x\",\n"), Contains(":2"));
  CHECK_THAT(bad("[1, 2]\n"), Contains(":2") && Contains("JSON object"));
}

TEST_CASE("instruction data puts the loss on the replies only", "[sft]") {
  const auto tok = tokenizer();
  const int32_t im_end = *tok.find("<|im_end|>");
  for (const std::string format : {"chatml", "plain"}) {
    INFO(format);
    train::InstructionDataset::Options o;
    o.max_length = 64;
    o.chat_template = format;
    o.validation_fraction = 0;
    const auto data = train::InstructionDataset::build(examples(8), tok, o);
    CHECK(data.size(train::Split::train) == 8);
    CHECK(data.chat_template().name() == format);
    Generator gen(1);
    const train::Batch b = data.sample(train::Split::train, 4, 64, gen);
    REQUIRE(b.inputs.rank() == 2);
    CHECK_FALSE(b.segments.defined());
    // Each row's targets, decoded, are one of the meanings (and its end marker).
    for (int64_t r = 0; r < 4; ++r) {
      std::vector<int32_t> t;
      for (int64_t i = 0; i < b.targets.size(1); ++i)
        if (int32_t y = b.targets.data()[r * b.targets.size(1) + i]; y != -100) t.push_back(y);
      REQUIRE_FALSE(t.empty());
      if (format == "chatml") {
        CHECK(t.back() == im_end);
        t.pop_back();
      } else {
        CHECK(t.back() == tok.special_tokens().eos);  // plain: the EOS token ends a reply
        t.pop_back();
      }
      const std::string reply = tok.decode(t);
      bool known = false;
      for (const char* m : kMeanings) known = known || reply == std::string(m) + ".";
      CHECK(known);
      INFO(reply);
    }
  }
  // train_on_prompt: every token but the first is a target.
  train::InstructionDataset::Options o{
      .max_length = 64, .train_on_prompt = true, .validation_fraction = 0};
  const auto all = train::InstructionDataset::build(examples(2), tok, o);
  const auto& m = all.trainable(train::Split::train, 0);
  CHECK(m[0] == 0);
  CHECK(std::count(m.begin(), m.end(), uint8_t{1}) == static_cast<long>(m.size()) - 1);
}

TEST_CASE("instruction data: truncation and refusals", "[sft]") {
  const auto tok = tokenizer();
  auto ex = examples(3);
  // max_length: the longest of the examples as they are, so only a lengthened one is cut.
  size_t longest = 0;
  {
    const auto d =
        train::InstructionDataset::build(ex, tok, {.max_length = 512, .validation_fraction = 0});
    for (int64_t i = 0; i < 3; ++i)
      longest = std::max(longest, d.tokens(train::Split::train, i).size());
  }
  ex[1].messages[1].content = std::string(200, 'x');  // a long reply: truncated
  train::InstructionDataset::Options o{.max_length = static_cast<int64_t>(longest) - 1,
                                       .validation_fraction = 0};
  const auto d = train::InstructionDataset::build(ex, tok, o);
  CHECK(d.truncated() == 1);
  for (int64_t i = 0; i < d.size(train::Split::train); ++i)
    CHECK(d.tokens(train::Split::train, i).size() <= longest);
  ex[2].messages[0].content = std::string(300, 'y');  // a prompt longer than the context
  CHECK_THAT(message([&] { train::InstructionDataset::build(ex, tok, o); }),
             Catch::Contains("line 3") && Catch::Contains("prompt takes"));
  CHECK_THAT(
      message([&] {
        Generator g(0);
        train::InstructionDataset::build(examples(3), tok, o).sample(train::Split::train, 2, 8, g);
      }),
      Catch::Contains("max_length " + std::to_string(o.max_length)));
  o.max_length = 1;
  CHECK_THAT(message([&] { train::InstructionDataset::build(examples(3), tok, o); }),
             Catch::Contains("max_length must be >= 2"));
}

TEST_CASE("packed rows compute exactly what their examples compute alone", "[sft]") {
  const auto tok = tokenizer();
  for (const bool llama : {false, true}) {
    INFO((llama ? "llama" : "gpt2"));
    const auto cfg = llama ? nn::TransformerConfig::llama(tok.vocab_size(), 128, 2, 32, 4, 2, 48)
                           : nn::TransformerConfig::gpt2(tok.vocab_size(), 128, 2, 32, 4);
    nn::TransformerLM model(cfg, 5);
    model.eval();
    train::InstructionDataset::Options o{
        .max_length = 128, .chat_template = "chatml", .pack = true, .validation_fraction = 0};
    const auto packed = train::InstructionDataset::build(examples(8), tok, o);
    o.pack = false;
    const auto padded = train::InstructionDataset::build(examples(8), tok, o);
    // The same examples in the same order: packed into rows of 128, and one per padded row.
    const train::Batch p = packed.eval_batch(train::Split::train, 8, 128, 0);
    const train::Batch q = padded.eval_batch(train::Split::train, 8, 128, 0);
    REQUIRE(p.segments.defined());
    CHECK(p.inputs.size(0) < 8);  // several examples share a row
    const Tensor<float> lp = model.forward(p.inputs, nullptr, &p.segments).value();
    const Tensor<float> lq = model.forward(q.inputs).value();
    // Walk the packed rows: segment k of a row is example k of the sequence.
    const int64_t V = cfg.vocab_size, Tp = p.inputs.size(1), Tq = q.inputs.size(1);
    int64_t example = 0;
    double worst = 0;
    for (int64_t r = 0; r < p.inputs.size(0); ++r) {
      int64_t t = 0;
      while (t < Tp && p.segments.data()[r * Tp + t] != 0) {
        const int32_t seg = p.segments.data()[r * Tp + t];
        int64_t k = 0;
        for (; t < Tp && p.segments.data()[r * Tp + t] == seg; ++t, ++k)
          for (int64_t v = 0; v < V; ++v)
            worst = std::max(worst,
                             static_cast<double>(std::fabs(lp.data()[(r * Tp + t) * V + v] -
                                                           lq.data()[(example * Tq + k) * V + v])));
        ++example;
      }
    }
    CHECK(example == 8);
    CHECK(worst < 1e-4);
    // A live teacher cannot read packed rows: distillation refuses them rather than mixing
    // examples.
    train::ModuleTeacher teacher(model, &tok);
    distill::LogitDistillation kd(teacher);
    train::LossParts parts;
    CHECK_THROWS_WITH(kd.loss(model, p, nullptr, parts), Catch::Contains("pack = false"));
    // And the same loss (the same targets, each counted once).
    CHECK(std::fabs(model.loss(p.inputs, p.targets, nullptr, &p.segments).value().item() -
                    model.loss(q.inputs, q.targets).value().item()) < 1e-5);
  }
}

TEST_CASE("LoRA SFT through the Trainer teaches a trained base new answers", "[sft][lora]") {
  const auto tok = tokenizer();
  nn::TransformerLM model(nn::TransformerConfig::gpt2(tok.vocab_size(), 64, 2, 32, 4), 3);
  train::TrainerOptions to;
  to.batch_size = 4;
  to.context = 32;
  to.max_steps = 80;
  to.lr = 1e-2f;
  to.min_lr = 1e-3f;
  to.warmup_steps = 2;
  to.eval_every = 0;
  to.progress = false;
  train::InstructionDataset::Options o{.max_length = 32,
                                       .chat_template = "chatml",
                                       .pack = true,
                                       .validation_fraction = 0.25,
                                       .seed = 2};
  {  // The base: every parameter trained on the original answers.
    const auto base_data = train::InstructionDataset::build(examples(32), tok, o);
    train::Trainer base(model, base_data, to);
    base.fit();
  }
  // The new domain: the same questions, other answers. Only the adapters train.
  const auto data = train::InstructionDataset::build(examples(32, 3), tok, o);
  CHECK(data.size(train::Split::validation) == 8);
  nn::LoraConfig lc;
  lc.r = 8;
  lc.lora_alpha = 16;
  lc.target_modules = {"all-linear"};
  nn::apply_lora(model, lc);
  const Tensor<float> wte = model.parameter("transformer.wte.weight").value().clone();
  to.max_steps = 60;
  train::Trainer trainer(model, data, to);
  const double before = trainer.evaluate();
  const auto r = trainer.fit();
  CHECK(r.steps == 60);
  CHECK_FALSE(r.diverged);
  const double after = trainer.evaluate();
  INFO(before << " -> " << after);
  CHECK(after < 0.5 * before);
  CHECK(max_abs_diff(model.parameter("transformer.wte.weight").value(), wte) == 0.0);
}
