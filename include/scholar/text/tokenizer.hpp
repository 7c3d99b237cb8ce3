// scholar/text/tokenizer.hpp: tokenizers, and byte-level BPE (GPT-2's scheme).
//
// Byte-level BPE works on the bytes of the text, so every byte string, valid UTF-8 or not,
// encodes and decodes back exactly. Text is first split into pieces by a pre-tokenization rule
// (GPT-2's by default: contractions, letter runs, number runs, other runs, whitespace, each
// optionally led by one space; Llama 3's and Qwen2's on request), then each piece's bytes are
// merged pair by pair in the order the merges were learned.
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
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "scholar/io/json.hpp"

namespace scholar::io {
class GgufFile;
}

namespace scholar::text {

/// The ids of the tokens that play a role around text (-1: none).
struct SpecialTokens {
  int32_t bos = -1;  ///< begins a sequence
  int32_t eos = -1;  ///< ends one (generation stops there)
  int32_t pad = -1;  ///< fills a batch's short rows
  int32_t unk = -1;  ///< stands for what the vocabulary cannot spell
  friend bool operator==(const SpecialTokens&, const SpecialTokens&) = default;
};

/// What every tokenizer offers (BpeTokenizer, SpmTokenizer). Models, datasets, trainers,
/// checkpoints and generation all take a Tokenizer, so any kind works everywhere.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// "bpe" or "spm".
  virtual std::string_view kind() const = 0;
  /// A digest of everything that decides ids (kind, rules, each token and merge or score), as 16
  /// hex digits: equal fingerprints mean the same ids for the same text and the same text for the
  /// same ids. Use it to check that two models share a vocabulary (distillation).
  virtual std::string fingerprint() const = 0;
  /// The tokenizer as JSON: Hugging Face's tokenizer.json for BPE, scholar's own SPM format
  /// ({"type": "scholar-spm", ...}). tokenizer_from_json reads both back.
  virtual io::Json to_json() const = 0;
  /// Writes to_json() to `path` atomically.
  void save(const std::string& path) const;
  /// BOS, EOS, PAD and UNK ids. Loaders set them from the file's metadata; otherwise they are
  /// guessed from the special tokens' names (<|endoftext|>, <s>, </s>, <unk>, <pad>, ...).
  const SpecialTokens& special_tokens() const noexcept { return special_tokens_; }
  /// Sets them (IndexError for an id outside the vocabulary; -1 means none).
  void set_special_tokens(const SpecialTokens& s);
  /// The model's chat template as its files carry it (Jinja source from tokenizer_config.json's
  /// "chat_template" or GGUF's tokenizer.chat_template; "" when none). text::ChatTemplate::detect
  /// turns it into a format scholar renders.
  const std::string& chat_template() const noexcept { return chat_template_; }
  void set_chat_template(std::string jinja) { chat_template_ = std::move(jinja); }
  /// Token ids of `text`; special-token text is plain text.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  /// As encode(), but exact occurrences of special tokens' text become their ids (as Hugging Face
  /// and llama.cpp do with special-token parsing on).
  virtual std::vector<int32_t> encode_with_special(std::string_view text) const = 0;
  /// The bytes the ids stand for (IndexError for an id outside the vocabulary).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  /// Number of token ids (the model's vocabulary size must be at least this).
  virtual int32_t vocab_size() const = 0;
  /// The bytes one token stands for when decoded (IndexError outside the vocabulary).
  virtual const std::string& token_bytes(int32_t id) const = 0;
  /// Whether the id is a special (control) token.
  virtual bool is_special(int32_t id) const = 0;
  /// The id of the token written `text` in the vocabulary (special tokens by their text), if any.
  virtual std::optional<int32_t> find(std::string_view text) const = 0;

 protected:
  /// Fills special_tokens() from the names of the special tokens when nothing else says.
  void guess_special_tokens();
  SpecialTokens special_tokens_;
  std::string chat_template_;
};

