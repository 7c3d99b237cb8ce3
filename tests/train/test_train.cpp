// Corpora, datasets, the training loop, checkpoints that resume bit for bit, divergence handling.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/train/trainer.hpp"
#include "support.hpp"
#include "train/data_parallel.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  return test::temp_dir("train", name);
}

struct Setup {
  text::BpeTokenizer tok;
  train::TokenDataset data;
  nn::TransformerConfig cfg;
  Setup() {
    tok = text::BpeTokenizer::train(test::tiny_corpus(),
                                    {.vocab_size = 320, .special_tokens = {"<|endoftext|>"}});
    data = train::TokenDataset::build(
        train::split_documents(test::tiny_corpus()), tok,
        {.validation_fraction = 0.2, .seed = 1, .eos_id = *tok.find("<|endoftext|>")});
    cfg = nn::TransformerConfig::gpt2(tok.vocab_size(), 32, 2, 32, 4);
  }
};

train::TrainerOptions small_options(int64_t steps, const std::string& out) {
  train::TrainerOptions o;
  o.batch_size = 4;
  o.context = 16;
  o.max_steps = steps;
  o.lr = 3e-3f;
  o.min_lr = 3e-4f;
  o.warmup_steps = 2;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.out_dir = out;
  o.progress = false;
  o.seed = 11;
  return o;
}

}  // namespace

TEST_CASE("corpus files: plain, gzip, empty and non-UTF-8", "[train]") {
  const std::string dir = temp_dir("files");
  io::write_file_atomic(dir + "/a.txt", "first paragraph\nstill first\n\n\nsecond one\n");
  CHECK(train::read_text_file(dir + "/a.txt").size() == 41);
  REQUIRE(std::system(("gzip -k '" + dir + "/a.txt'").c_str()) == 0);
  CHECK(train::read_text_file(dir + "/a.txt.gz") == train::read_text_file(dir + "/a.txt"));
  const auto docs = train::read_documents({dir + "/a.txt"});
  REQUIRE(docs.size() == 2);
  CHECK(docs[0] == "first paragraph\nstill first\n");
  io::write_file_atomic(dir + "/empty.txt", "");
  CHECK_THROWS_WITH(train::read_text_file(dir + "/empty.txt"), Catch::Contains("empty"));
  io::write_file_atomic(dir + "/latin1.txt", "caf\xe9 au lait");
  CHECK_THROWS_WITH(train::read_text_file(dir + "/latin1.txt"), Catch::Contains("not UTF-8") &&
                                                                    Catch::Contains("0xE9") &&
                                                                    Catch::Contains("offset 3"));
  io::write_file_atomic(dir + "/fake.gz", "not gzip at all");
  CHECK_THROWS_AS(train::read_text_file(dir + "/fake.gz"), FormatError);
  CHECK_THROWS_AS(train::read_text_file(dir + "/missing.txt"), IoError);
}

TEST_CASE("datasets split by document and shift targets by one", "[train]") {
  Setup s;
  const auto& tr = s.data.tokens(train::Split::train);
  const auto& va = s.data.tokens(train::Split::validation);
  CHECK(va.size() > 0);
  CHECK(tr.size() > 3 * va.size());
  Generator g(3);
  const auto [x, y] = s.data.batch(train::Split::train, 4, 16, g);
  CHECK(x.shape() == Shape{4, 16});
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t t = 0; t + 1 < 16; ++t) CHECK(y(b, t) == x(b, t + 1));
  const auto [v1, w1] = s.data.sequential_batch(train::Split::validation, 2, 8, 1);
  const auto [v2, w2] = s.data.sequential_batch(train::Split::validation, 2, 8, 1);
  CHECK(v1.to_vector() == v2.to_vector());
  CHECK_THROWS_AS(s.data.batch(train::Split::validation, 1, 100000, g), ValueError);
  CHECK_THROWS_WITH(s.data.sequential_batch(train::Split::validation, 2, 8, -1),
                    Catch::Contains("index"));
  // Whatever the fraction, both splits keep at least one document.
  const std::vector<std::string> two = {"alpha beta gamma", "delta epsilon zeta"};
  const auto d = train::TokenDataset::build(two, s.tok, {.validation_fraction = 0.9});
  CHECK(!d.tokens(train::Split::train).empty());
  CHECK(!d.tokens(train::Split::validation).empty());
  CHECK_THROWS_WITH(train::TokenDataset::build({two[0]}, s.tok, {.validation_fraction = 0.1}),
                    Catch::Contains("at least 2 documents"));
}

