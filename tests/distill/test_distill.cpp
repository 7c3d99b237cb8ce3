// Distillation: teachers (nn and inference), the vocabulary check, the live and cached objectives
// through the Trainer, and the soft-label cache file (contents, refusals, damage, atomic writes).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "scholar/distill/distill.hpp"
#include "scholar/infer/teacher.hpp"
#include "scholar/io/file.hpp"
#include "scholar/train/trainer.hpp"
#include "support.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  return test::temp_dir("distill", name);
}

struct Setup {
  text::BpeTokenizer tok;
  train::TokenDataset data;
  Setup() {
    tok = text::BpeTokenizer::train(test::tiny_corpus(),
                                    {.vocab_size = 300, .special_tokens = {"<|endoftext|>"}});
    data = train::TokenDataset::build(
        train::split_documents(test::tiny_corpus()), tok,
        {.validation_fraction = 0.2, .seed = 1, .eos_id = *tok.find("<|endoftext|>")});
  }
  nn::TransformerConfig teacher_cfg(int64_t vocab = 0) const {
    return nn::TransformerConfig::llama(vocab ? vocab : tok.vocab_size(), 32, 2, 48, 4, 2, 96);
  }
  nn::TransformerConfig student_cfg() const {
    return nn::TransformerConfig::llama(tok.vocab_size(), 32, 1, 16, 2, 2, 32);
  }
};

train::TrainerOptions options(int64_t steps) {
  train::TrainerOptions o;
  o.batch_size = 4;
  o.context = 16;
  o.max_steps = steps;
  o.lr = 3e-3f;
  o.min_lr = 1e-3f;
  o.warmup_steps = 2;
  o.eval_every = 0;
  o.progress = false;
  o.seed = 5;
  return o;
}

// A teacher worth learning from: trained briefly on the corpus.
std::unique_ptr<nn::TransformerLM> trained_teacher(const Setup& s) {
  auto t = std::make_unique<nn::TransformerLM>(s.teacher_cfg(), 3);
  train::Trainer tr(*t, s.data, options(30), &s.tok);
  tr.fit();
  return t;
}

}  // namespace

TEST_CASE("an inference model teaches the same logits as its nn module", "[distill]") {
  Setup s;
  nn::TransformerLM lm(s.teacher_cfg(), 7);
  train::ModuleTeacher a(lm, &s.tok);
  auto model = infer::Model::from_module(lm, std::make_shared<text::BpeTokenizer>(s.tok));
  infer::ModelTeacher b(model, /*max_tokens=*/32);  // 2 windows per decode: 3 decodes for 5
  const auto [x, y] = s.data.sequential_batch(train::Split::train, 5, 16, 0);
  const Tensor<float> la = a.logits(x), lb = b.logits(x);
  REQUIRE(la.shape() == lb.shape());
  double worst = 0;
  for (int64_t i = 0; i < la.numel(); ++i)
    worst = std::max(worst, double{std::fabs(la.data()[i] - lb.data()[i])});
  CHECK(worst < 1e-4);
  CHECK(a.fingerprint() == train::module_fingerprint(lm));
  CHECK(b.fingerprint() == infer::model_fingerprint(*model));
  CHECK(a.vocab_size() == b.vocab_size());
  CHECK_THROWS_WITH(b.logits(Tensor<int32_t>::zeros({1, 33})), Catch::Contains("context length"));
  nn::TransformerLM other(s.teacher_cfg(), 8);
  CHECK(train::ModuleTeacher(other).fingerprint() != a.fingerprint());
}

