// Data-parallel training over MPI: run under `mpiexec -np 2` (tests/CMakeLists.txt does). Each
// case trains with the two ranks and, on every rank, the same run as one process with twice the
// batch, and compares them step by step: plain training, distillation, LoRA, a sharded optimizer,
// checkpoints across world sizes, and the checks that ranks agree.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "scholar/distill/distill.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/nn/lora.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/train/communicator.hpp"
#include "scholar/train/instruct.hpp"
#include "scholar/train/trainer.hpp"
#include "support.hpp"
#include "train/data_parallel.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

train::Communicator* g_world = nullptr;

train::Communicator& world() {
  return *g_world;
}

struct Setup {
  text::BpeTokenizer tok;
  train::TokenDataset data;
  nn::TransformerConfig cfg;
  explicit Setup(int variant = 0) {
    tok = text::BpeTokenizer::train(test::tiny_corpus(),
                                    {.vocab_size = 320, .special_tokens = {"<|endoftext|>"}});
    data = train::TokenDataset::build(
        train::split_documents(test::tiny_corpus(variant)), tok,
        {.validation_fraction = 0.2, .seed = 1, .eos_id = *tok.find("<|endoftext|>")});
    cfg = nn::TransformerConfig::gpt2(tok.vocab_size(), 32, 2, 32, 4);
  }
};

train::TrainerOptions options(int64_t batch, int64_t steps) {
  train::TrainerOptions o;
  o.batch_size = batch;
  o.context = 16;
  o.max_steps = steps;
  o.lr = 3e-3f;
  o.min_lr = 3e-4f;
  o.warmup_steps = 2;
  o.eval_every = 5;
  o.eval_batches = 3;
  o.progress = false;
  o.seed = 11;
  return o;
}

struct Run {
  std::vector<double> loss, val;
  std::vector<double> comm_seconds;
};

// Trains `model` (on `comm`, or as one process) and records every step.
Run fit(nn::TransformerLM& model, const Setup& s, const train::TrainerOptions& o,
        train::Communicator* comm, train::Objective* objective = nullptr,
        const train::DistributedOptions& d = {}, train::Trainer** keep = nullptr) {
  Run run;
  auto t = std::make_unique<train::Trainer>(model, s.data, o, &s.tok);
  t->communicator = comm;
  t->distributed = d;
  t->objective = objective;
  t->on_step = [&](const train::StepInfo& i) {
    run.loss.push_back(i.loss);
    if (i.val_loss) run.val.push_back(*i.val_loss);
    run.comm_seconds.push_back(i.comm_seconds);
  };
  t->fit();
  if (keep) *keep = t.release();
  return run;
}

void check_same(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  INFO("rank " << world().rank() << ": largest difference " << worst);
  CHECK(worst <= tol);
}

double max_weight_diff(const nn::TransformerLM& a, const nn::TransformerLM& b) {
  double worst = 0;
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    worst =
        std::max(worst, static_cast<double>(max_abs_diff(pa[i].var.value(), pb[i].var.value())));
  return worst;
}

// Moves one element of a parameter (on this rank only).
void bump(nn::TransformerLM& m, const std::string& name, float by) {
  Tensor<float> v = m.parameter(name).value();
  v.data()[3] += by;
}

std::string shared_dir(const std::string& name) {
  // The same directory on every rank (rank 0's process id), made by rank 0 once every rank is
  // done with what an earlier run of the case left there.
  world().barrier();
  std::vector<float> pid{static_cast<float>(::getpid() % 1000000)};
  world().broadcast(pid, 0);
  const fs::path dir = fs::temp_directory_path() /
                       ("scholar_test_distributed_" + std::to_string(static_cast<int>(pid[0]))) /
                       name;
  if (world().rank() == 0) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  world().barrier();
  return dir.string();
}

}  // namespace

TEST_CASE("the run has two ranks", "[distributed]") {
  REQUIRE(world().size() == 2);
  CHECK(train::mpi_available());
  CHECK(train::launched_by_mpi());
  CHECK(world().describe().find("2 ranks") != std::string::npos);
}

