// scholar/text/tokenizer.hpp: tokenizers, and byte-level BPE (GPT-2's scheme).
//
// Byte-level BPE works on the bytes of the text, so every byte string, valid UTF-8 or not,
// encodes and decodes back exactly. Text is first split into pieces by GPT-2's pre-tokenization
// rule (contractions, letter runs, number runs, other runs, whitespace), each optionally led by one
// space, then each piece's bytes are merged pair by pair in the order the merges were learned.
//
//   auto tok = text::BpeTokenizer::load("tokenizer.json");          // Hugging Face format
//   std::vector<int32_t> ids = tok.encode("Hello world");
//   std::string back = tok.decode(ids);                              // "Hello world"
//
//   text::BpeTokenizer::TrainOptions opt{.vocab_size = 8192, .special_tokens = {"<|endoftext|>"}};
//   auto mine = text::BpeTokenizer::train(corpus, opt);
//   mine.save("tokenizer.json");                                     // atomic
//
// Thread-safety: encode and decode are const and may run concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "scholar/io/json.hpp"

namespace scholar::text {

/// What every tokenizer offers.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// Token ids of `text`.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  /// The bytes the ids stand for (IndexError for an id outside the vocabulary).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  /// Number of token ids (the model's vocabulary size must be at least this).
  virtual int32_t vocab_size() const = 0;
};

/// Splits text into GPT-2 pre-tokenization pieces (string_views into `text`). Exposed for tests.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

/// Byte-level byte-pair encoding.
class BpeTokenizer : public Tokenizer {
 public:
  struct TrainOptions {
    int32_t vocab_size = 8192;                ///< including the 256 bytes and the special tokens
    std::vector<std::string> special_tokens;  ///< appended after the merges, in this order
    int64_t min_frequency = 2;                ///< stop when the best pair occurs less often
    /// Called now and then with (merges done, merges wanted); for progress bars.
    std::function<void(int64_t, int64_t)> progress;
  };

  BpeTokenizer();  // the 256 byte tokens, no merges

  /// Learns merges from texts (ValueError for an impossible vocabulary size; empty texts are fine).
  static BpeTokenizer train(std::span<const std::string_view> texts, const TrainOptions& options);
  /// Convenience for one corpus string.
  static BpeTokenizer train(std::string_view corpus, const TrainOptions& options);
  /// GPT-2's own files: encoder.json (token -> id) and vocab.bpe (merges). FormatError naming the
  /// file and entry for anything inconsistent.
  static BpeTokenizer from_gpt2_files(const std::string& encoder_json,
                                      const std::string& vocab_bpe);
  /// A Hugging Face tokenizer.json with a BPE model and GPT-2 style byte-level pre-tokenization.
  static BpeTokenizer load(const std::string& tokenizer_json);
  static BpeTokenizer from_json(const io::Json& j, std::string_view source = "tokenizer.json");

  /// Writes tokenizer.json (Hugging Face format) atomically.
  void save(const std::string& path) const;
  io::Json to_json() const;

  /// Encodes text. Special tokens in the text are plain text unless allow_special is true, in which
  /// case exact occurrences become their ids (as Hugging Face tokenizers do by default).
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;
  std::vector<int32_t> encode(std::string_view text) const override { return encode(text, false); }
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }

  /// The bytes of one token.
  const std::string& token_bytes(int32_t id) const;
  /// The id of the token with exactly these bytes (or special-token text), if any.
  std::optional<int32_t> find(std::string_view bytes) const;
  /// Ids of the special tokens, in order.
  const std::vector<int32_t>& special_ids() const noexcept { return special_ids_; }
  bool is_special(int32_t id) const;
  /// Number of learned merges.
  size_t merge_count() const noexcept { return merges_.size(); }

 private:
  void add_token(std::string bytes, bool special);
  void add_merge(int32_t left, int32_t right);
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  std::array<int32_t, 256> byte_ids_{};           // byte -> id of its one-byte token
  std::vector<std::string> tokens_;               // id -> bytes (special: their text)
  std::unordered_map<std::string, int32_t> ids_;  // bytes -> id (non-special)
  std::vector<int32_t> special_ids_;
  std::unordered_map<std::string, int32_t> special_by_text_;
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> (left, right)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>>
      merge_rank_;  // (left,right) -> (rank, id)
};

}  // namespace scholar::text
