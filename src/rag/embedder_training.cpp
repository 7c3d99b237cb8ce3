// Contrastive training of sentence encoders (InfoNCE, in-batch negatives) and retrieval scores.
#include "scholar/rag/embedder_training.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <unordered_set>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/progress.hpp"
#include "scholar/tensor/random.hpp"

namespace scholar::rag {

namespace ag = scholar::autograd;
using autograd::Var;

namespace {

// A padded batch of token rows: ids [B, T] (padding with [PAD] or 0) and each row's length.
struct Padded {
  Tensor<int32_t> ids;
  std::vector<int64_t> lengths;
};

Padded pad(const std::vector<const std::vector<int32_t>*>& rows, int32_t pad_id) {
  size_t T = 1;
  for (const auto* r : rows) T = std::max(T, r->size());
  Padded p;
  p.ids = Tensor<int32_t>::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(T)});
  std::fill(p.ids.data(), p.ids.data() + p.ids.numel(), pad_id);
  for (size_t b = 0; b < rows.size(); ++b) {
    std::copy(rows[b]->begin(), rows[b]->end(), p.ids.data() + b * T);
    p.lengths.push_back(static_cast<int64_t>(rows[b]->size()));
  }
  return p;
}

}  // namespace

EmbedderTrainResult train_embedder(nn::Encoder& encoder, const text::WordPieceTokenizer& tok,
                                   std::span<const TextPair> pairs, const EmbedderTrainOptions& o) {
  if (o.batch_size < 2)
    fail<ValueError>(
        "train_embedder: batch_size must be >= 2 (negatives come from the batch), got ",
        o.batch_size);
  if (pairs.size() < static_cast<size_t>(o.batch_size))
    fail<ValueError>("train_embedder: ", pairs.size(), " pairs are fewer than one batch of ",
                     o.batch_size);
  if (o.steps < 1 || !(o.lr > 0.0f) || !(o.scale > 0.0f))
    fail<ValueError>("train_embedder: steps, lr and scale must be positive (got ", o.steps, ", ",
                     o.lr, ", ", o.scale, ")");
  // Lengths beyond the encoder's context are cut to it.
  const int64_t ctx = encoder.config().context_length;
  const int64_t max_q = std::min(o.max_query_length, ctx),
                max_p = std::min(o.max_passage_length, ctx);
  if (max_q < 3 || max_p < 3)
    fail<ValueError>(
        "train_embedder: max_query_length and max_passage_length must be >= 3 ([CLS], ",
        "a token, [SEP]), got ", o.max_query_length, " and ", o.max_passage_length);
  if (tok.vocab_size() > encoder.config().vocab_size)
    fail<ValueError>("train_embedder: the tokenizer has ", tok.vocab_size(),
                     " tokens, more than the encoder's vocabulary of ",
                     encoder.config().vocab_size);
  // Tokenize once.
  std::vector<std::vector<int32_t>> q(pairs.size()), p(pairs.size());
  std::vector<size_t> passage_hash(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    q[i] = tok.encode_for_model(pairs[i].query, static_cast<size_t>(max_q));
    p[i] = tok.encode_for_model(pairs[i].passage, static_cast<size_t>(max_p));
    passage_hash[i] = std::hash<std::string>{}(pairs[i].passage);
  }
  const int32_t pad_id = std::max(0, tok.special_tokens().pad);
  Generator gen(o.seed), dropout_gen(o.seed ^ 0x9E3779B97F4A7C15ull);
  optim::AdamW opt(encoder.named_parameters(), {.lr = o.lr, .weight_decay = o.weight_decay});
  const optim::WarmupCosine schedule{
      .max_lr = o.lr, .min_lr = o.lr / 10, .warmup_steps = o.warmup_steps, .total_steps = o.steps};
  const auto params = encoder.parameters();
  encoder.train();
  // Batches walk a shuffled order; a pair whose passage the batch already holds waits for the
  // next batch.
  std::vector<size_t> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  size_t cursor = order.size();
  auto reshuffle = [&] {
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
    cursor = 0;
  };
  std::vector<size_t> deferred;
  auto next_batch = [&] {
    std::vector<size_t> batch;
    std::unordered_set<size_t> seen;
    std::vector<size_t> keep;
    for (size_t d : deferred) {
      if (batch.size() < static_cast<size_t>(o.batch_size) && seen.insert(passage_hash[d]).second)
        batch.push_back(d);
      else
        keep.push_back(d);
    }
    deferred = std::move(keep);
    size_t scanned = 0;
    while (batch.size() < static_cast<size_t>(o.batch_size) && scanned < 4 * pairs.size()) {
      if (cursor == order.size()) reshuffle();
      const size_t i = order[cursor++];
      ++scanned;
      if (seen.insert(passage_hash[i]).second)
        batch.push_back(i);
      else if (deferred.size() < pairs.size())
        deferred.push_back(i);
    }
    return batch;
  };
  EmbedderTrainResult result;
  std::optional<ProgressBar> bar;  // only when the caller takes no reports itself
  if (!o.on_step) bar.emplace("embedder", o.steps, "step");
  const auto start = std::chrono::steady_clock::now();
  int64_t pairs_seen = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    const std::vector<size_t> batch = next_batch();
    const auto B = static_cast<int64_t>(batch.size());
    if (B < 2) fail<ValueError>("train_embedder: fewer than 2 distinct passages to form a batch");
    std::vector<const std::vector<int32_t>*> qr, pr;
    for (size_t i : batch) qr.push_back(&q[i]), pr.push_back(&p[i]);
    const Padded qb = pad(qr, pad_id), pb = pad(pr, pad_id);
    Tensor<int32_t> tgt = Tensor<int32_t>::empty({B});
    for (int64_t i = 0; i < B; ++i) tgt.data()[i] = static_cast<int32_t>(i);
    opt.set_lr(schedule.at(step));
    opt.zero_grad();
    const Var qv = encoder.embed(qb.ids, qb.lengths, true, &dropout_gen);  // [B, C]
    const Var pv = encoder.embed(pb.ids, pb.lengths, true, &dropout_gen);
    const Var sim = ag::scale(ag::matmul(qv, ag::transpose(pv, 0, 1)), o.scale);  // [B, B]
    Var loss = ag::cross_entropy(sim, tgt);
    if (o.symmetric)
      loss = ag::scale(ag::add(loss, ag::cross_entropy(ag::transpose(sim, 0, 1), tgt)), 0.5f);
    loss.backward();
    if (o.clip_grad_norm > 0) optim::clip_grad_norm(params, o.clip_grad_norm);
    opt.step();
    const float l = loss.value().item();
    if (!std::isfinite(l)) fail<Error>("train_embedder: the loss is ", l, " at step ", step);
    result.losses.push_back(l);
    pairs_seen += B;
    if (o.on_step) {
      o.on_step(step, l);
    } else {
      char detail[48];
      std::snprintf(detail, sizeof detail, "loss %.4f", static_cast<double>(l));
      bar->update(step + 1, detail);
    }
  }
  if (bar) bar->finish();
  encoder.eval();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.pairs_per_second =
      result.seconds > 0 ? static_cast<double>(pairs_seen) / result.seconds : 0;
  return result;
}

