// scholar/rag/embedder.hpp: texts to vectors, for dense retrieval.
//
// An Embedder maps a text to a fixed-size vector such that texts about the same thing lie close
// together (cosine similarity). SentenceEncoder runs a transformer on the inference engine (no
// autograd) and pools its token states into one vector, as sentence-transformers does:
//
//   auto enc = rag::SentenceEncoder::load("all-MiniLM-L6-v2");   // a sentence-transformers dir
//   std::vector<float> v = enc->embed({"What is a kludge?", "A clumsy fix."});   // 2 x 384
//   float cos = rag::dot(std::span(v).first(384), std::span(v).last(384));     // normalized
//
// It reads sentence-transformers directories (modules.json, 1_Pooling/config.json, 2_Normalize,
// sentence_bert_config.json around a Hugging Face BERT), plain Hugging Face BERT directories (mean
// pooling, normalized) and llama.cpp's BERT GGUF files (pooling from <arch>.pooling_type). Texts
// are batched and packed without padding: each text is its own sequence of one engine batch,
// attending only to itself, so a batch gives the vectors of one text at a time (to float
// rounding).
//
// Thread-safety: embed() may be called from several threads; calls on one SentenceEncoder take
// turns (it owns one inference session). For parallel embedding, make one SentenceEncoder per
// thread from one shared infer::Model (the weights are shared, not copied).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scholar/infer/model.hpp"

namespace scholar {
class ThreadPool;
}

namespace scholar::rag {

/// What every embedder offers (SentenceEncoder; a caller's own, e.g. a remote service).
class Embedder {
 public:
  virtual ~Embedder() = default;
  /// Values per vector.
  virtual size_t dim() const = 0;
  /// A digest of everything that decides the vectors (weights, tokenizer, pooling, length), as
  /// 16 hex digits: a store refuses vectors from an embedder with another fingerprint.
  virtual std::string fingerprint() const = 0;
  /// A name for people ("all-MiniLM-L6-v2 (mean, normalized)").
  virtual std::string name() const = 0;
  /// Where it can be loaded from again (a path), or "" if it cannot; stores record it, so that
  /// tools can reopen a store without being told its embedder.
  virtual std::string location() const { return {}; }
  /// Whether vectors have length 1 (then cosine similarity is their dot product).
  virtual bool normalized() const = 0;
  /// The vectors of `texts`, row after row (texts.size() x dim()).
  virtual std::vector<float> embed(std::span<const std::string> texts) const = 0;
  /// One text's vector.
  std::vector<float> embed(std::string_view text) const;
  /// Brace lists: enc.embed({"a", "b"}).
  std::vector<float> embed(std::initializer_list<std::string> texts) const {
    return embed(std::span<const std::string>(texts.begin(), texts.size()));
  }
};

/// How a model's token states become one vector (sentence-transformers' Pooling modes).
enum class Pooling : uint8_t {
  mean,  ///< the mean of every token's state (including [CLS] and [SEP], as sentence-transformers)
  cls,   ///< the first token's state
  max,   ///< the largest value of each dimension over the tokens
  last   ///< the last token's state (decoder embedding models)
};
/// "mean", "cls", "max" or "last".
std::string_view pooling_name(Pooling p);

/// Options of SentenceEncoder.
struct SentenceEncoderOptions {
  /// Texts per engine batch, at most; 1 to 64 (the session's sequence limit).
  int batch_size = 32;
  /// Tokens per engine batch, at most (a batch always takes at least one text); 0: 512 per thread
  /// of the pool. Small batches keep a layer's activations in the core's L2: on the Sapphire
  /// Rapids host with bf16 products, 32 texts of 128 tokens ran at 106 texts/s in one batch and at
  /// 136 in batches of 512 tokens on one thread (179 and 209 with 1,024 on two).
  int64_t max_batch_tokens = 0;
  /// Tokens a text is cut to, [CLS] and [SEP] included; 0: the model directory's
  /// max_seq_length (sentence_bert_config.json), else the model's context length.
  int64_t max_length = 0;
  /// Store the model's matrices as this type (f32 keeps them as loaded; f16, q8_0 convert).
  WeightType weight_type = WeightType::f32;
  /// The pool the model runs on (not owned; must outlive the encoder); null: the caller's
  /// current pool at each call.
  ThreadPool* pool = nullptr;
};

/// A transformer encoder plus pooling and optional normalization.
class SentenceEncoder : public Embedder {
 public:
  /// Loads a sentence-transformers directory, a Hugging Face BERT directory or a BERT GGUF file.
  /// FormatError naming the file for modules scholar does not run (Dense layers, several pooling
  /// modes at once) or a model without a tokenizer.
  static std::unique_ptr<SentenceEncoder> load(const std::string& path,
                                               const SentenceEncoderOptions& options = {});
  /// An encoder over a loaded model (which needs a tokenizer). `name` is for people.
  SentenceEncoder(std::shared_ptr<const infer::Model> model, Pooling pooling, bool normalize,
                  const SentenceEncoderOptions& options = {}, std::string name = "");
  ~SentenceEncoder() override;

  size_t dim() const override;
  std::string fingerprint() const override;
  std::string name() const override;
  /// The path load() was given (absolute), or "" for an encoder built from a model in memory.
  std::string location() const override { return location_; }
  bool normalized() const override { return normalize_; }
  std::vector<float> embed(std::span<const std::string> texts) const override;
  using Embedder::embed;

  /// The ids a text is run as: [CLS] pieces [SEP] for WordPiece, cut to max_length().
  std::vector<int32_t> tokenize(std::string_view text) const;
  /// Tokens a text is cut to.
  int64_t max_length() const noexcept { return max_length_; }
  Pooling pooling() const noexcept { return pooling_; }
  const infer::Model& model() const noexcept { return *model_; }
  std::shared_ptr<const infer::Model> model_ptr() const noexcept { return model_; }
  /// Whether texts are lowercased before tokenizing (sentence_bert_config.json's do_lower_case).
  void set_lowercase(bool on) noexcept { lowercase_ = on; }
  /// Writes the model as a GGUF file llama.cpp runs as an embedding model (its pooling in
  /// <arch>.pooling_type); matrices in `type`. Atomic. SentenceEncoder::load reads it back.
  void save_gguf(const std::string& path, WeightType type = WeightType::f32) const;

 private:
  std::shared_ptr<const infer::Model> model_;
  Pooling pooling_;
  bool normalize_;
  bool lowercase_ = false;
  int64_t max_length_;
  int batch_size_;
  int64_t max_batch_tokens_;
  ThreadPool* pool_;
  std::string name_;
  std::string location_;
  mutable std::string fingerprint_;  // computed once
  mutable std::mutex mu_;            // guards session_ and fingerprint_
  mutable std::unique_ptr<infer::Session> session_;
};

/// Dot product of two vectors of equal length (the cosine similarity of normalized vectors).
float dot(std::span<const float> a, std::span<const float> b);

}  // namespace scholar::rag
