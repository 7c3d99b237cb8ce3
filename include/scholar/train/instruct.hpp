// scholar/train/instruct.hpp: instruction data for supervised fine-tuning (SFT).
//
// Each example is a conversation (system/user/assistant messages) or a prompt and its completion.
// Rendered with a chat template (text/chat.hpp) and tokenized, an example keeps the loss on the
// assistant's tokens only (targets -100 elsewhere), as TRL's SFTTrainer does with
// completion-only loss. Batches are padded (rows of the batch's longest example) or packed (rows
// of exactly T tokens holding several examples, kept apart by segments so no example attends to
// another).
//
// JSONL, one example per line, either form:
//   {"prompt": "What is a daemon?", "completion": "A program that runs in the background."}
//   {"messages": [{"role": "user", "content": "What is a daemon?"},
//                 {"role": "assistant", "content": "A program that runs in the background."}]}
// (a prompt/completion pair is the conversation user: prompt, assistant: completion).
//
//   auto data = train::InstructionDataset::load_jsonl("sft.jsonl", tok,
//                                                     {.max_length = 256, .pack = true});
//   train::Trainer trainer(model, data, opt, &tok);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scholar/text/chat.hpp"
#include "scholar/train/data.hpp"

namespace scholar::train {

/// One instruction example: a conversation, and the JSONL line it came from (0 if none).
struct Conversation {
  std::vector<text::ChatMessage> messages;
  int64_t line = 0;
};

/// Reads a JSONL file of prompt/completion or messages examples (blank lines skipped).
/// FormatError naming the file and line for invalid JSON, a missing or non-string field, an
/// unknown role, or a conversation with no assistant message.
std::vector<Conversation> read_instruction_jsonl(const std::string& path);

/// Writes examples as JSONL (messages form; atomically).
void save_instruction_jsonl(const std::vector<Conversation>& examples, const std::string& path);

/// Tokenized conversations with loss masks, split into training and validation examples.
class InstructionDataset final : public Dataset {
 public:
  struct Options {
    /// Longest example in tokens (the training context). A longer example keeps its prompt and
    /// loses the end of its reply (counted in truncated()); one whose prompt alone does not fit is
    /// an error naming its line.
    int64_t max_length = 0;
    /// How conversations become text: the model's own (from the tokenizer's chat_template when
    /// text::ChatTemplate::detect knows it) unless `chat_template` names one.
    std::string chat_template;          ///< "" (the tokenizer's, else "plain"), or a format name
    bool pack = false;                  ///< rows of exactly T tokens holding several examples
    bool train_on_prompt = false;       ///< the loss on every token, not only the replies
    double validation_fraction = 0.05;  ///< share of examples held out (0: none)
    uint64_t seed = 0;                  ///< the train/validation split
  };

  InstructionDataset() = default;
  /// Renders, tokenizes and splits. ValueError for max_length < 2 or no examples; FormatError
  /// naming the line of an example whose prompt leaves no room for a reply.
  static InstructionDataset build(const std::vector<Conversation>& examples,
                                  const text::Tokenizer& tokenizer, const Options& options);
  /// read_instruction_jsonl + build.
  static InstructionDataset load_jsonl(const std::string& path, const text::Tokenizer& tokenizer,
                                       const Options& options);

  /// Examples in a split.
  int64_t size(Split split) const noexcept;
  /// Example i of a split: its tokens and, per token, whether the loss covers it.
  const std::vector<int32_t>& tokens(Split split, int64_t i) const;
  const std::vector<uint8_t>& trainable(Split split, int64_t i) const;
  /// Examples cut to max_length.
  int64_t truncated() const noexcept { return truncated_; }
  /// The chat format used.
  const text::ChatTemplate& chat_template() const noexcept { return template_; }
  /// Tokens that carry a loss, over the training split.
  int64_t target_tokens() const noexcept { return target_tokens_; }

  // Dataset: B random examples per batch (padded to the longest, or packed into rows of T).
  Batch sample(Split split, int64_t B, int64_t T, Generator& gen) const override;
  Batch eval_batch(Split split, int64_t B, int64_t T, int64_t index) const override;
  bool can_batch(Split split, int64_t T) const override;
  int32_t max_token() const override { return max_token_; }
  /// Hashes every example's tokens and loss mask, and the options.
  std::string fingerprint() const override;

 private:
  struct Example {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> trainable;
  };
  Batch make_batch(Split split, const std::vector<int64_t>& which, int64_t T) const;
  const std::vector<Example>& split(Split s) const { return s == Split::train ? train_ : val_; }
  std::vector<Example> train_, val_;
  text::ChatTemplate template_;
  Options options_;
  int32_t pad_id_ = 0;
  int32_t max_token_ = 0;
  int64_t truncated_ = 0;
  int64_t target_tokens_ = 0;
};

}  // namespace scholar::train