TEST_CASE("training lowers the loss and writes a log and a checkpoint", "[train]") {
  Setup s;
  nn::TransformerLM model(s.cfg, 5);
  const std::string out = temp_dir("fit");
  train::Trainer trainer(model, s.data, small_options(40, out), &s.tok);
  const double before = trainer.evaluate();
  std::vector<double> losses;
  trainer.on_step = [&](const train::StepInfo& i) { losses.push_back(i.loss); };
  const auto r = trainer.fit();
  CHECK(!r.diverged);
  CHECK(r.steps == 40);
  REQUIRE(r.last_val_loss);
  CHECK(*r.last_val_loss < before - 1.0);
  CHECK(losses.back() < losses.front());
  const std::string log = io::read_file(out + "/log.csv");
  CHECK(log.rfind("step,loss,val_loss,val_ppl,grad_norm,lr,tokens_per_s\n", 0) == 0);
  CHECK(std::count(log.begin(), log.end(), '\n') == 41);
  const auto info = train::read_checkpoint_info(out + "/checkpoint.safetensors");
  CHECK(info.step == 40);
  CHECK(info.config == s.cfg);
  REQUIRE(info.tokenizer);
  CHECK(info.tokenizer->encode("the cat") == s.tok.encode("the cat"));
}

TEST_CASE("gradient accumulation runs the micro-batches and still learns", "[train]") {
  Setup s;
  nn::TransformerLM model(s.cfg, 5);
  auto opt = small_options(15, "");
  opt.batch_size = 2;
  opt.grad_accum = 3;
  train::Trainer trainer(model, s.data, opt, &s.tok);
  const double before = trainer.evaluate();
  int64_t tokens = 0;
  trainer.on_step = [&](const train::StepInfo& i) {
    tokens = static_cast<int64_t>(i.tokens_per_second > 0);
  };
  const auto r = trainer.fit();
  CHECK(tokens == 1);
  CHECK(*r.last_val_loss < before);
}

TEST_CASE("a run resumed from a checkpoint follows the uninterrupted loss curve exactly",
          "[train]") {
  Setup s;
  s.cfg.dropout = 0.1f;  // the dropout generator must resume too
  std::vector<double> straight, resumed;
  {
    nn::TransformerLM model(s.cfg, 9);
    train::Trainer t(model, s.data, small_options(12, ""), &s.tok);
    t.on_step = [&](const train::StepInfo& i) { straight.push_back(i.loss); };
    t.fit();
  }
  const std::string out = temp_dir("resume");
  {
    // The same run, interrupted right after its checkpoint at step 6.
    nn::TransformerLM model(s.cfg, 9);
    auto opt = small_options(12, out);
    opt.checkpoint_every = 6;
    train::Trainer t(model, s.data, opt, &s.tok);
    t.on_step = [](const train::StepInfo& i) {
      if (i.step == 7) throw std::runtime_error("interrupted");
    };
    CHECK_THROWS_WITH(t.fit(), "interrupted");
  }
  {
    nn::TransformerLM model(s.cfg, 1234);  // different init: the checkpoint must overwrite it
    train::Trainer t(model, s.data, small_options(12, ""), &s.tok);
    t.load_checkpoint(out + "/checkpoint.safetensors");
    CHECK(t.step() == 6);
    t.on_step = [&](const train::StepInfo& i) { resumed.push_back(i.loss); };
    t.fit();
  }
  REQUIRE(straight.size() == 12);
  REQUIRE(resumed.size() == 6);
  for (size_t i = 0; i < 6; ++i) CHECK(resumed[i] == straight[6 + i]);
}

TEST_CASE("a non-finite loss stops training with a message, the checkpoint stays good", "[train]") {
  Setup s;
  nn::TransformerLM model(s.cfg, 2);
  const std::string out = temp_dir("nan");
  auto opt = small_options(3, out);
  {
    train::Trainer t(model, s.data, opt, &s.tok);
    t.fit();
  }
  model.parameter("transformer.h.1.mlp.c_fc.weight").value()(0, 0) = std::nanf("");
  opt.max_steps = 10;
  train::Trainer t(model, s.data, opt, &s.tok);
  t.load_checkpoint(out + "/checkpoint.safetensors");  // restores good weights...
  model.parameter("transformer.h.1.mlp.c_fc.weight").value()(0, 0) =
      std::nanf("");  // ...break again
  const auto r = t.fit();
  CHECK(r.diverged);
  CHECK_THAT(r.message,
             Catch::Contains("step 4") && Catch::Contains("NaN") && Catch::Contains("checkpoint"));
  CHECK(train::read_checkpoint_info(out + "/checkpoint.safetensors").step == 3);
}

