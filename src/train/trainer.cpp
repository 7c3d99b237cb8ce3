// The training loop, evaluation, logs and checkpoints.
#include "scholar/train/trainer.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>

#include <unordered_set>

#include "core/digest.hpp"
#include "scholar/error.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/parallel.hpp"
#include "scholar/progress.hpp"
#include "train/data_parallel.hpp"

namespace scholar::train {

namespace {

constexpr const char* kFormat = "scholar-checkpoint/1";

io::Json gen_state_json(const Generator& g) {
  const Generator::State s = g.state();
  io::Json j = io::Json::object();
  j.set("seed", io::Json(s.seed));
  j.set("counter", io::Json(s.counter));
  j.set("used", io::Json(static_cast<int64_t>(s.used)));
  return j;
}

// Decimal digits only, no overflow; FormatError otherwise.
uint64_t parse_u64(const std::string& text, const std::string& what) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    fail<FormatError>(what, ": '", text, "' is not an unsigned integer");
  return v;
}

int64_t parse_step(const std::string& text, const std::string& path) {
  const uint64_t v = parse_u64(text, path + ": step");
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail<FormatError>(path, ": step ", text, " is out of range");
  return static_cast<int64_t>(v);
}

// Rank r's dropout generator: the saved (rank 0) stream's seed mixed with r, at the same position
// (every rank draws as many numbers per step). Rank 0 is the saved stream itself.
Generator::State for_rank(Generator::State s, int rank) {
  s.seed ^= static_cast<uint64_t>(rank) * 0xD1B54A32D192ED03ull;
  return s;
}

// Rows [begin, end) of a batch.
Batch rows_of(const Batch& b, int64_t begin, int64_t end) {
  Batch out;
  out.inputs = b.inputs.slice(0, begin, end).contiguous();
  out.targets = b.targets.slice(0, begin, end).contiguous();
  if (b.segments.defined()) out.segments = b.segments.slice(0, begin, end).contiguous();
  if (!b.windows.empty()) out.windows.assign(b.windows.begin() + begin, b.windows.begin() + end);
  return out;
}

optim::AdamW::Options adamw_options(const TrainerOptions& o) {
  return {
      .lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = 1e-8f, .weight_decay = o.weight_decay};
}

const Tensor<float>* find_state(const optim::NamedTensors& state, const std::string& name) {
  for (const auto& [n, t] : state)
    if (n == name) return &t;
  return nullptr;
}

Generator::State gen_state_from(const io::Json& j) {
  Generator::State s;
  s.seed = parse_u64(j.at("seed", "rng state").dump(), "rng state: seed");
  s.counter = parse_u64(j.at("counter", "rng state").dump(), "rng state: counter");
  const int64_t used = j.at("used", "rng state").as_int("rng state: used");
  if (used < 0 || used > 4) fail<FormatError>("rng state: used ", used, " is outside [0, 4]");
  s.used = static_cast<uint32_t>(used);
  return s;
}

}  // namespace

std::shared_ptr<text::Tokenizer> read_tokenizer(const io::SafetensorsFile& f) {
  const auto it = f.metadata().find("tokenizer");
  if (it == f.metadata().end()) return nullptr;
  const std::string where = f.path() + " tokenizer";
  auto tok = text::tokenizer_from_json(io::Json::parse(it->second, where), where);
  if (auto sp = f.metadata().find("special_tokens"); sp != f.metadata().end()) {
    // Checkpoints before format 1's special_tokens key keep the guessed ids.
    const std::string sw = f.path() + " special_tokens";
    text::set_special_tokens_from_file(
        *tok, text::special_tokens_from_json(io::Json::parse(sp->second, sw), sw), sw);
  }
  return tok;
}

namespace {

const std::string& meta(const io::SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end())
    fail<FormatError>(f.path(), ": not a scholar checkpoint (no '", key, "' metadata)");
  return it->second;
}

}  // namespace

// --- options -------------------------------------------------------------------------------------

io::Json TrainerOptions::to_json() const {
  using io::Json;
  Json j = Json::object();
  j.set("batch_size", Json(batch_size));
  j.set("context", Json(context));
  j.set("grad_accum", Json(grad_accum));
  j.set("max_steps", Json(max_steps));
  j.set("lr", Json(static_cast<double>(lr)));
  j.set("min_lr", Json(static_cast<double>(min_lr)));
  j.set("warmup_steps", Json(warmup_steps));
  j.set("weight_decay", Json(static_cast<double>(weight_decay)));
  j.set("beta1", Json(static_cast<double>(beta1)));
  j.set("beta2", Json(static_cast<double>(beta2)));
  j.set("grad_clip", Json(static_cast<double>(grad_clip)));
  j.set("eval_every", Json(eval_every));
  j.set("eval_batches", Json(eval_batches));
  j.set("checkpoint_every", Json(checkpoint_every));
  j.set("out_dir", Json(out_dir));
  j.set("seed", Json(seed));
  return j;
}

