// scholar/distill/distill.hpp: a large teacher teaches a small student.
//
//   train::ModuleTeacher teacher(big, &tokenizer);          // or
//   infer::ModelTeacher(Model::load(..)) distill::check_vocabularies(teacher, &tokenizer,
//   student.config().vocab_size); distill::LogitDistillation kd(teacher, {.temperature = 2.0f,
//   .alpha = 0.5f}); train::Trainer trainer(student, data, options, &tokenizer); trainer.objective
//   = &kd;                                 // the log shows the kd and ce parts trainer.fit();
//
// Or with a soft-label cache: the teacher's top K per position of fixed windows, computed once
// (SoftLabelCache::build) and shared by any number of students (CachedDistillation), which then
// train without running the teacher.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scholar/autograd/ops.hpp"
#include "scholar/generate/generate.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/progress.hpp"
#include "scholar/train/data.hpp"
#include "scholar/train/objective.hpp"

namespace scholar::distill {

/// Checks that a teacher's logits can teach a student of vocabulary `student_vocab` with
/// `student_tokenizer`: equal tokenizer fingerprints when both have a tokenizer, and the same
/// vocabulary size, except that a teacher whose vocabulary is padded beyond its tokenizer's tokens
/// (as Qwen2's 151,936 rows for 151,665 tokens) may teach a student that covers every token.
/// ValueError naming both sides otherwise.
void check_vocabularies(const train::Teacher& teacher, const text::Tokenizer* student_tokenizer,
                        int64_t student_vocab);

/// Logit distillation from a live teacher (Hinton's recipe): the teacher's logits for each
/// micro-batch, then autograd::distill_loss. Logs the parts "kd" (the divergence) and "ce".
/// The teacher must outlive the objective.
class LogitDistillation final : public train::Objective {
 public:
  LogitDistillation(train::Teacher& teacher, autograd::DistillOptions options = {});
  autograd::Var loss(nn::TransformerLM& model, const train::Batch& batch, Generator* dropout,
                     train::LossParts& parts) override;
  std::string name() const override { return "distill"; }
  std::string fingerprint() const override;
  const autograd::DistillOptions& options() const noexcept { return options_; }

 private:
  train::Teacher& teacher_;
  autograd::DistillOptions options_;
};

/// What a soft-label cache was made from; two caches with equal fields hold the same labels.
struct SoftLabelInfo {
  std::string teacher;       ///< Teacher::fingerprint()
  std::string teacher_name;  ///< Teacher::describe(), for messages
  std::string tokenizer;     ///< the teacher tokenizer's fingerprint ("" if none)
  std::string corpus;        ///< digest of the split's token stream
  std::string split;         ///< "train" or "validation"
  int64_t window = 0;        ///< tokens per window (the Trainer's context)
  int64_t windows = 0;       ///< fixed windows covered: TokenDataset::window_count
  int64_t k = 0;             ///< log-probabilities kept per position
  float temperature = 1.0f;  ///< the log-probabilities are log softmax(teacher / temperature)
  int64_t vocab = 0;         ///< the vocabulary the log-probabilities are normalized over
};

/// The teacher's top K log-probabilities for every position of a split's fixed windows, in a file.
///
/// Format (little-endian): "SCHSLC01", a u64 length and that many bytes of JSON (SoftLabelInfo),
/// zero padding to a multiple of 64 bytes, then ids [windows, window, K] as u16 (vocabularies up
/// to 65,536) or i32, then log-probabilities [windows, window, K] as f16, each position's K in
/// descending order. Written streamed to a temporary file and renamed (an interrupted build leaves
/// no file, or the old one); read memory-mapped.
///
/// Thread-safety: a built cache is immutable; lookups from several threads are safe.
class SoftLabelCache {
 public:
  struct BuildOptions {
    int64_t k = 32;
    float temperature = 2.0f;
    int64_t batch = 8;  ///< windows per teacher call
    /// Where progress goes (a bar on stderr by default); set `progress` false for none.
    bool progress = true;
    ProgressCallback on_progress;
  };
  /// Runs `teacher` over every fixed window of `split` (windows of `window` tokens) and writes the
  /// cache to `path`. Log-probabilities are normalized over the tokenizer's tokens when the
  /// teacher's vocabulary is padded beyond them. ValueError for bad options or a split without a
  /// whole window.
  static void build(train::Teacher& teacher, const train::TokenDataset& data, train::Split split,
                    int64_t window, const std::string& path, const BuildOptions& options);
  static void build(train::Teacher& teacher, const train::TokenDataset& data, train::Split split,
                    int64_t window, const std::string& path) {
    build(teacher, data, split, window, path, BuildOptions{});
  }

  /// Opens a cache (memory-mapped). IoError if unreadable; FormatError naming the problem for a
  /// wrong magic, bad header or a size that disagrees with the header (a truncated file).
  static SoftLabelCache open(const std::string& path);

  const SoftLabelInfo& info() const noexcept { return info_; }
  const std::string& path() const noexcept { return path_; }

  /// Refuses (ValueError naming what differs) a cache made from another corpus, split or window
  /// length than `data`'s `split` at `window`, or, when `teacher` is not null, from another
  /// teacher.
  void check(const train::TokenDataset& data, train::Split split, int64_t window,
             const train::Teacher* teacher = nullptr) const;

