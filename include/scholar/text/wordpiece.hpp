// scholar/text/wordpiece.hpp: WordPiece, the tokenizer of BERT and of the sentence-embedding
// models built on it (all-MiniLM-L6-v2, bge, e5, ...), following Hugging Face tokenizers' rules.
//
// Text is normalized (BertNormalizer: control characters dropped, whitespace made spaces, CJK
// ideographs surrounded by spaces, accents stripped through NFD, lowercased), split at whitespace
// and around every punctuation character (BertPreTokenizer), and each word is cut greedily into
// the longest vocabulary pieces from its start, later pieces carrying the "##" prefix. A word with
// no such cut, or longer than max_input_chars_per_word, becomes [UNK].
//
//   auto tok = text::WordPieceTokenizer::load("tokenizer.json");   // or
//   from_vocab_txt("vocab.txt") tok.encode("Héllo, world!")               // [7592, 1010, 2088,
//   999] ("hello" "," "world" "!") tok.encode_for_model("Héllo", 128)        // [101, 7592, 102]:
//   [CLS] ... [SEP], at most 128
//
// Thread-safety: const members may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "scholar/text/tokenizer.hpp"

namespace scholar::io {
class GgufFile;
}

namespace scholar::text {

/// The normalizer's and the model's settings (Hugging Face's BertNormalizer and WordPiece
/// fields, with their defaults).
struct WordPieceOptions {
  bool clean_text = true;            ///< drop control characters, turn whitespace into ' '
  bool handle_chinese_chars = true;  ///< surround CJK ideographs with spaces
  /// Strip accents (NFD, then drop nonspacing marks); unset follows `lowercase`.
  std::optional<bool> strip_accents;
  bool lowercase = true;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  int64_t max_input_chars_per_word = 100;  ///< longer words become [UNK]
  std::string cls_token = "[CLS]";         ///< put before the text by encode_for_model
  std::string sep_token = "[SEP]";         ///< put after it
  friend bool operator==(const WordPieceOptions&, const WordPieceOptions&) = default;
};

/// BERT's WordPiece tokenizer.
class WordPieceTokenizer : public Tokenizer {
 public:
  using Options = WordPieceOptions;

  /// BERT's special tokens, the default `special` list.
  static std::vector<std::string> bert_special_tokens();

  /// A vocabulary in id order. The tokens of `special` that the vocabulary has are special:
  /// matched whole by encode_with_special and left out by decode. FormatError naming `source` for
  /// an empty or duplicated entry, or if the unknown token is not in the vocabulary.
  WordPieceTokenizer(std::vector<std::string> vocab, Options options,
                     const std::vector<std::string>& special = bert_special_tokens(),
                     std::string_view source = "WordPiece vocabulary");

  /// A Hugging Face tokenizer.json with a WordPiece model (its normalizer, pre-tokenizer and
  /// post-processor read where they say something scholar implements; FormatError otherwise).
  static WordPieceTokenizer load(const std::string& tokenizer_json);
  static WordPieceTokenizer from_json(const io::Json& j,
                                      std::string_view source = "tokenizer.json");
  /// BERT's vocab.txt (one token per line, line number = id) with these options; if a
  /// tokenizer_config.json sits beside it, its do_lower_case, strip_accents and
  /// tokenize_chinese_chars override them.
  static WordPieceTokenizer from_vocab_txt(const std::string& vocab_txt, Options options = {});
  /// What train() learns.
  struct TrainOptions {
    int32_t vocab_size = 8192;  ///< including BERT's five special tokens and the alphabet
    int64_t min_frequency = 2;  ///< stop merging when the best pair occurs less often
    /// Called now and then with (merges done, merges wanted); for progress bars.
    std::function<void(int64_t, int64_t)> progress;
  };
  /// Learns a vocabulary from texts as Hugging Face's WordPieceTrainer does: the texts are
  /// normalized and pre-tokenized with `options`, every character becomes a piece (word-initial,
  /// and "##"-prefixed inside words), then the most frequent adjacent pair of pieces is merged
  /// into a new piece until vocab_size is reached. ValueError for a vocab_size below the special
  /// tokens.
  static WordPieceTokenizer train(std::span<const std::string_view> texts,
                                  const TrainOptions& train_options, Options options = {});

  /// llama.cpp's BERT GGUF vocabulary (tokenizer.ggml.model "bert"): word-initial pieces carry a
  /// U+2581 prefix there and continuations none; special ids from tokenizer.ggml.*_token_id.
  static WordPieceTokenizer from_gguf(const io::GgufFile& file);

  std::string_view kind() const override { return "wordpiece"; }
  std::string fingerprint() const override;
  /// Hugging Face's tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece, the
  /// [CLS] $A [SEP] template).
  io::Json to_json() const override;

  /// Ids of the text's pieces, no [CLS]/[SEP]; special-token text is plain text.
  std::vector<int32_t> encode(std::string_view text) const override;
  /// As encode(), but exact occurrences of special tokens ([MASK], [SEP], ...) become their ids.
  std::vector<int32_t> encode_with_special(std::string_view text) const override;
  /// What a BERT model is fed: [CLS] encode(text) [SEP], the text's pieces cut so the whole is at
  /// most max_length ids (0: no limit; ValueError if max_length is 1 or 2, which leaves no room).
  std::vector<int32_t> encode_for_model(std::string_view text, size_t max_length = 0) const;
  /// The normalized text encode() splits (exposed for tests).
  std::string normalize(std::string_view text) const;
  /// The words of normalized text, as BertPreTokenizer splits them (exposed for tests).
  std::vector<std::string_view> pre_tokenize(std::string_view normalized) const;

  /// Tokens joined by spaces, continuations glued to what precedes them, special tokens dropped.
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.size()); }
  /// The token as the vocabulary writes it ("##ing" for a continuation).
  const std::string& token_bytes(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::optional<int32_t> find(std::string_view token) const override;

  const Options& options() const noexcept { return options_; }
  /// The [CLS] and [SEP] ids (-1 if the vocabulary lacks them).
  int32_t cls_id() const noexcept { return cls_; }
  int32_t sep_id() const noexcept { return sep_; }

 private:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  std::optional<int32_t> lookup(std::string_view piece, bool continuation) const;

  Options options_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<int32_t> special_;  // sorted
  int32_t unk_ = -1, cls_ = -1, sep_ = -1;
  size_t longest_ = 0;  // bytes of the longest token, prefix removed
};

}  // namespace scholar::text