TEST_CASE("teacher and student must share a vocabulary", "[distill]") {
  Setup s;
  nn::TransformerLM t(s.teacher_cfg(), 1);
  train::ModuleTeacher teacher(t, &s.tok);
  distill::check_vocabularies(teacher, &s.tok, s.tok.vocab_size());
  // Another tokenizer of the same size: refused by fingerprint.
  const auto other =
      text::BpeTokenizer::train(test::tiny_corpus(2) + "zebra quartz",
                                {.vocab_size = 300, .special_tokens = {"<|endoftext|>"}});
  CHECK_THROWS_WITH(distill::check_vocabularies(teacher, &other, s.tok.vocab_size()),
                    Catch::Contains("different tokenizers") &&
                        Catch::Contains(s.tok.fingerprint()) &&
                        Catch::Contains(other.fingerprint()));
  CHECK_THROWS_WITH(distill::check_vocabularies(teacher, &s.tok, s.tok.vocab_size() + 4),
                    Catch::Contains("vocabulary of 300") && Catch::Contains("304"));
  // A teacher padded beyond its tokenizer's tokens teaches a student that covers them.
  nn::TransformerLM padded(s.teacher_cfg(320), 1);
  train::ModuleTeacher pt(padded, &s.tok);
  distill::check_vocabularies(pt, &s.tok, 300);
  CHECK_THROWS_AS(distill::check_vocabularies(pt, &s.tok, 290), ValueError);
}

TEST_CASE("logit distillation through the Trainer: the student moves toward the teacher",
          "[distill]") {
  Setup s;
  auto t = trained_teacher(s);
  train::ModuleTeacher teacher(*t, &s.tok);
  nn::TransformerLM student(s.student_cfg(), 2);
  distill::LogitDistillation kd(teacher, {.temperature = 2.0f, .alpha = 0.5f});
  const std::string dir = temp_dir("live");
  auto o = options(40);
  o.out_dir = dir;
  train::Trainer tr(student, s.data, o, &s.tok);
  tr.objective = &kd;
  std::vector<train::StepInfo> steps;
  tr.on_step = [&](const train::StepInfo& i) { steps.push_back(i); };
  tr.fit();
  REQUIRE(steps.size() == 40);
  REQUIRE(steps[0].parts.size() == 2);
  CHECK(steps[0].parts[0].first == "kd");
  CHECK(steps[0].parts[1].first == "ce");
  const auto &a = steps.front().parts, &b = steps.back().parts;
  CHECK(b[0].second < 0.5 * a[0].second);  // the divergence from the teacher falls
  CHECK(b[1].second < a[1].second);
  // The loss is the weighted sum of its parts.
  CHECK(steps[5].loss ==
        Approx(0.5 * 4 * steps[5].parts[0].second + 0.5 * steps[5].parts[1].second).epsilon(1e-4));
  const std::string log = io::read_file(dir + "/log.csv");
  CHECK(log.rfind("step,loss,val_loss,val_ppl,grad_norm,lr,tokens_per_s,kd,ce\n", 0) == 0);
}