std::vector<TextPair> make_training_pairs(std::span<const Document> documents,
                                          const PairOptions& o) {
  if (!(o.drop_words >= 0.0 && o.drop_words < 1.0))
    fail<ValueError>("make_training_pairs: drop_words must be in [0, 1), got ", o.drop_words);
  const Splitter splitter(o.splitter);
  Generator gen(o.seed);
  std::vector<TextPair> pairs;
  for (const Document& d : documents) {
    const std::vector<Chunk> chunks = splitter.split(d);
    if (chunks.empty()) continue;
    const std::string& passage = chunks.front().text;
    if (o.titles) {
      auto it = d.metadata.find("headword");
      if (it == d.metadata.end()) it = d.metadata.find("title");
      if (it != d.metadata.end() && !it->second.empty()) {
        std::string q = o.title_templates.empty()
                            ? std::string("{title}")
                            : o.title_templates[gen.below(o.title_templates.size())];
        if (const size_t at = q.find("{title}"); at != std::string::npos)
          q.replace(at, 7, it->second);
        pairs.push_back({std::move(q), passage});
      }
    }
    if (!o.spans) continue;
    // Sentences of at least five words: cut at ". ", "? ", "! " and line ends.
    std::vector<std::string> sentences;
    std::string cur;
    for (size_t i = 0; i < passage.size(); ++i) {
      const char c = passage[i];
      const bool end = c == '\n' || ((c == '.' || c == '?' || c == '!') &&
                                     (i + 1 == passage.size() || passage[i + 1] == ' '));
      if (!end) {
        cur.push_back(c);
        continue;
      }
      if (c != '\n') cur.push_back(c);
      if (std::count(cur.begin(), cur.end(), ' ') >= 4) sentences.push_back(cur);
      cur.clear();
    }
    if (std::count(cur.begin(), cur.end(), ' ') >= 4) sentences.push_back(cur);
    if (sentences.empty()) continue;
    const std::string& s = sentences[gen.below(sentences.size())];
    std::string query;
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find(' ', start);
      if (end == std::string::npos) end = s.size();
      const std::string_view word(s.data() + start, end - start);
      if (!word.empty() && gen.uniform_double() >= o.drop_words) {
        if (!query.empty()) query.push_back(' ');
        query.append(word);
      }
      start = end + 1;
    }
    if (!query.empty()) pairs.push_back({std::move(query), passage});
  }
  return pairs;
}