TrainerOptions TrainerOptions::from_json(const io::Json& j) {
  // A key that is missing (written before the option existed) keeps its default, so checkpoints
  // stay readable as options are added; a key of the wrong type is a FormatError.
  TrainerOptions o;
  const std::string where = "trainer options";
  auto i = [&](const char* k, int64_t& v) {
    if (const io::Json* x = j.find(k)) v = x->as_int(where + ": " + k);
  };
  auto f = [&](const char* k, float& v) {
    if (const io::Json* x = j.find(k)) v = static_cast<float>(x->as_double(where + ": " + k));
  };
  i("batch_size", o.batch_size);
  i("context", o.context);
  i("grad_accum", o.grad_accum);
  i("max_steps", o.max_steps);
  f("lr", o.lr);
  f("min_lr", o.min_lr);
  i("warmup_steps", o.warmup_steps);
  f("weight_decay", o.weight_decay);
  f("beta1", o.beta1);
  f("beta2", o.beta2);
  f("grad_clip", o.grad_clip);
  i("eval_every", o.eval_every);
  i("eval_batches", o.eval_batches);
  i("checkpoint_every", o.checkpoint_every);
  if (const io::Json* x = j.find("out_dir")) o.out_dir = x->as_string(where + ": out_dir");
  if (const io::Json* x = j.find("seed")) o.seed = parse_u64(x->dump(), where + ": seed");
  return o;
}

void TrainerOptions::validate() const {
  auto positive = [](const char* name, int64_t v) {
    if (v < 1) fail<ValueError>("TrainerOptions: ", name, " must be positive, got ", v);
  };
  positive("batch_size", batch_size);
  positive("context", context);
  positive("grad_accum", grad_accum);
  if (max_steps < 0) fail<ValueError>("TrainerOptions: max_steps must be >= 0, got ", max_steps);
  if (!(lr > 0) || !std::isfinite(lr))
    fail<ValueError>("TrainerOptions: lr must be positive, got ", lr);
  if (!(min_lr >= 0) || min_lr > lr)
    fail<ValueError>("TrainerOptions: min_lr must be in [0, lr], got ", min_lr);
  if (warmup_steps < 0)
    fail<ValueError>("TrainerOptions: warmup_steps must be >= 0, got ", warmup_steps);
  if (!(grad_clip >= 0))
    fail<ValueError>("TrainerOptions: grad_clip must be >= 0, got ", grad_clip);
  if (eval_every < 0 || checkpoint_every < 0 || eval_batches < 1)
    fail<ValueError>(
        "TrainerOptions: eval_every and checkpoint_every must be >= 0 and eval_batches >= 1");
}

// --- trainer -------------------------------------------------------------------------------------

Trainer::Trainer(nn::TransformerLM& model, const Dataset& data, TrainerOptions options,
                 const text::Tokenizer* tokenizer)
    : model_(model),
      data_(data),
      opt_(std::move(options)),
      tokenizer_(tokenizer),
      data_gen_(opt_.seed),
      dropout_gen_(opt_.seed ^ 0x9E3779B97F4A7C15ull) {
  opt_.validate();
  if (opt_.context > model.config().context_length)
    fail<ValueError>("Trainer: context ", opt_.context, " exceeds the model's context length ",
                     model.config().context_length);
  if (data.max_token() > model.config().vocab_size)
    fail<ValueError>("Trainer: the data holds token id ", data.max_token() - 1,
                     ", outside the model's vocabulary of ", model.config().vocab_size);
  // The optimizer and its moments come at first use (optimizer()), once it is known whether this
  // rank keeps all of them or, with a sharded data-parallel run, its share.
}

Trainer::~Trainer() = default;

// --- data-parallel -------------------------------------------------------------------------------

struct Trainer::Parallel {
  std::vector<nn::Var> trainable;  // each once, in registration order
  std::vector<std::string> names;
  std::unique_ptr<detail::GradientReducer> reducer;
  std::vector<int> owner;  // per trainable parameter, with a sharded optimizer
  int64_t check_every = 0;
  int64_t full_state_bytes = 0;
};