TEST_CASE("soft-label cache: the teacher's top K, refused for another corpus, teacher or window",
          "[distill]") {
  Setup s;
  auto t = trained_teacher(s);
  train::ModuleTeacher teacher(*t, &s.tok);
  const std::string dir = temp_dir("cache");
  const std::string path = dir + "/labels.slc";
  distill::SoftLabelCache::build(teacher, s.data, train::Split::train, 16, path,
                                 {.k = 8, .temperature = 2.0f, .batch = 3, .progress = false});
  const auto cache = distill::SoftLabelCache::open(path);
  const auto& info = cache.info();
  CHECK(info.windows == s.data.window_count(train::Split::train, 16));
  CHECK(info.k == 8);
  CHECK(info.window == 16);
  CHECK(info.vocab == 300);
  CHECK(info.teacher == teacher.fingerprint());
  CHECK(info.tokenizer == s.tok.fingerprint());
  CHECK(fs::file_size(path) % 64 == (info.windows * 16 * 8 * 4) % 64);  // u16 ids + f16 values
  // Only the cache is left: no temporary file of the build survives it.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);

  // Window 3 against the teacher run directly.
  const train::Batch b = s.data.windows_at(train::Split::train, 16, {3, 0});
  const Tensor<float> logits = teacher.logits(b.inputs);
  const autograd::SoftTargets soft = cache.lookup({3, 0});
  REQUIRE(soft.top_ids.shape() == (Shape{2, 16, 8}));
  for (int64_t pos = 0; pos < 16; ++pos) {
    std::vector<float> z(300), lp(300);
    for (int64_t v = 0; v < 300; ++v) z[static_cast<size_t>(v)] = logits(0, pos, v) / 2.0f;
    kernels::active().log_softmax(lp.data(), z.data(), 300);
    std::vector<int32_t> order(300);
    for (int32_t i = 0; i < 300; ++i) order[static_cast<size_t>(i)] = i;
    std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) {
      return lp[static_cast<size_t>(x)] > lp[static_cast<size_t>(y)];
    });
    for (int64_t j = 0; j < 8; ++j) {
      INFO("position " << pos << " slot " << j);
      CHECK(soft.top_ids(0, pos, j) == order[static_cast<size_t>(j)]);
      const float want = lp[static_cast<size_t>(order[static_cast<size_t>(j)])];
      CHECK(std::fabs(soft.top_log_probs(0, pos, j) - want) <= 2e-3f * std::fabs(want) + 1e-4f);
    }
  }
  CHECK_THROWS_AS(cache.lookup({info.windows}), IndexError);

  // Refusals.
  cache.check(s.data, train::Split::train, 16, &teacher);
  const auto other_data = train::TokenDataset::build(
      train::split_documents(test::tiny_corpus(1)), s.tok, {.validation_fraction = 0.2, .seed = 1});
  CHECK_THROWS_WITH(cache.check(other_data, train::Split::train, 16),
                    Catch::Contains("another corpus"));
  CHECK_THROWS_WITH(cache.check(s.data, train::Split::train, 8), Catch::Contains("window length"));
  CHECK_THROWS_WITH(cache.check(s.data, train::Split::validation, 16), Catch::Contains("split"));
  nn::TransformerLM t2(s.teacher_cfg(), 99);
  train::ModuleTeacher other_teacher(t2, &s.tok);
  CHECK_THROWS_WITH(cache.check(s.data, train::Split::train, 16, &other_teacher),
                    Catch::Contains("another teacher"));
  CHECK_THROWS_WITH(distill::CachedDistillation(cache, other_data), Catch::Contains("corpus"));

  // Damage: truncated, wrong magic; and a failed build leaves the old file.
  const std::string bytes = io::read_file(path);
  io::write_file_atomic(dir + "/cut.slc", bytes.substr(0, bytes.size() - 10));
  CHECK_THROWS_WITH(distill::SoftLabelCache::open(dir + "/cut.slc"),
                    Catch::Contains("truncated") && Catch::Contains("cut.slc"));
  io::write_file_atomic(dir + "/bad.slc", "SCHSLC02" + bytes.substr(8));
  CHECK_THROWS_AS(distill::SoftLabelCache::open(dir + "/bad.slc"), FormatError);
  CHECK_THROWS_AS(distill::SoftLabelCache::build(teacher, s.data, train::Split::train, 16, path,
                                                 {.k = 400, .progress = false}),
                  ValueError);
  CHECK(io::read_file(path) == bytes);
}

