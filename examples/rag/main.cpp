// rag: retrieval-augmented generation from the command line — train an embedder on a corpus,
// index the corpus in a store, search it, ask a model questions about it, and measure retrieval.
//
//   rag train-embedder <corpus> --out DIR [--steps 600] [--batch 32] [--layers 3] [--width 192]
//                      [--vocab 8192] [--max-length 128] [--lr 5e-4]
//   rag index <folder|file> --store DIR [--embedder DIR] [--chunk-size 500] [--overlap 50]
//   rag search "<query>" --store DIR [--k 5] [--mode dense|bm25|hybrid] [--dense-weight 1]
//   rag ask "<question>" --store DIR --model PATH [--lora ADAPTER] [--chat-template chatml]
//           [--prompt default|compact] [--stop TEXT]
//           [--k 4] [--mode hybrid] [--temperature 0]
//           [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--max-tokens N]
//           [--beams N]
//   rag eval <corpus> --store DIR [--questions 1000] [--k 10] [--json OUT]
//   rag eval-embedder <corpus> --embedder DIR     (recall of held-out pairs, exact search)
//
// --dense-weight sets the dense ranking's weight in hybrid search (BM25's is 1); eval chooses one
// on validation questions and reports the test questions with it and with 1.
// A corpus is what rag::load_documents reads: a folder of .txt/.md/.gz files, or a dictd
// dictionary such as Debian's /usr/share/dictd/foldoc.dict.dz. Two documents in ten (chosen by a
// hash of their ids) are held out: train-embedder never sees them; eval asks about one tenth (test)
// and chooses the hybrid weights on the other (validation).
// Common flags: --threads N.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scholar/finetune/adapter.hpp"
#include "scholar/generate/generate.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/parallel.hpp"
#include "scholar/progress.hpp"
#include "scholar/rag/answer.hpp"
#include "scholar/rag/embedder_training.hpp"
#include "scholar/rag/store.hpp"
#include "scholar/tensor/random.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void usage() {
  std::fprintf(
      stderr,
      "usage: rag train-embedder <corpus> --out DIR [--steps N] [--batch N] [--layers N]\n"
      "                          [--width N] [--vocab N] [--max-length N] [--lr X]\n"
      "       rag index <folder|file> --store DIR [--embedder DIR] [--chunk-size N]\n"
      "                 [--overlap N]\n"
      "       rag search \"<query>\" --store DIR [--k N] [--mode dense|bm25|hybrid]\n"
      "                  [--dense-weight W]\n"
      "       rag ask \"<question>\" --store DIR --model PATH [--lora ADAPTER]\n"
      "               [--chat-template NAME] [--prompt default|compact] [--k N] [--mode M]\n"
      "               [--dense-weight W] [--stop TEXT]\n"
      "               [--temperature T] [--top-k K] [--top-p P] [--min-p P]\n"
      "               [--repeat-penalty R] [--seed S] [--max-tokens N] [--beams N]\n"
      "       rag eval <corpus> --store DIR [--questions N] [--k N] [--json OUT]\n"
      "       rag eval-embedder <corpus> --embedder DIR\n"
      "  common: --threads N\n");
  std::exit(2);
}

// --- arguments -----------------------------------------------------------------------------------

struct Args {
  std::string command, target;
  std::map<std::string, std::string> flags;
  std::string get(const std::string& k, const std::string& dflt = "") const {
    auto it = flags.find(k);
    return it == flags.end() ? dflt : it->second;
  }
  bool has(const std::string& k) const { return flags.contains(k); }
  double num(const std::string& k, double dflt) const {
    auto it = flags.find(k);
    if (it == flags.end()) return dflt;
    try {
      size_t used = 0;
      const double v = std::stod(it->second, &used);
      if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    throw ValueError(k + ": '" + it->second + "' is not a number");
  }
  int64_t integer(const std::string& k, int64_t dflt) const {
    const double v = num(k, static_cast<double>(dflt));
    if (v != std::floor(v)) throw ValueError(k + ": '" + get(k) + "' is not a whole number");
    return static_cast<int64_t>(v);
  }
};

Args parse(int argc, char** argv) {
  if (argc < 3) usage();
  Args a;
  a.command = argv[1];
  a.target = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string k = argv[i];
    if (!k.starts_with("--") || i + 1 >= argc) usage();
    a.flags[k] = argv[++i];
  }
  return a;
}