void Trainer::setup_parallel() {
  Communicator& c = comm();
  if (parallel_ || c.size() == 1) return;
  if (distributed.bucket_bytes < 1)
    fail<ValueError>("DistributedOptions: bucket_bytes must be positive, got ",
                     distributed.bucket_bytes);
  if (distributed.check_every < -1)
    fail<ValueError>("DistributedOptions: check_every must be >= -1, got ",
                     distributed.check_every);
  auto P = std::make_unique<Parallel>();
  std::unordered_set<const autograd::VarImpl*> seen;
  scholar::detail::Digest frozen, layout;
  for (const auto& p : model_.named_parameters()) {
    if (!seen.insert(p.var.impl()).second) continue;
    if (p.var.requires_grad()) {
      P->trainable.push_back(p.var);
      P->names.push_back(p.name);
      layout.text(p.name);
      layout.text(p.var.shape().str());
    } else {
      frozen.text(p.name);
      const Tensor<float> v = p.var.value().contiguous();
      frozen.bytes(v.data(), static_cast<size_t>(v.numel()) * sizeof(float));
    }
  }
  detail::digest_compact_weights(frozen, model_);
  // Every rank must run the same training: compare fingerprints before any gradient is averaged.
  // The comparison is made on every rank from the same gathered strings, so all throw alike.
  TrainerOptions same = opt_;
  same.out_dir.clear();
  same.progress = true;
  LmObjective lm;
  const Objective& obj = objective ? *objective : lm;
  auto digest = [](const std::string& text) {
    scholar::detail::Digest d;
    d.text(text);
    return d.hex();
  };
  char dp[96];
  std::snprintf(dp, sizeof dp, "shard=%d bucket=%lld overlap=%d",
                distributed.shard_optimizer ? 1 : 0,
                static_cast<long long>(distributed.bucket_bytes), distributed.overlap ? 1 : 0);
  const std::vector<std::pair<const char*, std::string>> fields = {
      {"the model config (every rank must build the same model)",
       digest(model_.config().to_json().dump())},
      {"the trainer options (every rank must use the same TrainerOptions; out_dir may differ)",
       digest(same.to_json().dump())},
      {"the training data (every rank must load the same corpus with the same options)",
       data_.fingerprint()},
      {"the objective (every rank must use the same objective, settings and teacher)",
       digest(obj.fingerprint())},
      {"which parameters train (every rank must freeze the same ones and add the same adapters)",
       layout.hex()},
      {"the frozen weights (every rank must load the same base model)", frozen.hex()},
      {"the step (every rank must resume from the same checkpoint)", std::to_string(step_)},
      {"the DistributedOptions", dp},
  };
  std::string mine;
  for (const auto& f : fields) mine += f.second + "\n";
  const std::vector<std::string> all = c.allgather(mine);
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    size_t at0 = 0, atr = 0;
    for (const auto& f : fields) {
      const size_t e0 = all[0].find('\n', at0), er = all[r].find('\n', atr);
      const std::string v0 = all[0].substr(at0, e0 - at0), vr = all[r].substr(atr, er - atr);
      if (v0 != vr)
        fail<ValueError>("data-parallel training: rank ", r, " of ", c.size(),
                         " disagrees with rank 0 on ", f.first, ": rank 0 has ", v0, ", rank ", r,
                         " has ", vr);
      at0 = e0 + 1;
      atr = er + 1;
    }
  }
  // The trainable weights start as rank 0's (as DistributedDataParallel does), so ranks that
  // initialised them from different seeds still train one model.
  {
    std::vector<std::unique_ptr<Communicator::Request>> pending;
    for (auto& v : P->trainable) {
      Tensor<float> value = v.value();
      if (!value.is_contiguous()) {
        value = value.contiguous();
        v.set_value(value);
      }
      pending.push_back(c.start_broadcast({value.data(), static_cast<size_t>(value.numel())}, 0));
    }
    for (auto& q : pending) q->wait();
  }
  P->reducer = std::make_unique<detail::GradientReducer>(c, P->trainable, distributed.bucket_bytes);
  for (const auto& v : P->trainable)
    P->full_state_bytes += 2 * v.value().numel() * static_cast<int64_t>(sizeof(float));
  if (distributed.shard_optimizer) {
    std::vector<int64_t> sizes;
    for (const auto& v : P->trainable) sizes.push_back(v.value().numel());
    P->owner = detail::partition_parameters(sizes, c.size());
    if (optimizer_) {
      // Made before (optimizer() was called): keep the moments of this rank's share only.
      std::vector<nn::NamedParameter> mine_params;
      optim::NamedTensors state;
      for (size_t k = 0; k < P->trainable.size(); ++k)
        if (P->owner[k] == c.rank()) mine_params.push_back({P->names[k], P->trainable[k]});
      for (auto& [name, t] : optimizer_->state())
        for (const auto& p : mine_params)
          if (name == "m." + p.name || name == "v." + p.name) state.emplace_back(name, t);
      const int64_t steps = optimizer_->steps();
      const float lr = optimizer_->lr();
      optimizer_.reset();
      optimizer_ = std::make_unique<optim::AdamW>(std::move(mine_params), adamw_options(opt_));
      optimizer_->load_state(state, steps);
      optimizer_->set_lr(lr);
    }
  }