TEST_CASE("cached distillation through the Trainer equals the live loss at the same labels",
          "[distill]") {
  Setup s;
  auto t = trained_teacher(s);
  train::ModuleTeacher teacher(*t, &s.tok);
  const std::string path = temp_dir("cached") + "/labels.slc";
  // K = V: the cache holds the whole distribution, so the loss equals the live one (up to f16).
  distill::SoftLabelCache::build(teacher, s.data, train::Split::train, 16, path,
                                 {.k = 300, .temperature = 2.0f, .progress = false});
  const auto cache = distill::SoftLabelCache::open(path);
  nn::TransformerLM student(s.student_cfg(), 2);
  distill::CachedDistillation cached(cache, s.data, {.alpha = 0.5f});
  distill::LogitDistillation live(teacher, {.temperature = 2.0f, .alpha = 0.5f});
  const train::Batch b = s.data.windows_at(train::Split::train, 16, {1, 4, 2});
  train::LossParts pc, pl;
  const double lc = cached.loss(student, b, nullptr, pc).value().item();
  const double ll = live.loss(student, b, nullptr, pl).value().item();
  CHECK(lc == Approx(ll).epsilon(2e-3));
  CHECK(pc[1].second == Approx(pl[1].second).epsilon(1e-6));  // the same cross-entropy

  auto o = options(30);
  train::Trainer tr(student, s.data, o, &s.tok);
  tr.objective = &cached;
  std::vector<double> kd;
  tr.on_step = [&](const train::StepInfo& i) { kd.push_back(i.parts[0].second); };
  tr.fit();
  REQUIRE(kd.size() == 30);
  CHECK(kd.back() < 0.5 * kd.front());

  // The trainer's context must be the cache's window.
  auto o8 = options(1);
  o8.context = 8;
  train::Trainer wrong(student, s.data, o8, &s.tok);
  wrong.objective = &cached;
  CHECK_THROWS_WITH(wrong.fit(), Catch::Contains("windows of 8") && Catch::Contains("16"));
}

TEST_CASE("fixed windows: count, batches and bounds", "[distill][train]") {
  train::TokenDataset d(std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {});
  CHECK(d.window_count(train::Split::train, 3) == 3);  // [0..3], [3..6], [6..9]
  CHECK(d.window_count(train::Split::validation, 3) == 0);
  const train::Batch b = d.windows_at(train::Split::train, 3, {2, 0});
  CHECK(b.inputs.to_vector() == std::vector<int32_t>{6, 7, 8, 0, 1, 2});
  CHECK(b.targets.to_vector() == std::vector<int32_t>{7, 8, 9, 1, 2, 3});
  CHECK(b.windows == std::vector<int64_t>{2, 0});
  CHECK_THROWS_AS(d.windows_at(train::Split::train, 3, {3}), IndexError);
  Generator g(1);
  const train::Batch r = d.window_batch(train::Split::train, 5, 3, g);
  for (int64_t w : r.windows) CHECK((w >= 0 && w < 3));
  CHECK_THROWS_AS(d.window_batch(train::Split::validation, 1, 3, g), ValueError);
}

TEST_CASE("sequence-level distillation: the teacher's texts, as a corpus and as JSON Lines",
          "[distill]") {
  Setup s;
  auto t = trained_teacher(s);
  auto tok = std::make_shared<text::BpeTokenizer>(s.tok);
  auto teacher = infer::Model::from_module(*t, tok);
  const std::vector<std::string> prompts = {"the cat", "a dog ran", "rain"};
  distill::SequenceLevelOptions o;
  o.generation.temperature = 0;  // greedy: each text is what generate() gives
  o.generation.max_new_tokens = 12;
  o.progress = false;
  const auto texts = distill::teacher_corpus(teacher, prompts, o);
  REQUIRE(texts.size() == 3);
  infer::Session session(teacher);
  for (size_t i = 0; i < prompts.size(); ++i) {
    CHECK(texts[i].prompt == prompts[i]);
    CHECK(texts[i].completion ==
          generate::generate(session, prompts[i], o.generation).sequences[0].text);
  }
  // Sampling, several continuations per prompt sharing its cache; reproducible.
  o.generation.temperature = 1.0f;
  o.generation.num_return_sequences = 4;
  o.generation.seed = 3;
  const auto sampled = distill::teacher_corpus(teacher, prompts, o);
  REQUIRE(sampled.size() == 12);
  CHECK(sampled[4].prompt == "a dog ran");
  CHECK(distill::teacher_corpus(teacher, prompts, o)[5].completion == sampled[5].completion);
  // The student trains on them as on any corpus.
  const auto docs = distill::as_documents(sampled);
  CHECK(docs[0] == sampled[0].prompt + sampled[0].completion);

  const std::string dir = temp_dir("jsonl");
  std::vector<distill::TeacherText> odd = {
      {"quote \" and \\ and\nnewline", "caf\xc3\xa9 \xe2\x82\xac"}, {"", "only completion"}};
  distill::save_jsonl(odd, dir + "/t.jsonl");
  const auto back = distill::load_jsonl(dir + "/t.jsonl");
  REQUIRE(back.size() == 2);
  CHECK(back[0].prompt == odd[0].prompt);
  CHECK(back[0].completion == odd[0].completion);
  CHECK(back[1].completion == "only completion");
  io::write_file_atomic(dir + "/bad.jsonl",
                        "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": 1}\n");
  CHECK_THROWS_WITH(distill::load_jsonl(dir + "/bad.jsonl"), Catch::Contains("line 2"));
}

