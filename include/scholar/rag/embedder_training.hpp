// scholar/rag/embedder_training.hpp: an embedder scholar trains itself, for users without a
// pretrained sentence encoder, and the measures of how well one retrieves.
//
// train_embedder() teaches an nn::Encoder contrastively on (query, passage) pairs made from the
// user's own corpus (a title and its text, a question and its answer, two spans of one document):
// InfoNCE with in-batch negatives (sentence-transformers' MultipleNegativesRankingLoss), where each
// query's own passage must score above every other passage of the batch:
//
//   loss = mean_i CE(scale * cos(q_i, p_j) over j, target i)
//
//   auto tok = text::WordPieceTokenizer::train(corpus_views, {.vocab_size = 8192});
//   nn::Encoder enc(nn::TransformerConfig::bert(tok.vocab_size(), 128, 4, 256, 4, 1024), 1);
//   rag::train_embedder(enc, tok, pairs, {.steps = 2000});
//   rag::save_sentence_encoder(enc, tok, "my-embedder");      // sentence-transformers layout
//   auto embedder = rag::SentenceEncoder::load("my-embedder"); // the fast inference path
//
// Thread-safety: one training per encoder at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "scholar/nn/encoder.hpp"
#include "scholar/rag/embedder.hpp"
#include "scholar/rag/loader.hpp"
#include "scholar/rag/splitter.hpp"
#include "scholar/text/wordpiece.hpp"

namespace scholar::rag {

/// A query and the passage that answers it.
struct TextPair {
  std::string query;
  std::string passage;
};

/// How make_training_pairs turns documents into pairs.
struct PairOptions {
  /// Each document's passage is its first chunk under these settings (use the store's).
  SplitterOptions splitter{.chunk_size = 500, .chunk_overlap = 50};
  /// A (title, passage) pair for each document whose metadata has a "headword" or "title".
  bool titles = true;
  /// The forms a title query takes, one drawn at random per pair ("{title}" is replaced), so the
  /// embedder meets both bare terms and questions.
  std::vector<std::string> title_templates = {"{title}", "What is {title}?"};
  /// A (sentence, passage) pair: a sentence of the passage with some of its words left out, so
  /// that the query is a shorter, looser span of the same text.
  bool spans = true;
  double drop_words = 0.3;  ///< share of a span's words left out, at random
  uint64_t seed = 1;
};

/// Pairs made from a corpus for train_embedder: a dictionary entry's headword and its definition,
/// a span of a document and the passage it came from. Documents without text give none.
std::vector<TextPair> make_training_pairs(std::span<const Document> documents,
                                          const PairOptions& options = {});

/// Settings of train_embedder.
struct EmbedderTrainOptions {
  int64_t steps = 1000;
  int batch_size = 32;  ///< pairs per step; each query's negatives are the batch's other passages
  float lr = 5e-4f;     ///< AdamW, warmed up linearly then decayed by a cosine to lr / 10
  int64_t warmup_steps = 100;
  float weight_decay = 0.01f;
  float scale = 20.0f;    ///< cosine similarities times this are the logits (1 / temperature)
  bool symmetric = true;  ///< also each passage against the batch's queries (averaged)
  int64_t max_query_length = 32;  ///< tokens, [CLS] and [SEP] included
  int64_t max_passage_length = 128;
  double clip_grad_norm = 1.0;  ///< 0: no clipping
  uint64_t seed = 1;            ///< batch sampling and dropout
  /// Called after each step with (step, loss); the default draws a progress bar with the loss.
  std::function<void(int64_t step, float loss)> on_step;
};

/// What train_embedder reports.
struct EmbedderTrainResult {
  std::vector<float> losses;  ///< per step
  double seconds = 0;
  double pairs_per_second = 0;
};

/// Trains `encoder` in place on `pairs` (ValueError if there are fewer pairs than batch_size, or a
/// bad option). Batches never hold one passage twice, so no query meets its own answer as a
/// negative. The encoder is left in eval mode.
EmbedderTrainResult train_embedder(nn::Encoder& encoder, const text::WordPieceTokenizer& tokenizer,
                                   std::span<const TextPair> pairs,
                                   const EmbedderTrainOptions& options = {});

/// Writes a sentence-transformers directory (modules.json, config.json, model.safetensors,
/// tokenizer.json, sentence_bert_config.json, 1_Pooling/config.json with mean pooling, and
/// 2_Normalize when normalize) that SentenceEncoder::load and sentence-transformers read. Each
/// file is written atomically.
void save_sentence_encoder(const nn::Encoder& encoder, const text::Tokenizer& tokenizer,
                           const std::string& dir, int64_t max_seq_length, bool normalize = true);

/// Retrieval quality over a set of queries, each with one right answer.
struct RetrievalScores {
  int64_t queries = 0;
  double hit_at_1 = 0, hit_at_5 = 0, hit_at_10 = 0;  ///< share whose answer ranks within k
  double mrr_at_10 = 0;                              ///< mean of 1 / rank (0 beyond 10)
  double ndcg_at_10 = 0;  ///< one relevant item: mean of 1 / log2(rank + 1) (0 beyond 10)
};
/// Scores ranked results: ranked[i] lists the ids found for query i, best first; answers[i] is
/// its right id.
RetrievalScores score_rankings(std::span<const std::vector<uint64_t>> ranked,
                               std::span<const uint64_t> answers);

/// Recall of held-out pairs by exact search: every query against every passage of `pairs`
/// (passage i is query i's answer).
RetrievalScores evaluate_pairs(const Embedder& embedder, std::span<const TextPair> pairs);

}  // namespace scholar::rag