#ifdef NDEBUG
  P->check_every = distributed.check_every < 0 ? 0 : distributed.check_every;
#else
  P->check_every = distributed.check_every < 0 ? 50 : distributed.check_every;
#endif
  dropout_gen_.set_state(for_rank(dropout_gen_.state(), c.rank()));
  parallel_ = std::move(P);
}

optim::AdamW& Trainer::optimizer() {
  setup_parallel();
  if (!optimizer_) {
    std::vector<nn::NamedParameter> params = model_.named_parameters();
    if (parallel_ && !parallel_->owner.empty()) {
      params.clear();
      for (size_t k = 0; k < parallel_->trainable.size(); ++k)
        if (parallel_->owner[k] == comm().rank())
          params.push_back({parallel_->names[k], parallel_->trainable[k]});
    }
    optimizer_ = std::make_unique<optim::AdamW>(std::move(params), adamw_options(opt_));
  }
  return *optimizer_;
}

double Trainer::rank_weight(const Tensor<int32_t>& targets) {
  const Tensor<int32_t> t = targets.contiguous();
  int64_t mine = 0;
  for (int64_t i = 0; i < t.numel(); ++i) mine += t.data()[i] != -100 ? 1 : 0;
  double total = static_cast<double>(mine);
  comm().allreduce_sum(std::span<double>(&total, 1));
  if (total <= 0) return 1.0;
  return static_cast<double>(mine) * static_cast<double>(comm().size()) / total;
}

void Trainer::check_weights_agree() {
  scholar::detail::Digest d;
  for (const auto& v : parallel_->trainable) {
    const Tensor<float> c = v.value().contiguous();
    d.bytes(c.data(), static_cast<size_t>(c.numel()) * sizeof(float));
  }
  d.word(static_cast<uint64_t>(optimizer().steps()));
  const auto all = comm().allgather(d.hex());
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      fail<ValueError>("data-parallel training: after step ", step_, " the weights of rank ", r,
                       " (hash ", all[r], ") differ from rank 0's (", all[0],
                       "); the ranks no longer train one model");
}

std::string Trainer::distributed_summary() {
  setup_parallel();
  if (!parallel_) return comm().describe();
  char buf[256];
  std::snprintf(buf, sizeof buf, "; gradients in %zu bucket%s of up to %.3g MB%s",
                parallel_->reducer->bucket_count(),
                parallel_->reducer->bucket_count() == 1 ? "" : "s",
                static_cast<double>(distributed.bucket_bytes) / 1e6,
                distributed.overlap ? ", averaged during backward" : "");
  std::string out = comm().describe() + buf;
  if (distributed.shard_optimizer) {
    std::snprintf(buf, sizeof buf, "; optimizer state sharded: %.4g of %.4g MB on rank %d",
                  static_cast<double>(optimizer().state_bytes()) / 1e6,
                  static_cast<double>(parallel_->full_state_bytes) / 1e6, comm().rank());
    out += buf;
  }
  return out;
}

Batch Trainer::next_batch(const Objective& objective) {
  // Every rank draws the global batch with the same generator and keeps its own rows.
  const int64_t ranks = comm().size(), B = opt_.batch_size;
  Batch global;
  if (objective.fixed_windows()) {
    const auto* tokens = dynamic_cast<const TokenDataset*>(&data_);
    if (!tokens)
      fail<ValueError>("Trainer: objective '", objective.name(),
                       "' trains on fixed windows of a TokenDataset, not on this dataset");
    global = tokens->window_batch(Split::train, B * ranks, opt_.context, data_gen_);
  } else {
    global = data_.sample(Split::train, B * ranks, opt_.context, data_gen_);
  }
  if (ranks == 1) return global;
  const int64_t r = comm().rank();
  return rows_of(global, r * B, (r + 1) * B);
}