TEST_CASE("on-policy distillation: the student writes, the teacher grades", "[distill]") {
  Setup s;
  auto t = trained_teacher(s);
  train::ModuleTeacher teacher(*t, &s.tok);
  nn::TransformerLM student(s.student_cfg(), 2);
  const train::Batch b = s.data.windows_at(train::Split::train, 16, {0, 5, 2});

  // Greedy continuation of the first 6 tokens equals the student's greedy generation.
  distill::OnPolicyDistillation greedy(teacher, {.prompt_tokens = 6, .sample_temperature = 0});
  const Tensor<int32_t> w = greedy.student_windows(student, b);
  REQUIRE(w.shape() == (Shape{3, 16}));
  auto as_model = infer::Model::from_module(student);
  infer::Session session(as_model);
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<int32_t> prompt;
    for (int64_t i = 0; i < 6; ++i) prompt.push_back(b.inputs(r, i));
    for (int64_t i = 0; i < 6; ++i) CHECK(w(r, i) == prompt[static_cast<size_t>(i)]);
    generate::GenerationConfig g;
    g.temperature = 0;
    g.max_new_tokens = 10;
    g.ignore_eos = true;
    const auto got = generate::generate(session, prompt, g, nullptr).sequences[0].tokens;
    REQUIRE(got.size() == 10);
    for (int64_t i = 0; i < 10; ++i) CHECK(w(r, 6 + i) == got[static_cast<size_t>(i)]);
  }

  // lambda 0 is logit distillation on the data.
  distill::OnPolicyOptions off;
  off.lambda = 0;
  off.loss = {.temperature = 2.0f, .alpha = 0.5f};
  distill::OnPolicyDistillation never(teacher, off);
  distill::LogitDistillation live(teacher, off.loss);
  train::LossParts p1, p2;
  CHECK(never.loss(student, b, nullptr, p1).value().item() ==
        Approx(live.loss(student, b, nullptr, p2).value().item()).epsilon(1e-6));
  CHECK(p1.back() == std::pair<std::string, double>{"on_policy", 0.0});

  // lambda 1 trains on the student's own text, graded by the teacher.
  distill::OnPolicyDistillation always(teacher, {.lambda = 1.0f, .seed = 4});
  train::Trainer tr(student, s.data, options(25), &s.tok);
  tr.objective = &always;
  std::vector<train::StepInfo> steps;
  tr.on_step = [&](const train::StepInfo& i) { steps.push_back(i); };
  tr.fit();
  REQUIRE(steps.size() == 25);
  CHECK(steps[0].parts[2].second == 1.0);
  CHECK(steps.back().parts[0].second < steps.front().parts[0].second);
  CHECK_THROWS_AS(distill::OnPolicyDistillation(teacher, {.lambda = 1.5f}), ValueError);
}