/// SpecialTokens as {"bos": id, "eos": id, "pad": id, "unk": id} (-1: none), and back (a missing
/// key is -1; FormatError naming `source` for a value that is not an integer).
io::Json special_tokens_to_json(const SpecialTokens& s);
SpecialTokens special_tokens_from_json(const io::Json& j, std::string_view source);
/// For loaders: tok.set_special_tokens(s), with an id outside the vocabulary reported as the
/// FormatError of a bad file named `source`.
void set_special_tokens_from_file(Tokenizer& tok, const SpecialTokens& s, std::string_view source);

/// Reads a tokenizer from JSON: a Hugging Face tokenizer.json with a BPE model, or scholar's SPM
/// format. FormatError naming `source` for anything else.
std::shared_ptr<Tokenizer> tokenizer_from_json(const io::Json& j, std::string_view source);
/// The same from a file.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path);

/// Splits text into GPT-2 pre-tokenization pieces (string_views into `text`). Exposed for tests.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

/// The rule that splits text into pieces before BPE merges them (merges never cross pieces).
enum class PreTokenizer : uint8_t {
  /// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  gpt2,
  /// Llama 3 (and OpenAI's cl100k): (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
  /// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  llama3,
  /// Qwen2: as llama3, but every digit is a piece of its own (\p{N} instead of \p{N}{1,3}).
  qwen2
};

/// The name llama.cpp writes to tokenizer.ggml.pre: "gpt-2", "llama-bpe" or "qwen2".
std::string_view pre_tokenizer_name(PreTokenizer rule);
/// The rule for a tokenizer.ggml.pre value ("default" and "gpt-2"; "llama-bpe", "llama3",
/// "llama-v3"; "qwen2"), or nullopt for one scholar does not implement.
std::optional<PreTokenizer> pre_tokenizer_from_name(std::string_view name);
/// Splits text into the pieces of `rule` (string_views into `text`). \s is JavaScript's class for
/// gpt2 (as gpt-3-encoder) and Unicode White_Space for the others (as Hugging Face tokenizers and
/// llama.cpp).
std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer rule);

/// Byte-level byte-pair encoding.
class BpeTokenizer : public Tokenizer {
 public:
  struct TrainOptions {
    int32_t vocab_size = 8192;                ///< including the 256 bytes and the special tokens
    std::vector<std::string> special_tokens;  ///< appended after the merges, in this order
    int64_t min_frequency = 2;                ///< stop when the best pair occurs less often
    PreTokenizer pre_tokenizer = PreTokenizer::gpt2;
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

  std::string_view kind() const override { return "bpe"; }
  std::string fingerprint() const override;
  /// tokenizer.json (Hugging Face format); save() writes it.
  io::Json to_json() const override;

  /// Encodes text. Special tokens in the text are plain text unless allow_special is true, in which
  /// case exact occurrences become their ids (as Hugging Face tokenizers do by default).
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;
  std::vector<int32_t> encode(std::string_view text) const override { return encode(text, false); }
  std::vector<int32_t> encode_with_special(std::string_view text) const override {
    return encode(text, true);
  }
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }

  /// The bytes of one token.
  const std::string& token_bytes(int32_t id) const override;
  /// The id of the token with exactly these bytes (or special-token text), if any.
  std::optional<int32_t> find(std::string_view bytes) const override;
  /// Ids of the special tokens, in order.
  const std::vector<int32_t>& special_ids() const noexcept { return special_ids_; }
  bool is_special(int32_t id) const override;
  /// Number of learned merges.
  size_t merge_count() const noexcept { return merges_.size(); }
  /// The pre-tokenization rule (gpt2 unless the file or training options named another).
  PreTokenizer pre_tokenizer() const noexcept { return pre_; }
  /// Changes the rule (for a vocabulary whose file does not say which rule it was trained with).
  void set_pre_tokenizer(PreTokenizer rule) noexcept { pre_ = rule; }
  /// Whether a piece that is itself a token becomes that token without merging (Hugging Face's
  /// BPE "ignore_merges", which Llama 3 sets; llama.cpp sets it for the llama-bpe pre-tokenizer).
  bool ignore_merges() const noexcept { return ignore_merges_; }
  void set_ignore_merges(bool on) noexcept { ignore_merges_ = on; }

