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
//
// Data-parallel: with a `communicator` of several ranks (train::mpi_world() under mpirun), every
// rank runs the same program. batch_size is per rank: each step draws the global batch of
// batch_size x ranks rows (the same generator on every rank) and each rank takes its own rows, so
// R ranks of batch b train exactly as one process of batch R b. Gradients are averaged in
// buckets while the backward pass runs; weights and optimizer steps stay identical on every rank.
// Rank 0 alone writes the log, the checkpoint and the progress bar. fit(), evaluate(),
// save_checkpoint() and load_checkpoint() are then collective: call them on every rank. So is
// the first call of any of these, optimizer(), optimizer_state_bytes() or distributed_summary():
// it sets the run up (the ranks compare fingerprints and take rank 0's weights).
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
#include "scholar/train/communicator.hpp"
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

/// How a data-parallel run shares its work (used when Trainer::communicator has several ranks; not
/// saved in checkpoints, which any number of ranks can resume).
struct DistributedOptions {
  /// ZeRO stage 1: each rank keeps and updates the AdamW moments of its share of the parameters
  /// only (a greedy partition by size), then every rank receives the updated weights from their
  /// owners. Saves (R - 1) / R of the optimizer state per rank, for one broadcast of the weights
  /// per step.
  bool shard_optimizer = false;
  /// Gradients are averaged in buckets of about this many bytes (PyTorch DDP's default, 25 MB).
  int64_t bucket_bytes = int64_t{25} << 20;
  /// Start each bucket's average while the backward pass goes on (false: all after it).
  bool overlap = true;
  /// Every this many steps, compare a hash of the trainable weights across ranks (ValueError if
  /// they differ); 0: never. -1: every 50 steps in a debug build of scholar, never otherwise.
  int64_t check_every = -1;
};

/// One optimizer step, as reported to callbacks and the log.
struct StepInfo {
  int64_t step = 0;      ///< steps done (1-based after the first)
  double loss = 0;       ///< training loss of this step (mean over micro-batches)
  LossParts parts;       ///< the objective's named parts (means over micro-batches)
  double grad_norm = 0;  ///< before clipping
  float lr = 0;
  double tokens_per_second = 0;    ///< over all ranks
  std::optional<double> val_loss;  ///< when evaluated at this step
  /// Seconds this rank waited for the gradient average after its backward pass, and for the
  /// sharded optimizer's weight broadcast (0 on a single process).
  double comm_seconds = 0;
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
  /// Mean validation loss over eval_batches deterministic batches (no gradients, eval mode). With
  /// several ranks, each evaluates its rows of every batch (batch_size x ranks rows).
  double evaluate();
  /// Writes a checkpoint (atomically) to `path`. With several ranks, rank 0 writes it (after
  /// gathering sharded optimizer state), and every rank returns once it is written.
  void save_checkpoint(const std::string& path);
  /// Restores weights, optimizer, step and generators from a checkpoint written by save_checkpoint
  /// for a model of the same config (FormatError/ShapeError naming the mismatch otherwise). A
  /// checkpoint holds the whole state, so any number of ranks, sharded or not, can resume it.
  void load_checkpoint(const std::string& path);
  /// Bytes of optimizer state this rank holds (a share of it with shard_optimizer).
  int64_t optimizer_state_bytes() { return optimizer().state_bytes(); }
  /// "single process", or the communicator, ranks, buckets and sharding of a data-parallel run.
  std::string distributed_summary();

  int64_t step() const noexcept { return step_; }
  const TrainerOptions& options() const noexcept { return opt_; }
  /// The optimizer (made at first use; with a sharded data-parallel run, over this rank's share
  /// of the parameters).
  optim::AdamW& optimizer();
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
  /// The ranks of a data-parallel run (not owned; must outlive the trainer). Null: a single
  /// process. Set it before the first fit(), evaluate() or checkpoint call.
  Communicator* communicator = nullptr;
  DistributedOptions distributed;

 private:
  struct Parallel;
  StepInfo train_step();
  bool one_step(FitResult& result, ProgressBar* bar);
  void log_csv(const StepInfo& info);
  Batch next_batch(const Objective& objective);
  Communicator& comm() const { return communicator ? *communicator : single_process(); }
  bool leader() const { return comm().rank() == 0; }
  void setup_parallel();
  void write_checkpoint(const std::string& path, const optim::NamedTensors& optimizer_state);
  // Reads and checks a checkpoint, calls before_commit (which may throw), then takes it.
  void load_checkpoint_here(const std::string& path, const std::function<void()>& before_commit);
  void check_weights_agree();
  double rank_weight(const Tensor<int32_t>& targets);

  nn::TransformerLM& model_;
  const Dataset& data_;
  TrainerOptions opt_;
  const text::Tokenizer* tokenizer_;
  std::unique_ptr<optim::AdamW> optimizer_;
  Generator data_gen_, dropout_gen_;
  int64_t step_ = 0;
  std::unique_ptr<Parallel> parallel_;  // set up by the first collective call with several ranks
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