StepInfo Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  model_.train();
  LmObjective lm;
  Objective& obj = objective ? *objective : lm;
  double loss_sum = 0;
  int64_t tokens = 0;
  LossParts parts_sum;
  if (parallel_) parallel_->reducer->attach();  // gradients accumulate in the buckets
  for (int64_t m = 0; m < opt_.grad_accum; ++m) {
    const Batch batch = next_batch(obj);
    tokens += batch.inputs.numel();
    LossParts parts;
    autograd::Var loss = obj.loss(model_, batch, &dropout_gen_, parts);
    // With several ranks, a rank's loss is a mean over its own targets; weighting it by its share
    // of the micro-batch's targets (n_r R / N) makes the average over the ranks the mean over all
    // N, as one process would compute. Rows with equal target counts (fixed windows) weigh 1.
    const double weight = parallel_ ? rank_weight(batch.targets) : 1.0;
    loss_sum += loss.value().item() * weight;
    for (auto part : parts) {
      part.second *= weight;
      auto it = std::find_if(parts_sum.begin(), parts_sum.end(),
                             [&](const auto& p) { return p.first == part.first; });
      if (it == parts_sum.end())
        parts_sum.push_back(part);
      else
        it->second += part.second;
    }
    const auto scale = static_cast<float>(weight / static_cast<double>(opt_.grad_accum));
    if (scale != 1.0f) loss = autograd::scale(loss, scale);
    if (parallel_ && distributed.overlap && m + 1 == opt_.grad_accum) {
      // The last micro-batch: each gradient bucket starts its average once backward is done
      // with it.
      autograd::GradReadyHook hook(
          [this](const autograd::Var& v) { parallel_->reducer->ready(v); });
      loss.backward();
    } else {
      loss.backward();
    }
  }
  StepInfo info;
  if (parallel_) {
    parallel_->reducer->finish();
    info.comm_seconds = parallel_->reducer->wait_seconds();
    // The step's loss, parts and tokens over all ranks (each rank's are means over its rows).
    std::vector<double> sums{loss_sum, static_cast<double>(tokens)};
    for (const auto& part : parts_sum) sums.push_back(part.second);
    comm().allreduce_sum(sums);
    const auto ranks = static_cast<double>(comm().size());
    loss_sum = sums[0] / ranks;
    tokens = static_cast<int64_t>(sums[1]);
    for (size_t i = 0; i < parts_sum.size(); ++i) parts_sum[i].second = sums[2 + i] / ranks;
  }
  info.loss = loss_sum / static_cast<double>(opt_.grad_accum);
  for (auto& [name, v] : parts_sum) v /= static_cast<double>(opt_.grad_accum);
  info.parts = std::move(parts_sum);
  info.grad_norm =
      optim::clip_grad_norm(model_.parameters(), opt_.grad_clip > 0 ? opt_.grad_clip : 1e30);
  const optim::WarmupCosine schedule{opt_.lr, opt_.min_lr, opt_.warmup_steps, opt_.max_steps};
  info.lr = schedule.at(step_);
  if (std::isfinite(info.loss) && std::isfinite(info.grad_norm)) {
    optimizer().set_lr(info.lr);
    optimizer().step();
    ++step_;
    if (parallel_ && !parallel_->owner.empty()) {
      // Sharded optimizer state: each parameter was updated by its owner; send it to the others.
      const auto t = std::chrono::steady_clock::now();
      std::vector<std::unique_ptr<Communicator::Request>> pending;
      for (size_t k = 0; k < parallel_->trainable.size(); ++k) {
        const Tensor<float>& v = parallel_->trainable[k].value();
        pending.push_back(comm().start_broadcast({v.data(), static_cast<size_t>(v.numel())},
                                                 parallel_->owner[k]));
      }
      for (auto& q : pending) q->wait();
      info.comm_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    }
  }
  model_.zero_grad();  // every parameter, also those a sharded optimizer does not hold
  info.step = step_;
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  info.tokens_per_second = static_cast<double>(tokens) / std::max(dt, 1e-9);
  return info;
}

double Trainer::evaluate() {
  PoolScope scope(pool);
  setup_parallel();
  if (!data_.can_batch(Split::validation, opt_.context)) return std::nan("");
  autograd::NoGradGuard no_grad;
  const bool was_training = model_.training();
  model_.eval();
  double total = 0;
  // With several ranks, each evaluates its rows of the global batches (batch_size x ranks rows,
  // as in training), and the means over the ranks' rows are averaged.
  const int64_t ranks = comm().size(), B = opt_.batch_size, r = comm().rank();
  for (int64_t i = 0; i < opt_.eval_batches; ++i) {
    Batch b = data_.eval_batch(Split::validation, B * ranks, opt_.context, i);
    if (ranks > 1) b = rows_of(b, r * B, (r + 1) * B);
    total += model_.loss(b.inputs, b.targets, nullptr, b.segments.defined() ? &b.segments : nullptr)
                 .value()
                 .item();
  }
  model_.train(was_training);
  if (parallel_) {
    comm().allreduce_sum(std::span<double>(&total, 1));
    total /= static_cast<double>(ranks);
  }
  return total / static_cast<double>(opt_.eval_batches);
}