 private:
  void add_token(std::string bytes, bool special);
  void add_merge(int32_t left, int32_t right);
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  PreTokenizer pre_ = PreTokenizer::gpt2;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_ids_{};           // byte -> id of its one-byte token
  std::vector<std::string> tokens_;               // id -> bytes (special: their text)
  std::unordered_map<std::string, int32_t> ids_;  // bytes -> id (non-special)
  std::vector<int32_t> special_ids_;
  std::unordered_map<std::string, int32_t> special_by_text_;
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> (left, right)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>>
      merge_rank_;  // (left,right) -> (rank, id)
};

/// SentencePiece-style tokenization as llama.cpp runs it for GGUF files with tokenizer.ggml.model
/// "llama" (Llama 1 and 2, Mistral, TinyLlama, ...). Spaces become U+2581 and one is put before the
/// text (add_space_prefix); the text's characters then merge pairwise, the pair that forms the
/// highest-scoring piece first, and characters that end up in no piece are emitted as byte pieces
/// (<0x41>). Decoding turns U+2581 back into spaces and byte pieces into their bytes; it keeps the
/// leading space the prefix put there.
///
/// Thread-safety: encode and decode are const and may run concurrently.
class SpmTokenizer : public Tokenizer {
 public:
  /// GGUF's token types (tokenizer.ggml.token_type).
  enum class PieceType : uint8_t {
    undefined = 0,
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6
  };
  struct Piece {
    std::string text;  ///< as stored, with U+2581 for spaces; "<0xXX>" for byte pieces
    float score = 0;   ///< higher merges first
    PieceType type = PieceType::normal;
  };

  /// FormatError (naming `source`) for an empty vocabulary or a malformed byte piece.
  SpmTokenizer(std::vector<Piece> pieces, bool add_space_prefix, std::string source = "SPM");
  /// From tokenizer.ggml.tokens, .scores, .token_type and .add_space_prefix, with the BOS, EOS,
  /// PAD and UNK ids of tokenizer.ggml.*_token_id.
  static SpmTokenizer from_gguf(const io::GgufFile& file);
  /// From to_json()'s format.
  static SpmTokenizer from_json(const io::Json& j, std::string_view source = "SPM JSON");

  std::string_view kind() const override { return "spm"; }
  std::string fingerprint() const override;
  /// {"type": "scholar-spm", "version": 1, "add_space_prefix": b, "special_tokens": {...},
  ///  "pieces": [[text, score, type], ...]}
  io::Json to_json() const override;

  /// Encodes text. With allow_special, control pieces' text becomes their ids; user-defined pieces
  /// always do (as in llama.cpp). ValueError if a character has no piece and no byte fallback.
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;
  std::vector<int32_t> encode(std::string_view text) const override { return encode(text, false); }
  std::vector<int32_t> encode_with_special(std::string_view text) const override {
    return encode(text, true);
  }
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  const std::string& token_bytes(int32_t id) const override;
  bool is_special(int32_t id) const override;
  /// The id of the piece written `text` (with U+2581 for spaces, as stored).
  std::optional<int32_t> find(std::string_view text) const override;

  const std::vector<Piece>& pieces() const noexcept { return pieces_; }
  bool add_space_prefix() const noexcept { return add_space_prefix_; }

 private:
  void encode_raw(std::string_view escaped, std::vector<int32_t>& out) const;
  std::vector<Piece> pieces_;
  std::vector<std::string> bytes_;  // id -> decoded bytes
  std::unordered_map<std::string, int32_t> by_text_;
  std::array<int32_t, 256> byte_ids_{};
  std::vector<int32_t> special_;    // control and user-defined
  std::vector<int32_t> partition_;  // pieces matched whole in text: + unknown
  bool add_space_prefix_ = true;
};

}  // namespace scholar::text