TEST_CASE("a Llama checkpoint with default fields loads back into its own model", "[train]") {
  Setup s;
  auto cfg = nn::TransformerConfig::llama(s.tok.vocab_size(), 32, 1, 32, 4, 0, 0);
  cfg.model_type.clear();
  cfg.dropout = 0.1f;
  nn::TransformerLM model(cfg, 3);
  const std::string out = temp_dir("llama");
  train::Trainer t(model, s.data, small_options(2, out), &s.tok);
  t.fit();
  CHECK(train::read_checkpoint_info(out + "/checkpoint.safetensors").config == cfg);
  nn::TransformerLM again(cfg, 4);
  train::Trainer t2(again, s.data, small_options(4, ""), &s.tok);
  t2.load_checkpoint(out + "/checkpoint.safetensors");
  CHECK(t2.step() == 2);
  CHECK(max_abs_diff(again.parameter("lm_head.weight").value(),
                     model.parameter("lm_head.weight").value()) == 0.0);
}

TEST_CASE("checkpoints of another model or damaged files are refused", "[train]") {
  Setup s;
  nn::TransformerLM model(s.cfg, 2);
  const std::string out = temp_dir("bad");
  train::Trainer t(model, s.data, small_options(1, out), &s.tok);
  t.fit();
  auto other_cfg = s.cfg;
  other_cfg.n_layers = 3;
  nn::TransformerLM other(other_cfg, 2);
  train::Trainer t2(other, s.data, small_options(1, ""), &s.tok);
  CHECK_THROWS_WITH(t2.load_checkpoint(out + "/checkpoint.safetensors"),
                    Catch::Contains("another model"));
  const std::string bytes = io::read_file(out + "/checkpoint.safetensors");
  io::write_file_atomic(out + "/cut.safetensors", bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_AS(t.load_checkpoint(out + "/cut.safetensors"), FormatError);
  // A checkpoint that lacks one optimizer moment is refused before anything changes.
  {
    const auto f = io::SafetensorsFile::open(out + "/checkpoint.safetensors");
    io::SafetensorsWriter w;
    for (const auto& info : f.tensors())
      if (info.name != "optimizer.v.transformer.ln_f.bias")
        w.add(info.name, f.load<float>(info.name));
    for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
    w.save(out + "/partial.safetensors");
  }
  model.parameter("transformer.wte.weight").value().fill(0.5f);
  CHECK_THROWS_WITH(t.load_checkpoint(out + "/partial.safetensors"),
                    Catch::Contains("transformer.ln_f.bias"));
  const auto& wte = model.parameter("transformer.wte.weight").value();
  CHECK(max_abs_diff(wte, Tensor<float>::full(wte.shape(), 0.5f)) == 0.0);  // untouched
  train::TrainerOptions bad = small_options(1, "");
  bad.context = 64;
  CHECK_THROWS_WITH(train::Trainer(model, s.data, bad), Catch::Contains("context 64"));
}

TEST_CASE("a trainer reports progress to its callback and runs on the pool it is given",
          "[train]") {
  Setup s;
  nn::TransformerLM model(s.cfg, 5);
  auto opt = small_options(6, "");
  opt.progress = true;
  train::Trainer trainer(model, s.data, opt, &s.tok);
  ThreadPool pool(1);
  trainer.pool = &pool;
  std::vector<ProgressEvent> events;  // (their string views are valid only during the call)
  std::vector<std::string> details, labels;
  trainer.on_progress = [&](const ProgressEvent& e) {
    events.push_back(e);
    details.emplace_back(e.detail);
    labels.emplace_back(e.label);
  };
  ThreadPool* seen = nullptr;
  trainer.on_step = [&](const train::StepInfo&) { seen = &thread_pool(); };
  trainer.fit();
  CHECK(seen == &pool);
  REQUIRE(events.size() == 7);  // one per step, then the final one
  CHECK(labels.front() == "train");
  CHECK(events.front().total == 6);
  CHECK(events[5].done == 6);
  CHECK(events.back().finished);
  CHECK(details[0].find("loss ") == 0);
}

TEST_CASE("trainer options missing from an older checkpoint take their defaults", "[train]") {
  const train::TrainerOptions defaults;
  io::Json j = io::Json::object();
  j.set("batch_size", io::Json(int64_t{3}));
  j.set("seed", io::Json(int64_t{42}));
  const auto o = train::TrainerOptions::from_json(j);
  CHECK(o.batch_size == 3);
  CHECK(o.seed == 42);
  CHECK(o.lr == defaults.lr);
  CHECK(o.max_steps == defaults.max_steps);
  j.set("lr", io::Json("fast"));
  CHECK_THROWS_WITH(train::TrainerOptions::from_json(j), Catch::Contains("lr"));
  j.set("lr", io::Json(0.1));
  j.set("seed", io::Json(-1.5));
  CHECK_THROWS_AS(train::TrainerOptions::from_json(j), FormatError);  // not a scholar error before
}

TEST_CASE("a checkpoint holds any tokenizer: SentencePiece round trip through a checkpoint",
          "[train]") {
  const auto spm = text::SpmTokenizer::from_gguf(
      io::GgufFile::open(std::string(SCHOLAR_TEST_DATA) + "/llama_cpp/spm-vocab.gguf"));
  const auto data = train::TokenDataset::build(
      train::split_documents(test::tiny_corpus()), spm,
      {.validation_fraction = 0.2, .seed = 1, .eos_id = spm.special_tokens().eos});
  auto cfg = nn::TransformerConfig::llama(spm.vocab_size(), 32, 1, 32, 4, 2, 64);
  nn::TransformerLM model(cfg, 5);
  const std::string out = temp_dir("spm");
  train::Trainer trainer(model, data, small_options(2, out), &spm);
  trainer.fit();
  const auto info = train::read_checkpoint_info(out + "/checkpoint.safetensors");
  REQUIRE(info.tokenizer);
  CHECK(info.tokenizer->kind() == "spm");
  CHECK(info.tokenizer->fingerprint() == spm.fingerprint());
  CHECK(info.tokenizer->special_tokens() == spm.special_tokens());
  CHECK(info.tokenizer->encode("the cat sat") == spm.encode("the cat sat"));
  const auto m = infer::Model::load(out + "/checkpoint.safetensors");
  CHECK(m->tokenizer().fingerprint() == spm.fingerprint());
  CHECK(m->config().eos_id == spm.special_tokens().eos);
}

TEST_CASE("perplexity covers every fixed window once, in evaluation mode", "[train]") {
  Setup s;
  nn::TransformerLM model(s.cfg, 3);
  const int64_t T = 16, n = s.data.window_count(train::Split::validation, T);
  REQUIRE(n > 3);
  // By hand: the mean loss over all windows, taken one at a time.
  double total = 0;
  for (int64_t w = 0; w < n; ++w) {
    const train::Batch b = s.data.windows_at(train::Split::validation, T, {w});
    total += model.loss(b.inputs, b.targets).value().item();
  }
  CHECK(model.training());
  const double ppl = train::perplexity(model, s.data, train::Split::validation, T, 3);
  CHECK(std::fabs(ppl - std::exp(total / static_cast<double>(n))) < 1e-4 * ppl);
  CHECK(model.training());  // restored
  CHECK_THROWS_WITH(train::perplexity(model, s.data, train::Split::validation, 1 << 20),
                    Catch::Contains("fewer than one window"));
  CHECK_THROWS_WITH(train::perplexity(model, s.data, train::Split::validation, T, 0),
                    Catch::Contains("batch must be >= 1"));
}

TEST_CASE("one process: the single-process communicator, the trainer unchanged", "[train]") {
  train::Communicator& one = train::single_process();
  CHECK(one.rank() == 0);
  CHECK(one.size() == 1);
  std::vector<float> v{1.5f, 2.5f};
  one.allreduce_sum(v);
  one.broadcast(v, 0);
  CHECK(v == std::vector<float>{1.5f, 2.5f});
  CHECK(one.allgather("x") == std::vector<std::string>{"x"});
  CHECK_THROWS_AS(one.broadcast(v, 1), ValueError);
  CHECK_THROWS_AS(one.set_timeout_seconds(0), ValueError);
  if (!train::mpi_available())
    CHECK_THROWS_WITH(train::mpi_world(), Catch::Contains("SCHOLAR_MPI=ON"));
  // A trainer given the single-process communicator trains exactly as one given none.
  Setup s;
  std::vector<double> a, b;
  for (auto* losses : {&a, &b}) {
    nn::TransformerLM m(s.cfg, 1);
    train::Trainer t(m, s.data, small_options(6, ""), &s.tok);
    if (losses == &b) {
      t.communicator = &one;
      t.distributed.shard_optimizer = true;  // nothing to shard with one rank
    }
    t.on_step = [&](const train::StepInfo& i) { losses->push_back(i.loss); };
    t.fit();
    CHECK(t.distributed_summary() == "single process");
  }
  CHECK(a == b);
}

TEST_CASE("sharded optimizer state: the partition balances parameters over ranks", "[train]") {
  using train::detail::partition_parameters;
  const std::vector<int64_t> sizes{100, 10, 60, 50, 40, 1};
  const auto owner = partition_parameters(sizes, 2);
  int64_t load[2] = {0, 0};
  for (size_t i = 0; i < sizes.size(); ++i) load[owner[i]] += sizes[i];
  // Largest first, each to the rank with the least so far: 100 | 60, 50 | 40 | 10, 1.
  CHECK(owner == std::vector<int>{0, 1, 1, 1, 0, 1});
  CHECK(load[0] == 140);
  CHECK(load[1] == 121);
  CHECK(partition_parameters(sizes, 1) == std::vector<int>(sizes.size(), 0));
  CHECK(partition_parameters({}, 3).empty());
  CHECK_THROWS_AS(partition_parameters(sizes, 0), ValueError);
}