void Trainer::log_csv(const StepInfo& info) {
  if (opt_.out_dir.empty()) return;
  const std::string path = opt_.out_dir + "/log.csv";
  const bool fresh = !std::filesystem::exists(path);
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) fail<IoError>(path, ": cannot open the training log for writing");
  // The objective's parts are extra columns, named in the header of a new log.
  if (fresh) {
    std::fprintf(f, "step,loss,val_loss,val_ppl,grad_norm,lr,tokens_per_s");
    for (const auto& p : info.parts) std::fprintf(f, ",%s", p.first.c_str());
    std::fprintf(f, "\n");
  }
  if (info.val_loss)
    std::fprintf(f, "%lld,%.6f,%.6f,%.4f,%.5g,%.6g,%.1f", static_cast<long long>(info.step),
                 info.loss, *info.val_loss, std::exp(*info.val_loss), info.grad_norm,
                 static_cast<double>(info.lr), info.tokens_per_second);
  else
    std::fprintf(f, "%lld,%.6f,,,%.5g,%.6g,%.1f", static_cast<long long>(info.step), info.loss,
                 info.grad_norm, static_cast<double>(info.lr), info.tokens_per_second);
  for (const auto& p : info.parts) std::fprintf(f, ",%.6f", p.second);
  std::fprintf(f, "\n");
  std::fclose(f);
}

// One step of fit(): train, evaluate, log, report, checkpoint. False when training diverged.
bool Trainer::one_step(FitResult& result, ProgressBar* bar) {
  StepInfo info = train_step();
  result.last_loss = info.loss;
  if (!std::isfinite(info.loss) || !std::isfinite(info.grad_norm)) {
    result.diverged = true;
    char msg[256];
    std::snprintf(
        msg, sizeof msg, "training stopped at step %lld: the %s became %s",
        static_cast<long long>(step_ + 1), std::isfinite(info.loss) ? "gradient norm" : "loss",
        std::isnan(std::isfinite(info.loss) ? info.grad_norm : info.loss) ? "NaN" : "infinite");
    result.message = msg;
    if (!opt_.out_dir.empty())
      result.message += "; the last good checkpoint is " + opt_.out_dir +
                        "/checkpoint.safetensors (if one was written)";
    return false;
  }
  if (opt_.eval_every > 0 && step_ % opt_.eval_every == 0) {
    const double v = evaluate();
    if (std::isfinite(v)) info.val_loss = v;
    result.last_val_loss = info.val_loss;
  }
  if (leader()) log_csv(info);
  if (on_step) on_step(info);
  if (bar) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "loss %.4f", info.loss);
    std::string extra = buf;
    for (const auto& [name, v] : info.parts) {
      std::snprintf(buf, sizeof buf, " (%s %.4f)", name.c_str(), v);
      extra += buf;
    }
    if (result.last_val_loss) {
      std::snprintf(buf, sizeof buf, "  val %.4f (ppl %.1f)", *result.last_val_loss,
                    std::exp(*result.last_val_loss));
      extra += buf;
    }
    std::snprintf(buf, sizeof buf, "  %.3gk tok/s", info.tokens_per_second / 1e3);
    bar->update(step_, extra + buf);
  }
  if (!opt_.out_dir.empty() && opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0)
    save_checkpoint(opt_.out_dir + "/checkpoint.safetensors");

  return true;
}