void save_sentence_encoder(const nn::Encoder& encoder, const text::Tokenizer& tokenizer,
                           const std::string& dir, int64_t max_seq_length, bool normalize) {
  namespace fs = std::filesystem;
  if (max_seq_length < 3 || max_seq_length > encoder.config().context_length)
    fail<ValueError>("save_sentence_encoder: max_seq_length must be in [3, ",
                     encoder.config().context_length, "], got ", max_seq_length);
  nn::save_hf_dir(encoder, dir, &tokenizer);
  const fs::path d(dir);
  using io::Json;
  Json modules = Json::array();
  auto module = [&](int idx, const char* path, const char* type) {
    Json m = Json::object();
    m.set("idx", Json(idx));
    m.set("name", Json(std::to_string(idx)));
    m.set("path", Json(path));
    m.set("type", Json(std::string("sentence_transformers.models.") + type));
    modules.push_back(std::move(m));
  };
  module(0, "", "Transformer");
  module(1, "1_Pooling", "Pooling");
  if (normalize) module(2, "2_Normalize", "Normalize");
  fs::create_directories(d / "1_Pooling");
  if (normalize) fs::create_directories(d / "2_Normalize");
  Json pooling = Json::object();
  pooling.set("word_embedding_dimension", Json(encoder.config().n_embd));
  pooling.set("pooling_mode_cls_token", Json(false));
  pooling.set("pooling_mode_mean_tokens", Json(true));
  pooling.set("pooling_mode_max_tokens", Json(false));
  pooling.set("pooling_mode_mean_sqrt_len_tokens", Json(false));
  io::write_file_atomic((d / "1_Pooling" / "config.json").string(), pooling.dump(1) + "\n");
  Json sb = Json::object();
  sb.set("max_seq_length", Json(max_seq_length));
  sb.set("do_lower_case", Json(false));
  io::write_file_atomic((d / "sentence_bert_config.json").string(), sb.dump(1) + "\n");
  // modules.json last: a directory is a sentence-transformers model once it appears.
  io::write_file_atomic((d / "modules.json").string(), modules.dump(1) + "\n");
}

RetrievalScores score_rankings(std::span<const std::vector<uint64_t>> ranked,
                               std::span<const uint64_t> answers) {
  if (ranked.size() != answers.size())
    fail<ShapeError>("score_rankings: ", ranked.size(), " rankings for ", answers.size(),
                     " answers");
  RetrievalScores s;
  s.queries = static_cast<int64_t>(answers.size());
  if (answers.empty()) return s;
  for (size_t i = 0; i < answers.size(); ++i) {
    const auto& r = ranked[i];
    const auto it = std::find(r.begin(), r.end(), answers[i]);
    if (it == r.end()) continue;
    const auto rank = static_cast<double>(it - r.begin() + 1);
    s.hit_at_1 += rank <= 1;
    s.hit_at_5 += rank <= 5;
    s.hit_at_10 += rank <= 10;
    if (rank <= 10) {
      s.mrr_at_10 += 1.0 / rank;
      s.ndcg_at_10 += 1.0 / std::log2(rank + 1.0);
    }
  }
  const auto n = static_cast<double>(answers.size());
  s.hit_at_1 /= n, s.hit_at_5 /= n, s.hit_at_10 /= n, s.mrr_at_10 /= n, s.ndcg_at_10 /= n;
  return s;
}

RetrievalScores evaluate_pairs(const Embedder& embedder, std::span<const TextPair> pairs) {
  std::vector<std::string> qs, ps;
  for (const auto& p : pairs) qs.push_back(p.query), ps.push_back(p.passage);
  const std::vector<float> qv = embedder.embed(qs), pv = embedder.embed(ps);
  const size_t C = embedder.dim(), n = pairs.size();
  std::vector<std::vector<uint64_t>> ranked(n);
  std::vector<uint64_t> answers(n);
  std::vector<std::pair<float, uint64_t>> scores(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j)
      scores[j] = {-dot(std::span(qv).subspan(i * C, C), std::span(pv).subspan(j * C, C)), j};
    const size_t k = std::min<size_t>(10, n);
    std::partial_sort(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(k),
                      scores.end());
    for (size_t r = 0; r < k; ++r) ranked[i].push_back(scores[r].second);
    answers[i] = i;
  }
  return score_rankings(ranked, answers);
}

}  // namespace scholar::rag
