// scholar/train/data.hpp: corpora and token datasets for language-model training.
//
//   auto docs = train::read_documents({"/usr/share/doc/jargon-text/jargon.txt.gz"});
//   auto data = train::TokenDataset::build(docs, tokenizer, {.validation_fraction = 0.05});
//   auto [x, y] = data.batch(train::Split::train, /*B=*/16, /*T=*/128, gen);   // y is x shifted by
//   1
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scholar/tensor/random.hpp"
#include "scholar/text/tokenizer.hpp"

namespace scholar::train {

/// Reads a text file; `.gz` and `.dz` (dictzip) files are decompressed with the system's gzip.
/// IoError if it cannot be read; FormatError if it is empty or not valid UTF-8 (naming the byte
/// offset of the first invalid sequence).
std::string read_text_file(const std::string& path);

/// Splits text into documents at blank lines (paragraphs); documents keep their inner newlines.
std::vector<std::string> split_documents(const std::string& text);

/// read_text_file + split_documents over several files.
std::vector<std::string> read_documents(const std::vector<std::string>& paths);

enum class Split : uint8_t { train, validation };

/// One micro-batch: inputs [B, T] and targets [B, T] (the same tokens shifted by one; -100 marks a
/// position without a target). `windows` holds each row's fixed-window index when the batch was
/// drawn by TokenDataset::window_batch (for per-window data such as a soft-label cache), and is
/// empty otherwise. `segments` [B, T], when defined, packs several sequences per row (runs of
/// equal values; TransformerLM::forward keeps attention inside each).
struct Batch {
  Tensor<int32_t> inputs;
  Tensor<int32_t> targets;
  std::vector<int64_t> windows;
  Tensor<int32_t> segments;
};

/// Where the Trainer's batches come from: a token stream (TokenDataset) or examples whose loss
/// covers only some tokens (InstructionDataset). Implementations are read-only once built, so one
/// dataset may serve several trainers.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// A training batch of B rows of at most T tokens, drawn with gen.
  virtual Batch sample(Split split, int64_t B, int64_t T, Generator& gen) const = 0;
  /// Deterministic batch `index` for evaluation (consecutive data, wrapping around).
  virtual Batch eval_batch(Split split, int64_t B, int64_t T, int64_t index) const = 0;
  /// Whether the split can give batches of rows of T tokens (false: nothing to evaluate).
  virtual bool can_batch(Split split, int64_t T) const = 0;
  /// Largest token id + 1 (the model's vocabulary must cover it).
  virtual int32_t max_token() const = 0;
  /// Identifies the data (16 hex digits; equal data, equal fingerprints), so the ranks of a
  /// data-parallel run can check that they train on the same corpus. The default hashes a few
  /// deterministic batches; the datasets here hash all their tokens.
  virtual std::string fingerprint() const;
};

/// Tokenized training and validation streams. Documents are assigned to one split each (a seeded
/// shuffle), so no text is in both; within a split, documents are joined with an end-of-text token.
class TokenDataset final : public Dataset {
 public:
  struct Options {
    double validation_fraction = 0.05;  ///< share of documents held out (at least one if possible)
    uint64_t seed = 0;                  ///< for the document shuffle
    int32_t eos_id = -1;                ///< token between documents (-1: none)
  };

  TokenDataset() = default;
  /// Tokenizes `docs` (in parallel) and splits them. ValueError if there are no tokens.
  static TokenDataset build(const std::vector<std::string>& docs, const text::Tokenizer& tokenizer,
                            const Options& options);
  /// Wraps ready token streams.
  TokenDataset(std::vector<int32_t> train_tokens, std::vector<int32_t> validation_tokens);

  /// B windows of T + 1 tokens at random offsets of the split: inputs [B, T] and targets [B, T]
  /// (the same windows shifted by one). ValueError if the split has fewer than T + 1 tokens.
  std::pair<Tensor<int32_t>, Tensor<int32_t>> batch(Split split, int64_t B, int64_t T,
                                                    Generator& gen) const;
  /// Deterministic consecutive windows for evaluation: batch `index` of the split.
  std::pair<Tensor<int32_t>, Tensor<int32_t>> sequential_batch(Split split, int64_t B, int64_t T,
                                                               int64_t index) const;
  /// Fixed windows: window w of a split covers tokens [w T, w T + T + 1), so there are
  /// (tokens - 1) / T of them (0 if the split is shorter than T + 1 tokens).
  int64_t window_count(Split split, int64_t T) const;
  /// B windows drawn uniformly from the split's fixed windows (with replacement), their indices in
  /// Batch::windows. ValueError if the split has no whole window.
  Batch window_batch(Split split, int64_t B, int64_t T, Generator& gen) const;
  /// The given fixed windows, in order. IndexError for an index outside [0, window_count).
  Batch windows_at(Split split, int64_t T, const std::vector<int64_t>& windows) const;
  const std::vector<int32_t>& tokens(Split split) const noexcept {
    return split == Split::train ? train_ : validation_;
  }
  /// Largest token id + 1 (the model's vocabulary must cover it).
  int32_t max_token() const override { return max_token_; }

  // Dataset: random windows (batch), consecutive windows (sequential_batch).
  Batch sample(Split split, int64_t B, int64_t T, Generator& gen) const override;
  Batch eval_batch(Split split, int64_t B, int64_t T, int64_t index) const override;
  bool can_batch(Split split, int64_t T) const override {
    return static_cast<int64_t>(tokens(split).size()) >= T + 1;
  }
  std::string fingerprint() const override;

 private:
  std::vector<int32_t> train_, validation_;
  int32_t max_token_ = 0;
};

}  // namespace scholar::train