TEST_CASE("collectives: sums, broadcasts, strings, point to point", "[distributed]") {
  const int r = world().rank();
  std::vector<float> f{1.0f + static_cast<float>(r), 10.0f};
  world().allreduce_sum(f);
  CHECK(f == std::vector<float>{3.0f, 20.0f});
  std::vector<double> d{0.5 * r};
  world().allreduce_sum(d);
  CHECK(d[0] == 0.5);
  std::vector<float> b{static_cast<float>(r + 7)};
  world().broadcast(b, 1);
  CHECK(b[0] == 8.0f);
  const auto all = world().allgather(std::string(static_cast<size_t>(r + 1), 'a' + r));
  CHECK(all == std::vector<std::string>{"a", "bb"});
  std::vector<float> msg{4.0f, 5.0f};
  if (r == 1) world().send(msg, 0);
  if (r == 0) {
    std::vector<float> got(2);
    world().recv(got, 1);
    CHECK(got == msg);
  }
  CHECK_THROWS_AS(world().broadcast(b, 2), ValueError);
}

TEST_CASE("2 ranks of batch b train as 1 process of batch 2b", "[distributed]") {
  Setup s;
  // Rank 1 starts from other weights: the trainer begins with rank 0's.
  nn::TransformerLM ranked(s.cfg, 1 + static_cast<uint64_t>(world().rank()));
  nn::TransformerLM single(s.cfg, 1);
  const Run a = fit(ranked, s, options(2, 20), &world());
  const Run b = fit(single, s, options(4, 20), nullptr);
  check_same(a.loss, b.loss, 1e-5);
  check_same(a.val, b.val, 1e-5);
  CHECK(a.loss.back() < a.loss.front() - 0.5);  // it learns
  CHECK(max_weight_diff(ranked, single) < 1e-4);

  SECTION("gradient accumulation, many small buckets, and no overlap") {
    for (const bool overlap : {true, false}) {
      nn::TransformerLM r2(s.cfg, 1), s2(s.cfg, 1);
      auto o = options(1, 12);
      o.grad_accum = 2;
      auto o1 = options(2, 12);
      o1.grad_accum = 2;
      const Run x = fit(r2, s, o, &world(), nullptr,
                        {.bucket_bytes = 4096, .overlap = overlap, .check_every = 3});
      const Run y = fit(s2, s, o1, nullptr);
      check_same(x.loss, y.loss, 1e-5);
    }
  }
}

TEST_CASE("distillation over 2 ranks matches one process", "[distributed]") {
  Setup s;
  nn::TransformerLM teacher_model(nn::TransformerConfig::gpt2(s.tok.vocab_size(), 32, 2, 48, 4), 5);
  train::ModuleTeacher teacher(teacher_model, &s.tok);
  distill::LogitDistillation kd(teacher, {.temperature = 2.0f, .alpha = 0.5f});
  nn::TransformerLM ranked(s.cfg, 2), single(s.cfg, 2);
  const Run a = fit(ranked, s, options(2, 20), &world(), &kd);
  const Run b = fit(single, s, options(4, 20), nullptr, &kd);
  check_same(a.loss, b.loss, 1e-5);
}

TEST_CASE("distillation from a soft-label cache over 2 ranks matches one process",
          "[distributed]") {
  // Fixed windows: each rank's rows carry their window numbers, by which the cache is read.
  Setup s;
  nn::TransformerLM teacher_model(nn::TransformerConfig::gpt2(s.tok.vocab_size(), 32, 2, 48, 4), 5);
  train::ModuleTeacher teacher(teacher_model, &s.tok);
  const std::string path = shared_dir("cache") + "/labels.slc";
  if (world().rank() == 0)
    distill::SoftLabelCache::build(teacher, s.data, train::Split::train, 16, path,
                                   {.k = 8, .temperature = 2.0f, .batch = 4, .progress = false});
  world().barrier();
  const auto cache = distill::SoftLabelCache::open(path);
  distill::CachedDistillation kd(cache, s.data, {.alpha = 0.7f});
  nn::TransformerLM ranked(s.cfg, 7), single(s.cfg, 7);
  const Run a = fit(ranked, s, options(2, 20), &world(), &kd);
  const Run b = fit(single, s, options(4, 20), nullptr, &kd);
  check_same(a.loss, b.loss, 1e-5);
}