// --- the held-out split and the question set
// ------------------------------------------------------

// Which tenth of the corpus a document is in, by a hash of its id (FNV-1a: the same split on every
// machine): slice 0 is the test set, slice 1 the validation set (hybrid weights are chosen on it),
// and train-embedder sees neither.
int slice(const std::string& id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return static_cast<int>(h % 10);
}
bool held_out(const std::string& id) {
  return slice(id) <= 1;
}

struct Question {
  std::string text, document_id, kind;
};

// Questions about held-out documents: "What is <headword>?" for dictionary entries, and a
// definition question for every document: the first sentence of its text after the headword line,
// with the headword taken out and one word in four dropped.
std::vector<Question> make_questions(const std::vector<rag::Document>& docs, int which,
                                     size_t max_n) {
  std::vector<Question> qs;
  Generator gen(14);
  for (const rag::Document& d : docs) {
    if (slice(d.id) != which) continue;
    std::string head;
    if (auto it = d.metadata.find("headword"); it != d.metadata.end()) head = it->second;
    if (!head.empty()) qs.push_back({"What is " + head + "?", d.id, "headword"});
    // The definition: text after the first line (the headword line in dictd entries).
    std::string body = d.text;
    if (!head.empty()) {
      const size_t nl = body.find('\n');
      body = nl == std::string::npos ? std::string() : body.substr(nl + 1);
    }
    // Drop <domain> tags and {links}' braces, collapse whitespace.
    std::string clean;
    int angle = 0;
    for (char c : body) {
      if (c == '<') ++angle;
      if (angle == 0 && c != '{' && c != '}') clean.push_back(c == '\n' || c == '\t' ? ' ' : c);
      if (c == '>' && angle > 0) --angle;
    }
    const size_t dot = clean.find(". ");
    std::string sentence = clean.substr(0, dot == std::string::npos ? clean.size() : dot);
    std::vector<std::string> words;
    size_t pos = 0;
    while (pos < sentence.size()) {
      const size_t sp = sentence.find(' ', pos);
      const std::string w =
          sentence.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
      pos = sp == std::string::npos ? sentence.size() : sp + 1;
      if (w.empty()) continue;
      if (!head.empty() && text::to_lower(w).find(text::to_lower(head)) != std::string::npos)
        continue;
      words.push_back(w);
    }
    if (words.size() < 6) continue;
    std::string q;
    for (const auto& w : words) {
      if (gen.uniform() < 0.25f) continue;
      if (!q.empty()) q += ' ';
      q += w;
      if (q.size() > 200) break;
    }
    qs.push_back({q, d.id, "definition"});
  }
  // A fixed sample of at most max_n, keeping the order.
  if (qs.size() > max_n) {
    std::vector<Question> keep;
    const double step = static_cast<double>(qs.size()) / static_cast<double>(max_n);
    for (size_t i = 0; i < max_n; ++i) keep.push_back(qs[static_cast<size_t>(i * step)]);
    qs = std::move(keep);
  }
  return qs;
}

rag::LoadResult load_corpus(const std::string& path) {
  rag::LoadResult r = rag::load_documents(path);
  std::fprintf(stderr, "corpus: %zu documents from %s (%zu skipped)\n", r.documents.size(),
               path.c_str(), r.problems.size());
  return r;
}

std::shared_ptr<const rag::Embedder> embedder_for(const Args& a, const std::string& store_dir) {
  std::string path = a.get("--embedder");
  if (path.empty() && fs::exists(fs::path(store_dir) / "manifest.json"))
    path = rag::StoreInfo::read(store_dir).embedder_location;
  if (path.empty())
    throw ValueError(
        "--embedder DIR is needed (a sentence-transformers directory, a BERT GGUF, or "
        "what rag train-embedder wrote)");
  auto e = rag::SentenceEncoder::load(path);
  std::fprintf(stderr, "embedder: %s, %zu dimensions, %lld tokens\n", e->name().c_str(), e->dim(),
               static_cast<long long>(e->max_length()));
  return e;
}

