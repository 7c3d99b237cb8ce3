// The training loop, evaluation, logs and checkpoints.
#include "scholar/train/trainer.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "scholar/error.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/parallel.hpp"
#include "scholar/progress.hpp"

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
  optimizer_ = std::make_unique<optim::AdamW>(
      model.named_parameters(), optim::AdamW::Options{.lr = opt_.lr,
                                                      .beta1 = opt_.beta1,
                                                      .beta2 = opt_.beta2,
                                                      .eps = 1e-8f,
                                                      .weight_decay = opt_.weight_decay});
}

Trainer::~Trainer() = default;

Batch Trainer::next_batch(const Objective& objective) {
  if (objective.fixed_windows()) {
    const auto* tokens = dynamic_cast<const TokenDataset*>(&data_);
    if (!tokens)
      fail<ValueError>("Trainer: objective '", objective.name(),
                       "' trains on fixed windows of a TokenDataset, not on this dataset");
    return tokens->window_batch(Split::train, opt_.batch_size, opt_.context, data_gen_);
  }
  return data_.sample(Split::train, opt_.batch_size, opt_.context, data_gen_);
}

StepInfo Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  model_.train();
  LmObjective lm;
  Objective& obj = objective ? *objective : lm;
  double loss_sum = 0;
  int64_t tokens = 0;
  LossParts parts_sum;
  for (int64_t m = 0; m < opt_.grad_accum; ++m) {
    const Batch batch = next_batch(obj);
    tokens += batch.inputs.numel();
    LossParts parts;
    autograd::Var loss = obj.loss(model_, batch, &dropout_gen_, parts);
    loss_sum += loss.value().item();
    for (const auto& part : parts) {
      auto it = std::find_if(parts_sum.begin(), parts_sum.end(),
                             [&](const auto& p) { return p.first == part.first; });
      if (it == parts_sum.end())
        parts_sum.push_back(part);
      else
        it->second += part.second;
    }
    if (opt_.grad_accum > 1)
      loss = autograd::scale(loss, 1.0f / static_cast<float>(opt_.grad_accum));
    loss.backward();
  }
  StepInfo info;
  info.loss = loss_sum / static_cast<double>(opt_.grad_accum);
  for (auto& [name, v] : parts_sum) v /= static_cast<double>(opt_.grad_accum);
  info.parts = std::move(parts_sum);
  info.grad_norm =
      optim::clip_grad_norm(model_.parameters(), opt_.grad_clip > 0 ? opt_.grad_clip : 1e30);
  const optim::WarmupCosine schedule{opt_.lr, opt_.min_lr, opt_.warmup_steps, opt_.max_steps};
  info.lr = schedule.at(step_);
  if (std::isfinite(info.loss) && std::isfinite(info.grad_norm)) {
    optimizer_->set_lr(info.lr);
    optimizer_->step();
    ++step_;
  }
  optimizer_->zero_grad();
  info.step = step_;
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  info.tokens_per_second = static_cast<double>(tokens) / std::max(dt, 1e-9);
  return info;
}

double Trainer::evaluate() {
  PoolScope scope(pool);
  if (!data_.can_batch(Split::validation, opt_.context)) return std::nan("");
  autograd::NoGradGuard no_grad;
  const bool was_training = model_.training();
  model_.eval();
  double total = 0;
  for (int64_t i = 0; i < opt_.eval_batches; ++i) {
    const Batch b = data_.eval_batch(Split::validation, opt_.batch_size, opt_.context, i);
    total += model_.loss(b.inputs, b.targets, nullptr, b.segments.defined() ? &b.segments : nullptr)
                 .value()
                 .item();
  }
  model_.train(was_training);
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

FitResult Trainer::fit() {
  PoolScope scope(pool);
  FitResult result;
  if (!opt_.out_dir.empty()) std::filesystem::create_directories(opt_.out_dir);
  std::unique_ptr<ProgressBar> bar;
  if (opt_.progress)
    bar = std::make_unique<ProgressBar>("train", opt_.max_steps, "step", on_progress);
  const auto start = std::chrono::steady_clock::now();
  const int64_t first = step_;
  while (step_ < opt_.max_steps) {
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
      break;
    }
    if (opt_.eval_every > 0 && step_ % opt_.eval_every == 0) {
      const double v = evaluate();
      if (std::isfinite(v)) info.val_loss = v;
      result.last_val_loss = info.val_loss;
    }
    log_csv(info);
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
  }
  result.steps = step_ - first;
  if (bar) bar->finish();
  if (!result.diverged && !opt_.out_dir.empty() && result.steps > 0)
    save_checkpoint(opt_.out_dir + "/checkpoint.safetensors");
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// --- checkpoints ---------------------------------------------------------------------------------

void Trainer::save_checkpoint(const std::string& path) const {
  io::SafetensorsWriter w;
  for (const auto& p : model_.named_parameters()) w.add(p.name, p.var.value());
  for (const auto& [name, t] : optimizer_->state()) w.add("optimizer." + name, t);
  w.set_metadata("format", kFormat);
  w.set_metadata("step", std::to_string(step_));
  w.set_metadata("config", model_.config().to_json().dump());
  w.set_metadata("options", opt_.to_json().dump());
  io::Json optj = io::Json::object();
  optj.set("type", io::Json("AdamW"));
  optj.set("steps", io::Json(optimizer_->steps()));
  optj.set("lr", io::Json(static_cast<double>(optimizer_->lr())));
  w.set_metadata("optimizer", optj.dump());
  io::Json rng = io::Json::object();
  rng.set("data", gen_state_json(data_gen_));
  rng.set("dropout", gen_state_json(dropout_gen_));
  w.set_metadata("rng", rng.dump());
  if (tokenizer_) {
    w.set_metadata("tokenizer", tokenizer_->to_json().dump());
    w.set_metadata("special_tokens",
                   text::special_tokens_to_json(tokenizer_->special_tokens()).dump());
  }
  w.save(path);
}

void Trainer::load_checkpoint(const std::string& path) {
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
  optim::NamedTensors state;
  for (const auto& t : f.tensors())
    if (t.name.rfind("optimizer.", 0) == 0)
      state.emplace_back(t.name.substr(10), f.load<float>(t.name).clone());
  // Commit. The optimizer checks its state before taking any, and the weights were checked
  // against the config above, so neither throws halfway.
  optimizer_->load_state(state, opt_steps);
  model_.load_weights(weights);
  optimizer_->set_lr(lr);
  data_gen_.set_state(data_state);
  dropout_gen_.set_state(dropout_state);
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