FitResult Trainer::fit() {
  PoolScope scope(pool);
  setup_parallel();
  FitResult result;
  if (!opt_.out_dir.empty() && leader()) std::filesystem::create_directories(opt_.out_dir);
  std::unique_ptr<ProgressBar> bar;
  if (opt_.progress && leader())
    bar = std::make_unique<ProgressBar>("train", opt_.max_steps, "step", on_progress);
  const auto start = std::chrono::steady_clock::now();
  const int64_t first = step_;
  // An error of this rank alone (a bad batch, a full disk on rank 0) leaves the others waiting
  // in a collective: say so, and mark the communicator so that the job ends rather than hangs.
  auto stop_all = [&](const std::exception& e) {
    if (parallel_ && !comm().failed())
      comm().fail("training step " + std::to_string(step_ + 1) + ": " + e.what());
  };
  while (step_ < opt_.max_steps) {
    try {
      if (!one_step(result, bar.get())) break;
    } catch (const CommunicatorError&) {
      throw;
    } catch (const std::exception& e) {
      stop_all(e);
      throw;
    }
    // Thrown on every rank alike, so not a reason to stop the job.
    if (parallel_ && parallel_->check_every > 0 && step_ % parallel_->check_every == 0)
      check_weights_agree();
  }
  if (bar) bar->finish();
  try {
    if (!result.diverged && !opt_.out_dir.empty() && step_ > first)
      save_checkpoint(opt_.out_dir + "/checkpoint.safetensors");
  } catch (const CommunicatorError&) {
    throw;
  } catch (const std::exception& e) {
    stop_all(e);
    throw;
  }
  result.steps = step_ - first;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// --- checkpoints ---------------------------------------------------------------------------------

void Trainer::write_checkpoint(const std::string& path, const optim::NamedTensors& state) {
  io::SafetensorsWriter w;
  for (const auto& p : model_.named_parameters()) w.add(p.name, p.var.value());
  for (const auto& [name, t] : state) w.add("optimizer." + name, t);
  w.set_metadata("format", kFormat);
  w.set_metadata("step", std::to_string(step_));
  w.set_metadata("config", model_.config().to_json().dump());
  w.set_metadata("options", opt_.to_json().dump());
  io::Json optj = io::Json::object();
  optj.set("type", io::Json("AdamW"));
  optj.set("steps", io::Json(optimizer().steps()));
  optj.set("lr", io::Json(static_cast<double>(optimizer().lr())));
  w.set_metadata("optimizer", optj.dump());
  io::Json rng = io::Json::object();
  rng.set("data", gen_state_json(data_gen_));
  rng.set("dropout", gen_state_json(dropout_gen_));  // rank 0's: the others' derive from it
  w.set_metadata("rng", rng.dump());
  w.set_metadata("ranks", std::to_string(comm().size()));
  if (tokenizer_) {
    w.set_metadata("tokenizer", tokenizer_->to_json().dump());
    w.set_metadata("special_tokens",
                   text::special_tokens_to_json(tokenizer_->special_tokens()).dump());
  }
  w.save(path);
}

void Trainer::save_checkpoint(const std::string& path) {
  setup_parallel();
  // With sharded optimizer state, rank 0 receives the other ranks' moments first: the file holds
  // the whole state, which any number of ranks can resume. (AdamW names its moments "m.<name>"
  // and "v.<name>".)
  optim::NamedTensors state = optimizer().state();
  if (parallel_ && !parallel_->owner.empty()) {
    const int me = comm().rank();
    for (size_t k = 0; k < parallel_->trainable.size(); ++k) {
      const int owner = parallel_->owner[k];
      if (owner == 0 || (me != 0 && me != owner)) continue;
      for (const char* moment : {"m.", "v."}) {
        const std::string name = moment + parallel_->names[k];
        if (me == owner) {
          const Tensor<float>* t = find_state(state, name);
          if (!t) fail<ValueError>("save_checkpoint: rank ", me, " holds no '", name, "'");
          comm().send({t->data(), static_cast<size_t>(t->numel())}, 0);
        } else {
          Tensor<float> t = Tensor<float>::empty(parallel_->trainable[k].shape());
          comm().recv({t.data(), static_cast<size_t>(t.numel())}, owner);
          state.emplace_back(name, std::move(t));
        }
      }
    }
  }
  // Rank 0 writes; every rank returns once the file is there, or throws if rank 0 could not
  // write it (a full disk must not leave the others waiting).
  std::exception_ptr failure;
  std::string error;
  if (leader()) {
    try {
      write_checkpoint(path, state);
    } catch (const std::exception& e) {
      failure = std::current_exception();
      error = e.what();
    }
  }
  if (parallel_) {
    const std::string rank0 = comm().allgather(error)[0];
    if (!leader() && !rank0.empty())
      fail<IoError>("save_checkpoint: rank 0 could not write ", path, ": ", rank0);
  }
  if (failure) std::rethrow_exception(failure);
}

void Trainer::load_checkpoint(const std::string& path) {
  setup_parallel();
  // With several ranks, every rank reads the file (a file system that all ranks see, as on
  // clusters), and the ranks agree on the outcome once each has read and checked it, before any
  // changes anything: one rank's bad copy stops all of them alike. Each says its error once.
  bool said = false;
  auto others_error = [&](const std::string& mine) {
    said = true;
    const auto errors = comm().allgather(mine);
    for (size_t r = 0; r < errors.size(); ++r)
      if (static_cast<int>(r) != comm().rank() && !errors[r].empty())
        return "load_checkpoint: rank " + std::to_string(r) + " could not load it: " + errors[r];
    return std::string();
  };
  try {
    load_checkpoint_here(path, [&] {
      if (!parallel_) return;
      if (const std::string other = others_error(""); !other.empty()) fail<FormatError>(other);
    });
  } catch (const std::exception& e) {
    if (parallel_ && !said) others_error(e.what());
    throw;
  }
}

void Trainer::load_checkpoint_here(const std::string& path,
                                   const std::function<void()>& before_commit) {
  // Read and check everything before changing anything: a bad file leaves the trainer as it was.
  const auto f = io::SafetensorsFile::open(path);
  if (meta(f, "format") != kFormat)
    fail<FormatError>(path, ": checkpoint format '", meta(f, "format"), "', expected '", kFormat,
                      "'");
  const auto config =
      nn::TransformerConfig::from_json(io::Json::parse(meta(f, "config"), path + " config"));
  if (!(config == model_.config()))
    fail<FormatError>(path,
                      ": the checkpoint is for another model (its config: ", meta(f, "config"),
                      "; this model: ", model_.config().to_json().dump(), ")");
  const int64_t step = parse_step(meta(f, "step"), path);
  const io::Json optj = io::Json::parse(meta(f, "optimizer"), path + " optimizer");
  const int64_t opt_steps = optj.at("steps", path + " optimizer").as_int(path + " optimizer steps");
  const auto lr = static_cast<float>(optj.at("lr", path + " optimizer").as_double());
  const io::Json rng = io::Json::parse(meta(f, "rng"), path + " rng");
  const auto data_state = gen_state_from(rng.at("data", path + " rng"));
  const auto dropout_state = gen_state_from(rng.at("dropout", path + " rng"));
  std::vector<std::pair<std::string, Tensor<float>>> weights;
  for (const auto& p : model_.named_parameters()) {
    if (!f.contains(p.name)) fail<FormatError>(path, ": no weights for parameter '", p.name, "'");
    weights.emplace_back(p.name, f.load<float>(p.name).clone());
  }
  // The moments of this rank's optimizer (all of them, or its share when sharded; AdamW names
  // them "m.<name>" and "v.<name>"), each present with its parameter's shape.
  optim::NamedTensors state;
  for (const auto& p : optimizer().params()) {
    if (!p.var.requires_grad()) continue;
    for (const char* moment : {"m.", "v."}) {
      const std::string name = "optimizer." + (moment + p.name);
      if (!f.contains(name) || !(f.info(name).shape == p.var.shape()))
        fail<FormatError>(path, ": no optimizer state '", moment, p.name, "' of shape ",
                          p.var.shape().str());
      state.emplace_back(name.substr(10), f.load<float>(name).clone());
    }
  }
  before_commit();
  // Commit. The optimizer checks its state before taking any, and the weights were checked
  // against the config above, so neither throws halfway.
  optimizer().load_state(state, opt_steps);
  model_.load_weights(weights);
  optimizer().set_lr(lr);
  data_gen_.set_state(data_state);
  dropout_gen_.set_state(for_rank(dropout_state, comm().rank()));
  step_ = step;
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  const auto f = io::SafetensorsFile::open(path);
  if (meta(f, "format") != kFormat)
    fail<FormatError>(path, ": checkpoint format '", meta(f, "format"), "', expected '", kFormat,
                      "'");
  CheckpointInfo info;
  info.config =
      nn::TransformerConfig::from_json(io::Json::parse(meta(f, "config"), path + " config"));
  info.options = TrainerOptions::from_json(io::Json::parse(meta(f, "options"), path + " options"));
  info.step = parse_step(meta(f, "step"), path);
  info.tokenizer = read_tokenizer(f);
  return info;
}

void load_model_weights(nn::TransformerLM& model, const std::string& checkpoint_path) {
  const auto f = io::SafetensorsFile::open(checkpoint_path);
  std::vector<std::pair<std::string, Tensor<float>>> weights;
  for (const auto& p : model.named_parameters()) {
    if (!f.contains(p.name))
      fail<FormatError>(checkpoint_path, ": no weights for parameter '", p.name,
                        "' (a checkpoint of another model?)");
    weights.emplace_back(p.name, f.load<float>(p.name));
  }
  model.load_weights(weights);
}

double perplexity(nn::TransformerLM& model, const TokenDataset& data, Split split, int64_t T,
                  int64_t batch) {
  if (batch < 1) fail<ValueError>("perplexity: batch must be >= 1, got ", batch);
  const int64_t n = data.window_count(split, T);
  if (n == 0)
    fail<ValueError>("perplexity: the split has ", data.tokens(split).size(),
                     " tokens, fewer than one window of ", T + 1);
  autograd::NoGradGuard no_grad;
  const bool was = model.training();
  model.eval();
  double total = 0;
  for (int64_t w0 = 0; w0 < n; w0 += batch) {
    std::vector<int64_t> which;
    for (int64_t w = w0; w < std::min(n, w0 + batch); ++w) which.push_back(w);
    const Batch b = data.windows_at(split, T, which);
    total += model.loss(b.inputs, b.targets).value().item() * static_cast<double>(which.size());
  }
  model.train(was);
  return std::exp(total / static_cast<double>(n));
}

}  // namespace scholar::train