TEST_CASE("LoRA over 2 ranks matches one process", "[distributed]") {
  Setup s;
  auto adapted = [&] {
    auto m = std::make_unique<nn::TransformerLM>(s.cfg, 3);
    nn::LoraConfig lc;
    lc.r = 4;
    lc.lora_alpha = 8;
    lc.target_modules = {"all-linear"};
    nn::apply_lora(*m, lc);
    return m;
  };
  auto ranked = adapted(), single = adapted();
  auto o = options(2, 20), o1 = options(4, 20);
  o.lr = o1.lr = 1e-2f;
  const Run a = fit(*ranked, s, o, &world());
  const Run b = fit(*single, s, o1, nullptr);
  check_same(a.loss, b.loss, 1e-5);
  CHECK(a.loss.back() < a.loss.front());

  SECTION("a different frozen base on one rank is refused on every rank") {
    auto other = adapted();
    if (world().rank() == 1) bump(*other, "transformer.wte.weight", 1.0f);
    CHECK_THROWS_WITH(fit(*other, s, o, &world()),
                      Catch::Contains("frozen weights") && Catch::Contains("rank 1 of 2"));
  }
  SECTION("so is a different quantized base (QLoRA), which is not a parameter") {
    auto q = adapted();
    if (world().rank() == 1) bump(*q, "transformer.h.1.mlp.c_fc.weight", 1.0f);
    nn::quantize_linears(*q, WeightType::q8_0, ".*");
    CHECK_THROWS_WITH(fit(*q, s, o, &world()),
                      Catch::Contains("frozen weights") && Catch::Contains("rank 1 of 2"));
  }
}

TEST_CASE("instruction tuning over 2 ranks matches one process, padded or packed",
          "[distributed]") {
  // Rows hold different numbers of reply tokens: each rank's loss is weighted by its share of
  // the batch's targets, so the average over ranks is the mean over all of them.
  Setup s;
  const char* questions[] = {"the cat", "a dog", "birds", "the sun", "rain"};
  const char* answers[] = {"sat on the mat", "ran in the park", "sing in the morning",
                           "rises in the east", "falls on the green hills number 3"};
  std::vector<train::Conversation> ex;
  for (int i = 0; i < 40; ++i)
    ex.push_back({{{"user", std::string("what did ") + questions[i % 5] + " do?"},
                   {"assistant", std::string(answers[(i * 3) % 5]) + (i % 2 ? " again" : "")}},
                  i + 1});
  for (const bool pack : {false, true}) {
    INFO("pack " << pack);
    train::InstructionDataset::Options io;
    io.max_length = 64;
    io.chat_template = "plain";
    io.pack = pack;
    io.validation_fraction = 0.2;
    const auto sft = train::InstructionDataset::build(ex, s.tok, io);
    std::vector<double> ranked_losses, single_losses;
    for (auto* losses : {&ranked_losses, &single_losses}) {
      auto cfg = s.cfg;
      cfg.context_length = 64;
      nn::TransformerLM m(cfg, 6);
      auto o = options(losses == &ranked_losses ? 2 : 4, 15);
      o.context = 64;
      train::Trainer t(m, sft, o, &s.tok);
      if (losses == &ranked_losses) t.communicator = &world();
      t.on_step = [&](const train::StepInfo& i) { losses->push_back(i.loss); };
      t.fit();
    }
    check_same(ranked_losses, single_losses, 1e-5);
  }
}