  /// The soft labels of the given windows: ids [B, window, K] and log-probabilities
  /// [B, window, K], ready for autograd::SoftTargets::top_k. IndexError for a window out of range.
  autograd::SoftTargets lookup(const std::vector<int64_t>& windows) const;

 private:
  std::string path_;
  SoftLabelInfo info_;
  std::shared_ptr<io::MappedFile> file_;
  const uint8_t* ids_ = nullptr;
  const uint16_t* log_probs_ = nullptr;
  int id_bytes_ = 2;
};

/// The digest of a token stream (SoftLabelInfo::corpus).
std::string corpus_digest(const std::vector<int32_t>& tokens);

/// Logit distillation from a soft-label cache: batches are the cache's fixed windows, and the
/// loss is autograd::distill_loss against their top K (the temperature is the cache's). Logs "kd"
/// and "ce". The cache must outlive the objective.
class CachedDistillation final : public train::Objective {
 public:
  /// Checks the cache against the training split of `data` (SoftLabelCache::check; the Trainer's
  /// context must equal the cache's window). `options.temperature` is replaced by the cache's;
  /// alpha, divergence and beta are used as given.
  CachedDistillation(const SoftLabelCache& cache, const train::TokenDataset& data,
                     autograd::DistillOptions options = {});
  autograd::Var loss(nn::TransformerLM& model, const train::Batch& batch, Generator* dropout,
                     train::LossParts& parts) override;
  bool fixed_windows() const override { return true; }
  std::string name() const override { return "distill-cache"; }
  std::string fingerprint() const override;

 private:
  const SoftLabelCache& cache_;
  autograd::DistillOptions options_;
};

// --- sequence-level distillation -----------------------------------------------------------------

/// One text the teacher wrote: the prompt it was given and its continuation. The same shape as
/// instruction data (prompt, completion).
struct TeacherText {
  std::string prompt;
  std::string completion;
};

/// Settings of teacher_corpus.
struct SequenceLevelOptions {
  /// How the teacher decodes (any settings: greedy, sampling, beam search). max_new_tokens bounds
  /// each continuation; num_return_sequences continuations per prompt share the prompt's KV
  /// cache and decode as one batch.
  generate::GenerationConfig generation;
  bool progress = true;  ///< report progress (on_progress, or the bar on stderr)
  ProgressCallback on_progress;
};

/// Sequence-level distillation's corpus (Kim and Rush, 2016): the teacher continues every prompt
/// with its own decoding; the student then trains on the texts (as_documents) as on any corpus.
/// The model needs a tokenizer. Returns num_return_sequences texts per prompt, in prompt order.
std::vector<TeacherText> teacher_corpus(std::shared_ptr<const infer::Model> teacher,
                                        const std::vector<std::string>& prompts,
                                        const SequenceLevelOptions& options);
/// prompt + completion of each text, for train::TokenDataset::build.
std::vector<std::string> as_documents(const std::vector<TeacherText>& texts);
/// Writes texts as JSON Lines, one {"prompt": ..., "completion": ...} object per line (atomic).
void save_jsonl(const std::vector<TeacherText>& texts, const std::string& path);
/// Reads what save_jsonl wrote (FormatError naming the line for anything else).
std::vector<TeacherText> load_jsonl(const std::string& path);

// --- on-policy distillation ----------------------------------------------------------------------

/// Settings of OnPolicyDistillation.
struct OnPolicyOptions {
  /// The loss on data batches. On batches the student wrote, only the divergence counts (alpha
  /// 1): their tokens are the student's own, not labels.
  autograd::DistillOptions loss{
      .temperature = 1.0f, .alpha = 1.0f, .divergence = autograd::Divergence::jsd, .beta = 0.5f};
  float lambda = 0.5f;              ///< share of batches the student writes itself, in [0, 1]
  int64_t prompt_tokens = 0;        ///< tokens of each data window kept as the prompt; 0: half
  float sample_temperature = 1.0f;  ///< the student's sampling temperature (0: greedy)
  uint64_t seed = 0;
};

/// On-policy distillation (generalized knowledge distillation, Agarwal et al. 2024, as TRL's
/// GKDTrainer): on a share `lambda` of micro-batches, the student continues the first
/// prompt_tokens of each window with its own samples (run on the inference engine, from a copy
/// of its current weights), and learns the teacher's distribution at every position it wrote: the
/// teacher corrects the student's own mistakes. Other micro-batches are logit distillation on the
/// data. Logs "kd", "ce" and "on_policy" (the share of the step's micro-batches written by the
/// student). The teacher must outlive the objective.
class OnPolicyDistillation final : public train::Objective {
 public:
  OnPolicyDistillation(train::Teacher& teacher, OnPolicyOptions options = {});
  autograd::Var loss(nn::TransformerLM& model, const train::Batch& batch, Generator* dropout,
                     train::LossParts& parts) override;
  std::string name() const override { return "distill-on-policy"; }
  std::string fingerprint() const override;

  /// The student's continuation of each window's prompt: windows [B, T] whose first
  /// prompt_tokens come from `batch` and the rest from the student. Exposed for tests.
  Tensor<int32_t> student_windows(const nn::TransformerLM& model, const train::Batch& batch);

 private:
  train::Teacher& teacher_;
  OnPolicyOptions options_;
  Generator gen_;
};

}  // namespace scholar::distill