// --- commands ------------------------------------------------------------------------------------

// Pairs made from the validation entries (slice 1), at most 1,000: the embedder never trained on
// them.
std::vector<rag::TextPair> heldout_pairs(const std::vector<rag::Document>& docs,
                                         const rag::PairOptions& po) {
  std::vector<rag::Document> validation;
  for (const auto& d : docs)
    if (slice(d.id) == 1) validation.push_back(d);
  auto held = rag::make_training_pairs(validation, po);
  if (held.size() > 1000) held.resize(1000);
  return held;
}

// Each held-out query against all of those pairs' passages, exact search.
void report_recall(const rag::Embedder& e, const std::vector<rag::TextPair>& held,
                   const char* when) {
  const auto s = rag::evaluate_pairs(e, held);
  std::printf("held-out pairs%s: %lld pairs, hit@1 %.3f, hit@5 %.3f, MRR@10 %.3f\n", when,
              static_cast<long long>(s.queries), s.hit_at_1, s.hit_at_5, s.mrr_at_10);
}

int eval_embedder(const Args& a) {
  const auto e = rag::SentenceEncoder::load(a.get("--embedder"));
  const auto corpus = load_corpus(a.target);
  rag::PairOptions po;
  po.splitter.chunk_size = static_cast<size_t>(a.integer("--chunk-size", 500));
  po.splitter.chunk_overlap = static_cast<size_t>(a.integer("--overlap", 50));
  report_recall(*e, heldout_pairs(corpus.documents, po), "");
  return 0;
}

int train_embedder(const Args& a) {
  const std::string out = a.get("--out");
  if (out.empty()) usage();
  const auto corpus = load_corpus(a.target);
  std::vector<rag::Document> train_docs;
  for (const auto& d : corpus.documents)
    if (!held_out(d.id)) train_docs.push_back(d);
  rag::PairOptions po;
  po.splitter.chunk_size = static_cast<size_t>(a.integer("--chunk-size", 500));
  po.splitter.chunk_overlap = static_cast<size_t>(a.integer("--overlap", 50));
  const auto pairs = rag::make_training_pairs(train_docs, po);
  std::fprintf(stderr, "pairs: %zu from %zu documents (%zu held out)\n", pairs.size(),
               train_docs.size(), corpus.documents.size() - train_docs.size());
  // The tokenizer: WordPiece learned from the training documents.
  std::vector<std::string_view> texts;
  for (const auto& d : train_docs) texts.push_back(d.text);
  text::WordPieceTokenizer::TrainOptions to;
  to.vocab_size = static_cast<int32_t>(a.integer("--vocab", 8192));
  std::optional<ProgressBar> tbar;
  to.progress = [&](int64_t done, int64_t wanted) {
    if (!tbar) tbar.emplace("wordpiece", wanted, "merge");
    tbar->update(done);
  };
  const auto tok = text::WordPieceTokenizer::train(texts, to);
  if (tbar) tbar->finish();
  const int64_t max_len = a.integer("--max-length", 128);
  const int64_t width = a.integer("--width", 192), layers = a.integer("--layers", 3);
  auto cfg = nn::TransformerConfig::bert(tok.vocab_size(), max_len, layers, width,
                                         std::max<int64_t>(1, width / 64), 4 * width);
  cfg.dropout = 0.1f;
  nn::Encoder enc(cfg, 1);
  std::fprintf(stderr, "encoder: %lld layers x %lld, vocab %d, %lld tokens\n",
               static_cast<long long>(layers), static_cast<long long>(width), tok.vocab_size(),
               static_cast<long long>(max_len));
  rag::EmbedderTrainOptions o;
  o.steps = a.integer("--steps", 600);
  o.batch_size = static_cast<int>(a.integer("--batch", 32));
  o.lr = static_cast<float>(a.num("--lr", 5e-4));
  o.warmup_steps = std::min<int64_t>(100, o.steps / 10);
  o.max_passage_length = max_len;
  o.max_query_length = std::min<int64_t>(64, max_len);
  // Recall on held-out pairs, before and after training.
  const auto held = heldout_pairs(corpus.documents, po);
  auto recall = [&](const char* when) {
    rag::save_sentence_encoder(enc, tok, out, max_len);
    report_recall(*rag::SentenceEncoder::load(out), held, when);
  };
  if (!held.empty()) recall(" before training");
  const auto r = rag::train_embedder(enc, tok, pairs, o);
  if (!held.empty())
    recall(" after training");  // (which also writes the trained encoder)
  else
    rag::save_sentence_encoder(enc, tok, out, max_len);
  std::fprintf(stderr, "trained in %.0f s (%.1f pairs/s), loss %.3f -> %.3f; wrote %s\n", r.seconds,
               r.pairs_per_second, r.losses.front(), r.losses.back(), out.c_str());
  return 0;
}