TEST_CASE("sharded optimizer state: same losses, half the state, checkpoints across world sizes",
          "[distributed]") {
  Setup s;
  const std::string dir = shared_dir("zero");
  nn::TransformerLM plain(s.cfg, 4), sharded(s.cfg, 4);
  const Run a = fit(plain, s, options(2, 10), &world());
  train::Trainer* kept = nullptr;
  auto o = options(2, 10);
  o.out_dir = dir;
  const Run b =
      fit(sharded, s, o, &world(), nullptr, {.shard_optimizer = true, .check_every = 2}, &kept);
  std::unique_ptr<train::Trainer> t(kept);
  check_same(a.loss, b.loss, 1e-6);
  const auto full =
      static_cast<double>(train::Trainer(plain, s.data, options(2, 1)).optimizer_state_bytes());
  const auto mine = static_cast<double>(t->optimizer_state_bytes());
  INFO(t->distributed_summary());
  CHECK(mine < 0.6 * full);
  CHECK(mine > 0.4 * full);
  CHECK(t->distributed_summary().find("sharded") != std::string::npos);
  REQUIRE(fs::exists(dir + "/checkpoint.safetensors"));

  // The reference: the same 10 steps as one process, checkpointed, resumed to step 20.
  std::vector<double> ref;
  {
    nn::TransformerLM m(s.cfg, 4);
    train::Trainer first(m, s.data, options(4, 10), &s.tok);
    first.fit();
    first.save_checkpoint(dir + "/one_" + std::to_string(world().rank()) + ".safetensors");
    nn::TransformerLM m2(s.cfg, 4);
    train::Trainer second(m2, s.data, options(4, 20), &s.tok);
    second.load_checkpoint(dir + "/one_" + std::to_string(world().rank()) + ".safetensors");
    second.on_step = [&](const train::StepInfo& i) { ref.push_back(i.loss); };
    second.fit();
  }

  SECTION("one process resumes the sharded run's checkpoint") {
    nn::TransformerLM m(s.cfg, 99);
    train::Trainer r(m, s.data, options(4, 20), &s.tok);
    r.load_checkpoint(dir + "/checkpoint.safetensors");
    CHECK(r.step() == 10);
    std::vector<double> losses;
    r.on_step = [&](const train::StepInfo& i) { losses.push_back(i.loss); };
    r.fit();
    check_same(losses, ref, 1e-5);
  }
  SECTION("two sharded ranks resume a one-process checkpoint") {
    const std::string one = dir + "/one_0.safetensors";
    nn::TransformerLM m2(s.cfg, 5);
    train::Trainer r(m2, s.data, options(2, 20), &s.tok);
    r.communicator = &world();
    r.distributed.shard_optimizer = true;
    r.load_checkpoint(one);
    std::vector<double> losses;
    r.on_step = [&](const train::StepInfo& i) { losses.push_back(i.loss); };
    r.fit();
    check_same(losses, ref, 1e-5);
  }
  SECTION("a checkpoint that one rank cannot read stops every rank") {
    nn::TransformerLM m(s.cfg, 4);
    train::Trainer r(m, s.data, options(2, 20), &s.tok);
    r.communicator = &world();
    const std::string path =
        world().rank() == 1 ? dir + "/missing.safetensors" : dir + "/checkpoint.safetensors";
    CHECK_THROWS_WITH(r.load_checkpoint(path), Catch::Contains("missing.safetensors"));
    CHECK(r.step() == 0);  // nothing changed on rank 0 either
  }
  SECTION("a checkpoint without some optimizer state is refused by every sharded rank") {
    const std::string cut = dir + "/no_moments.safetensors";
    if (world().rank() == 0) {
      const auto f = io::SafetensorsFile::open(dir + "/checkpoint.safetensors");
      io::SafetensorsWriter w;
      for (const auto& t : f.tensors())
        if (t.name != "optimizer.m.transformer.h.1.mlp.c_fc.weight")
          w.add(t.name, f.load<float>(t.name));
      for (const auto& [k, v] : f.metadata()) w.set_metadata(k, v);
      w.save(cut);
    }
    world().barrier();
    nn::TransformerLM m(s.cfg, 4);
    train::Trainer r(m, s.data, options(2, 20), &s.tok);
    r.communicator = &world();
    r.distributed.shard_optimizer = true;
    // Only the rank that owns the parameter needs its moments; the other names that rank.
    CHECK_THROWS_WITH(r.load_checkpoint(cut),
                      Catch::Contains("no optimizer state 'm.transformer.h.1.mlp.c_fc.weight'"));
    CHECK(r.step() == 0);
  }
}

