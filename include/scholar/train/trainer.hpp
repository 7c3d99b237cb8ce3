// scholar/train/trainer.hpp: the training loop, checkpoints, and logs.
//
//   train::TrainerOptions opt;
//   opt.max_steps = 2000;
//   opt.out_dir = "runs/jargon";
//   train::Trainer trainer(model, data, opt, &tokenizer);
//   train::FitResult r = trainer.fit();   // a progress bar (or your callback), log.csv in out_dir
//
// One step: grad_accum micro-batches of batch_size windows of context tokens, each forward and
// backward (the loss scaled by 1 / grad_accum), gradient clipping, the warmup + cosine learning
// rate, and an AdamW step. Every eval_every steps the validation loss and perplexity are measured;
// every checkpoint_every steps a checkpoint is written (atomically) to
// out_dir/checkpoint.safetensors. A non-finite loss or gradient norm stops training with a message;
// the last checkpoint, written before, stays good. A checkpoint holds everything needed to continue
// bit for bit: weights, optimizer moments, step, random-generator states, model config, trainer
// options and tokenizer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "scholar/io/safetensors.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/parallel.hpp"
#include "scholar/progress.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/train/data.hpp"
#include "scholar/train/objective.hpp"

namespace scholar::train {

/// Settings of a training run (saved in checkpoints).
struct TrainerOptions {
  int64_t batch_size = 8;
  int64_t context = 128;   ///< tokens per window (at most the model's context length)
  int64_t grad_accum = 1;  ///< micro-batches per optimizer step
  int64_t max_steps = 1000;
  float lr = 3e-4f;      ///< peak learning rate
  float min_lr = 3e-5f;  ///< at the end of the cosine decay
  int64_t warmup_steps = 100;
  float weight_decay = 0.1f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float grad_clip = 1.0f;    ///< max global gradient norm (0: no clipping)
  int64_t eval_every = 100;  ///< 0: never
  int64_t eval_batches = 10;
  int64_t checkpoint_every = 0;  ///< 0: only at the end (when out_dir is set)
  std::string out_dir;           ///< for log.csv and checkpoint.safetensors ("" : none)
  bool progress = true;          ///< report progress (Trainer::on_progress; a bar by default)
  uint64_t seed = 0;             ///< data order and dropout

  io::Json to_json() const;
  static TrainerOptions from_json(const io::Json& j);
  void validate() const;
};

/// One optimizer step, as reported to callbacks and the log.
struct StepInfo {
  int64_t step = 0;      ///< steps done (1-based after the first)
  double loss = 0;       ///< training loss of this step (mean over micro-batches)
  LossParts parts;       ///< the objective's named parts (means over micro-batches)
  double grad_norm = 0;  ///< before clipping
  float lr = 0;
  double tokens_per_second = 0;
  std::optional<double> val_loss;  ///< when evaluated at this step
};

/// How fit() ended.
struct FitResult {
  int64_t steps = 0;
  double last_loss = 0;
  std::optional<double> last_val_loss;
  bool diverged = false;  ///< stopped on a non-finite loss or gradient
  std::string message;    ///< why it stopped early, for the user
  double seconds = 0;
};

/// Trains a TransformerLM on a TokenDataset.
class Trainer {
 public:
  /// The model, data and tokenizer must outlive the trainer; the tokenizer (optional) is saved in
  /// checkpoints so they are self-contained.
  Trainer(nn::TransformerLM& model, const Dataset& data, TrainerOptions options,
          const text::Tokenizer* tokenizer = nullptr);
  ~Trainer();

  /// Runs until max_steps (or divergence). Can be called again after raising max_steps.
  FitResult fit();
  /// Mean validation loss over eval_batches deterministic batches (no gradients, eval mode).
  double evaluate();
  /// Writes a checkpoint (atomically) to `path`.
  void save_checkpoint(const std::string& path) const;
  /// Restores weights, optimizer, step and generators from a checkpoint written by save_checkpoint
  /// for a model of the same config (FormatError/ShapeError naming the mismatch otherwise).
  void load_checkpoint(const std::string& path);

  int64_t step() const noexcept { return step_; }
  const TrainerOptions& options() const noexcept { return opt_; }
  optim::AdamW& optimizer() noexcept { return *optimizer_; }
  /// Called after every step (and with val_loss set after evaluations).
  std::function<void(const StepInfo&)> on_step;
  /// Where the progress of fit() goes when options().progress is set; empty: the process-wide
  /// progress callback, or the bar on stderr (scholar/progress.hpp).
  ProgressCallback on_progress;
  /// The pool fit() and evaluate() run on (not owned; must outlive the calls). Null: the calling
  /// thread's current pool (scholar::thread_pool()).
  ThreadPool* pool = nullptr;
  /// What training minimises (not owned; must outlive fit()). Null: the language-model
  /// cross-entropy (LmObjective). Validation (evaluate()) is always the cross-entropy.
  Objective* objective = nullptr;

 private:
  StepInfo train_step();
  void log_csv(const StepInfo& info);
  Batch next_batch(const Objective& objective);

  nn::TransformerLM& model_;
  const Dataset& data_;
  TrainerOptions opt_;
  const text::Tokenizer* tokenizer_;
  std::unique_ptr<optim::AdamW> optimizer_;
  Generator data_gen_, dropout_gen_;
  int64_t step_ = 0;
};

/// Reads what a checkpoint says about itself: model config, tokenizer (if saved), options, step.
struct CheckpointInfo {
  nn::TransformerConfig config;
  std::shared_ptr<text::Tokenizer> tokenizer;  ///< null if none was saved (any kind: BPE, SPM)
  TrainerOptions options;
  int64_t step = 0;
};
CheckpointInfo read_checkpoint_info(const std::string& path);

/// The tokenizer saved in a checkpoint's metadata (with its special-token ids), or null.
std::shared_ptr<text::Tokenizer> read_tokenizer(const io::SafetensorsFile& checkpoint);

/// Loads just the model weights of a checkpoint into `model` (same config).
void load_model_weights(nn::TransformerLM& model, const std::string& checkpoint_path);

/// Perplexity of `model` over every fixed window of T tokens of a split (each token predicted
/// once), in evaluation mode and without a graph, `batch` windows at a time: exp of the mean
/// cross-entropy. ValueError if the split has no whole window.
double perplexity(nn::TransformerLM& model, const TokenDataset& data, Split split, int64_t T,
                  int64_t batch = 16);

}  // namespace scholar::train