int index_corpus(const Args& a) {
  const std::string dir = a.get("--store");
  if (dir.empty()) usage();
  const auto embedder = embedder_for(a, dir);
  const bool exists = fs::exists(fs::path(dir) / "manifest.json");
  rag::StoreOptions so;
  so.splitter.chunk_size = static_cast<size_t>(a.integer("--chunk-size", 500));
  so.splitter.chunk_overlap = static_cast<size_t>(a.integer("--overlap", 50));
  auto store = exists ? rag::Store::open(dir, embedder) : rag::Store::create(dir, embedder, so);
  const auto corpus = load_corpus(a.target);
  const auto r = store.add(corpus.documents);
  store.commit();
  std::printf(
      "%s %s: %zu documents added, %zu replaced, %zu unchanged; %zu chunks added, %zu removed; "
      "%.1f chunks/s\nstore: %zu documents, %zu chunks\n",
      exists ? "updated" : "created", dir.c_str(), r.documents_added, r.documents_replaced,
      r.documents_unchanged, r.chunks_added, r.chunks_removed, r.chunks_per_second,
      store.document_count(), store.chunk_count());
  return 0;
}

void print_hit(const rag::Store& store, size_t rank, const rag::SearchHit& h) {
  const rag::StoredChunk& c = store.chunk(h.chunk_id);
  std::string snippet = c.text.substr(0, 160);
  for (char& ch : snippet)
    if (ch == '\n') ch = ' ';
  std::printf("%zu. %.4f  %s  (dense #%zu, bm25 #%zu)\n   %s%s\n", rank, h.score,
              c.document_id.c_str(), h.dense_rank, h.bm25_rank,
              text::to_valid_utf8(snippet).c_str(), c.text.size() > 160 ? "..." : "");
}

rag::SearchOptions search_options(const Args& a, size_t default_k) {
  rag::SearchOptions o;
  o.k = static_cast<size_t>(a.integer("--k", static_cast<int64_t>(default_k)));
  o.mode = rag::search_mode_from_name(a.get("--mode", "hybrid"));
  o.dense_weight = a.num("--dense-weight", 1.0);
  return o;
}

int search(const Args& a) {
  const std::string dir = a.get("--store");
  if (dir.empty()) usage();
  const auto store = rag::Store::open(dir, embedder_for(a, dir));
  const auto hits = store.search(a.target, search_options(a, 5));
  size_t rank = 0;
  for (const auto& h : hits) print_hit(store, ++rank, h);
  if (hits.empty()) std::printf("no results\n");
  return 0;
}