TEST_CASE("ranks that disagree on the config, data or options are refused at the start",
          "[distributed]") {
  const int r = world().rank();
  Setup s, other(r == 1 ? 2 : 0);
  nn::TransformerLM m(s.cfg, 1);
  CHECK_THROWS_WITH(fit(m, other, options(2, 2), &world()),
                    Catch::Contains("training data") && Catch::Contains("rank 1 of 2"));
  auto cfg = s.cfg;
  if (r == 1) cfg.n_layers = 1;
  nn::TransformerLM m2(cfg, 1);
  CHECK_THROWS_WITH(fit(m2, s, options(2, 2), &world()), Catch::Contains("model config"));
  nn::TransformerLM m3(s.cfg, 1);
  auto o = options(2, 2);
  if (r == 1) o.lr = 1e-3f;
  CHECK_THROWS_WITH(fit(m3, s, o, &world()), Catch::Contains("trainer options"));
  // Only rank 0 writes: out_dir may differ.
  nn::TransformerLM m4(s.cfg, 1);
  auto o4 = options(2, 2);
  o4.out_dir = shared_dir("rank_dirs") + "/r" + std::to_string(r);
  fit(m4, s, o4, &world());
  CHECK(fs::exists(o4.out_dir + "/log.csv") == (r == 0));
}

TEST_CASE("a checkpoint rank 0 cannot write is an error on every rank", "[distributed]") {
  Setup s;
  nn::TransformerLM m(s.cfg, 1);
  train::Trainer t(m, s.data, options(2, 2), &s.tok);
  t.communicator = &world();
  const std::string path = shared_dir("unwritable") + "/no/such/dir/checkpoint.safetensors";
  if (world().rank() == 0)
    CHECK_THROWS_AS(t.save_checkpoint(path), IoError);
  else
    CHECK_THROWS_WITH(t.save_checkpoint(path), Catch::Contains("rank 0 could not write"));
  t.save_checkpoint(shared_dir("writable") + "/checkpoint.safetensors");  // still usable
}

TEST_CASE("weights that drift apart are found by the periodic check", "[distributed]") {
  Setup s;
  nn::TransformerLM m(s.cfg, 1);
  train::Trainer t(m, s.data, options(2, 6), &s.tok);
  t.communicator = &world();
  t.distributed.check_every = 3;
  t.on_step = [&](const train::StepInfo& i) {
    if (i.step == 2 && world().rank() == 1) bump(m, "transformer.h.0.mlp.c_fc.weight", 0.5f);
  };
  CHECK_THROWS_WITH(t.fit(), Catch::Contains("after step 3") && Catch::Contains("differ"));
}

TEST_CASE("the gradient hook fires once per parameter when its gradient is final",
          "[distributed]") {
  // Checked beside the reducer that relies on it: each trainable parameter of a step is reported
  // exactly once, and its gradient then equals the gradient at the end of backward.
  Setup s;
  nn::TransformerLM m(s.cfg, 1);
  Generator gen(3);
  const train::Batch b = s.data.sample(train::Split::train, 2, 16, gen);
  std::vector<std::pair<const autograd::VarImpl*, Tensor<float>>> seen;
  {
    autograd::GradReadyHook hook(
        [&](const autograd::Var& v) { seen.emplace_back(v.impl(), v.grad().clone()); });
    m.loss(b.inputs, b.targets).backward();
  }
  const auto params = m.parameters();
  CHECK(seen.size() == params.size());
  for (const auto& p : params) {
    int count = 0;
    for (const auto& [impl, g] : seen)
      if (impl == p.impl()) {
        ++count;
        CHECK(max_abs_diff(g, p.grad()) == 0.0f);
      }
    CHECK(count == 1);
  }
}

int main(int argc, char** argv) {
  auto comm = train::mpi_world();
  comm->set_timeout_seconds(120);
  g_world = comm.get();
  const int result = Catch::Session().run(argc, argv);
  // Every rank must agree that the suite passed.
  std::vector<double> failed{result != 0 ? 1.0 : 0.0};
  comm->allreduce_sum(failed);
  return failed[0] > 0 ? 1 : 0;
}