int ask(const Args& a) {
  const std::string dir = a.get("--store"), model_path = a.get("--model");
  if (dir.empty() || model_path.empty()) usage();
  const auto store = rag::Store::open(dir, embedder_for(a, dir));
  auto model = infer::Model::load(model_path);
  if (a.has("--lora")) {  // a LoRA adapter (PEFT directory or llama.cpp GGUF), merged
    const finetune::LoraWeights w = finetune::read_lora(a.get("--lora"), model->arch());
    model = model->merged({{finetune::to_infer_adapter(w, *model), 1.0f}});
  }
  rag::AskOptions o;
  if (a.get("--prompt") == "compact")
    o.prompt = rag::PromptOptions::compact();
  else if (a.has("--prompt") && a.get("--prompt") != "default")
    throw ValueError("--prompt must be default or compact, not '" + a.get("--prompt") + "'");
  o.prompt.chat_format = a.get("--chat-template");
  // A chat model fine-tuned on a format its tokenizer has no special tokens for writes the end of
  // its turn as text: stop there.
  if (o.prompt.chat_format == "chatml") o.generation.stop_strings.push_back("<|im_end|>");
  if (a.has("--stop")) o.generation.stop_strings.push_back(a.get("--stop"));
  o.search = search_options(a, 4);
  auto& g = o.generation;
  g.temperature = static_cast<float>(a.num("--temperature", 0.0));
  g.top_k = static_cast<int32_t>(a.integer("--top-k", 0));
  g.top_p = static_cast<float>(a.num("--top-p", 1.0));
  g.min_p = static_cast<float>(a.num("--min-p", 0.0));
  g.repetition_penalty = static_cast<float>(a.num("--repeat-penalty", 1.1));
  g.seed = static_cast<uint64_t>(a.integer("--seed", 0));
  g.max_new_tokens = a.integer("--max-tokens", 96);
  g.num_beams = static_cast<int32_t>(a.integer("--beams", 1));
  std::printf("Q: %s\nA:", a.target.c_str());
  std::fflush(stdout);
  const auto answer = rag::ask(store, model, a.target, o, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n\nSources:\n");
  for (const auto& s : answer.sources)
    std::printf("[%d] %s%s\n", s.n, s.document_id.c_str(), s.cut ? " (start only)" : "");
  std::fprintf(stderr, "%lld prompt tokens, %lld generated\n",
               static_cast<long long>(answer.generation.prompt_tokens),
               static_cast<long long>(answer.generation.generated_tokens));
  return 0;
}

// Scores of one search setting over questions (optionally only those of one kind), with
// per-query latencies.
struct EvalResult {
  rag::RetrievalScores scores;
  double p50_ms = 0, p99_ms = 0;
};

EvalResult run_questions(const rag::Store& store, const std::vector<Question>& questions,
                         const std::string& kind, const rag::SearchOptions& opt) {
  std::vector<std::vector<uint64_t>> ranked;
  std::vector<uint64_t> answers;
  std::vector<double> ms;
  std::map<std::string, uint64_t> doc_number;
  for (const Question& q : questions) {
    if (kind != "all" && q.kind != kind) continue;
    const auto t0 = std::chrono::steady_clock::now();
    const auto hits = store.search(q.text, opt);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    // Rank documents: a chunk counts for its document, first occurrence only.
    std::vector<uint64_t> docs;
    for (const auto& h : hits) {
      const std::string& d = store.chunk(h.chunk_id).document_id;
      const uint64_t n = doc_number.emplace(d, doc_number.size()).first->second;
      if (std::find(docs.begin(), docs.end(), n) == docs.end()) docs.push_back(n);
    }
    ranked.push_back(std::move(docs));
    answers.push_back(doc_number.emplace(q.document_id, doc_number.size()).first->second);
  }
  EvalResult r;
  if (answers.empty()) return r;
  r.scores = rag::score_rankings(ranked, answers);
  std::sort(ms.begin(), ms.end());
  r.p50_ms = ms[ms.size() / 2];
  r.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  return r;
}

int eval(const Args& a) {
  const std::string dir = a.get("--store");
  if (dir.empty()) usage();
  const auto store = rag::Store::open(dir, embedder_for(a, dir));
  const auto corpus = load_corpus(a.target);
  const auto n = static_cast<size_t>(a.integer("--questions", 1000));
  const auto test = make_questions(corpus.documents, 0, n);
  const auto validation = make_questions(corpus.documents, 1, n);
  const size_t k = static_cast<size_t>(a.integer("--k", 10));
  std::fprintf(stderr, "questions: %zu test and %zu validation, about held-out documents\n",
               test.size(), validation.size());
  // The dense weight of hybrid search, chosen on the validation questions (by hit@5, then MRR).
  double best_weight = 1.0;
  rag::RetrievalScores best{};
  std::printf("validation: hybrid dense weight ->");
  for (double w : {0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0}) {
    const auto r = run_questions(store, validation, "all",
                                 {.k = k, .mode = rag::SearchMode::hybrid, .dense_weight = w});
    std::printf(" %.1f: %.3f/%.3f", w, r.scores.hit_at_5, r.scores.mrr_at_10);
    if (r.scores.hit_at_5 > best.hit_at_5 ||
        (r.scores.hit_at_5 == best.hit_at_5 && r.scores.mrr_at_10 > best.mrr_at_10))
      best = r.scores, best_weight = w;
  }
  std::printf("  (hit@5/MRR@10)\nchosen dense weight: %.1f\n\n", best_weight);
  io::Json report = io::Json::object();
  report.set("questions", io::Json(static_cast<int64_t>(test.size())));
  report.set("validation_questions", io::Json(static_cast<int64_t>(validation.size())));
  report.set("dense_weight", io::Json(best_weight));
  std::printf("%-14s %-11s %6s %6s %6s %7s %8s %8s %8s\n", "mode", "questions", "hit@1", "hit@5",
              "hit@10", "MRR@10", "nDCG@10", "p50 ms", "p99 ms");
  struct Setting {
    std::string name;
    rag::SearchOptions opt;
  };
  char tuned[32];
  std::snprintf(tuned, sizeof tuned, "hybrid-%.1f", best_weight);
  const std::vector<Setting> settings = {
      {"bm25", {.k = k, .mode = rag::SearchMode::bm25}},
      {"dense", {.k = k, .mode = rag::SearchMode::dense}},
      {"hybrid-1.0", {.k = k, .mode = rag::SearchMode::hybrid}},
      {tuned, {.k = k, .mode = rag::SearchMode::hybrid, .dense_weight = best_weight}}};
  for (const Setting& st : settings) {
    for (const char* kind : {"all", "headword", "definition"}) {
      const auto r = run_questions(store, test, kind, st.opt);
      if (r.scores.queries == 0) continue;
      const auto& s = r.scores;
      std::printf("%-14s %-11s %6.3f %6.3f %6.3f %7.3f %8.3f %8.2f %8.2f\n", st.name.c_str(), kind,
                  s.hit_at_1, s.hit_at_5, s.hit_at_10, s.mrr_at_10, s.ndcg_at_10, r.p50_ms,
                  r.p99_ms);
      io::Json row = io::Json::object();
      row.set("questions", io::Json(s.queries));
      row.set("hit@1", io::Json(s.hit_at_1));
      row.set("hit@5", io::Json(s.hit_at_5));
      row.set("hit@10", io::Json(s.hit_at_10));
      row.set("mrr@10", io::Json(s.mrr_at_10));
      row.set("ndcg@10", io::Json(s.ndcg_at_10));
      row.set("p50_ms", io::Json(r.p50_ms));
      row.set("p99_ms", io::Json(r.p99_ms));
      report.set(st.name + "/" + kind, std::move(row));
    }
  }
  if (a.has("--json")) io::write_file_atomic(a.get("--json"), report.dump(1) + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.has("--threads")) set_num_threads(static_cast<int>(a.integer("--threads", 0)));
    if (a.command == "train-embedder") return train_embedder(a);
    if (a.command == "index") return index_corpus(a);
    if (a.command == "search") return search(a);
    if (a.command == "ask") return ask(a);
    if (a.command == "eval") return eval(a);
    if (a.command == "eval-embedder") return eval_embedder(a);
    usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rag: %s\n", e.what());
    return 1;
  }
}
