// The BERT encoder and SentenceEncoder against tests/reference/make_bert_fixtures.py: a tiny
// random-weight BERT in sentence-transformers' layout, run by PyTorch (BertModel's forward pass and
// sentence-transformers' pooling written out in python3-torch).
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <random>

#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/io/json.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/rag/embedder.hpp"
#include "scholar/rag/embedder_training.hpp"
#include "support.hpp"

using namespace scholar;

namespace {

const std::string kModel = SCHOLAR_TEST_DATA "/bert/minilm_tiny";

struct Expected {
  io::SafetensorsFile file =
      io::SafetensorsFile::open(SCHOLAR_TEST_DATA "/bert/expected.safetensors");
  io::Json j = io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/bert/expected.json"));
  std::vector<std::string> texts() const {
    std::vector<std::string> v;
    for (const io::Json& t : j.at("texts").as_array()) v.push_back(t.as_string());
    return v;
  }
  std::vector<int32_t> ids(size_t i) const {
    std::vector<int32_t> v;
    for (const io::Json& x : j.at("ids").as_array()[i].as_array())
      v.push_back(static_cast<int32_t>(x.as_int()));
    return v;
  }
  std::vector<float> get(const std::string& name) const {
    const Tensor<float> t = file.load<float>(name);
    return std::vector<float>(t.data(), t.data() + t.numel());
  }
};

const Expected& expected() {
  static const Expected e;
  return e;
}

// Smallest cosine similarity between matching rows of two row-major [n, dim] sets.
double min_cosine(const std::vector<float>& a, const std::vector<float>& b, size_t dim) {
  REQUIRE(a.size() == b.size());
  double worst = 1;
  for (size_t r = 0; r < a.size() / dim; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t c = 0; c < dim; ++c) {
      ab += double{a[r * dim + c]} * b[r * dim + c];
      aa += double{a[r * dim + c]} * a[r * dim + c];
      bb += double{b[r * dim + c]} * b[r * dim + c];
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

}  // namespace

TEST_CASE("a sentence-transformers BERT embeds as PyTorch does", "[embedder][torch]") {
  const auto enc = rag::SentenceEncoder::load(kModel);
  CHECK(enc->dim() == 32);
  CHECK(enc->normalized());
  CHECK(enc->pooling() == rag::Pooling::mean);
  CHECK(enc->max_length() == 32);  // sentence_bert_config.json, below the model's 40
  CHECK(enc->model().arch().is_encoder());
  const auto texts = expected().texts();
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO("text " << i);
    CHECK(enc->tokenize(texts[i]) == expected().ids(i));  // the long one is cut to 32
  }
  const std::vector<float> got = enc->embed(texts);
  const std::vector<float> want = expected().get("embed.mean");
  test::check_close(got.data(), want.data(), want.size(), 1e-4, 1e-5, "mean embeddings");
  CHECK(min_cosine(got, want, 32) >= 0.99999);
  // One text at a time, and batches of 4, give the vectors of the whole batch.
  rag::SentenceEncoderOptions one;
  one.batch_size = 1;
  const auto enc1 = rag::SentenceEncoder::load(kModel, one);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto v = enc1->embed(texts[i]);
    test::check_close(v.data(), got.data() + i * 32, 32, 1e-5, 1e-6, "text alone");
  }
  rag::SentenceEncoderOptions four;
  four.batch_size = 4;
  const auto got4 = rag::SentenceEncoder::load(kModel, four)->embed(texts);
  test::check_close(got4.data(), got.data(), got.size(), 1e-5, 1e-6, "batches of 4");
  // bf16 products (on AMX tiles with the weights packed once per session, where the CPU has
  // them) stay within cosine 0.999 of f32.
  kernels::set_matmul_precision(kernels::MatmulPrecision::bf16);
  const auto bf = rag::SentenceEncoder::load(kModel)->embed(texts);
  kernels::set_matmul_precision(kernels::MatmulPrecision::f32);
  CHECK(min_cosine(bf, want, 32) >= 0.999);
  // Batches cut by tokens: at most 20 (one text each where a text is longer) and 60.
  for (int64_t tokens : {20, 60}) {
    rag::SentenceEncoderOptions cut;
    cut.max_batch_tokens = tokens;
    const auto v = rag::SentenceEncoder::load(kModel, cut)->embed(texts);
    test::check_close(v.data(), got.data(), got.size(), 1e-5, 1e-6, "batches cut by tokens");
  }
  CHECK(enc->fingerprint() == enc1->fingerprint());
  CHECK(enc->fingerprint().size() == 16);
}

TEST_CASE("BERT token states, CLS and max pooling match PyTorch", "[embedder][torch]") {
  const auto model = infer::Model::load(kModel);
  const auto texts = expected().texts();
  const std::vector<float> hidden = expected().get("hidden");  // [B, T, 32], padded
  const size_t T = hidden.size() / texts.size() / 32;
  infer::SessionOptions so;
  so.embeddings = true;
  infer::Session s(model, so);
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO("text " << i);
    const auto ids = expected().ids(i);
    infer::Batch b;
    for (size_t t = 0; t < ids.size(); ++t) b.add(ids[t], static_cast<int64_t>(t), 0, true);
    s.clear();
    const auto states = s.decode(b);
    REQUIRE(states.size() == ids.size() * 32);
    test::check_close(states.data(), hidden.data() + i * T * 32, ids.size() * 32, 1e-4, 1e-5,
                      "hidden states");
  }
  // An encoder keeps no K and V rows: each call attends over its own tokens only, so texts
  // decoded one after the other under new sequence ids, without clear(), give the same states.
  CHECK(s.cache_bytes() == 0);
  so.n_ctx = 80;  // room for two texts
  infer::Session two(model, so);
  for (size_t i = 0; i < 2; ++i) {
    const auto ids = expected().ids(i);
    infer::Batch b;
    for (size_t t = 0; t < ids.size(); ++t)
      b.add(ids[t], static_cast<int64_t>(t), static_cast<int32_t>(i), true);
    const auto states = two.decode(b);
    test::check_close(states.data(), hidden.data() + i * T * 32, ids.size() * 32, 1e-4, 1e-5,
                      "hidden states, one call per sequence");
  }
  CHECK(two.used_cells() ==
        static_cast<int64_t>(expected().ids(0).size() + expected().ids(1).size()));
  // cache_type does not apply to an encoder (whatever its head dimension): the same states.
  so.cache_type = WeightType::q4_0;
  infer::Session q4(model, so);
  {
    const auto ids = expected().ids(0);
    infer::Batch b;
    for (size_t t = 0; t < ids.size(); ++t) b.add(ids[t], static_cast<int64_t>(t), 0, true);
    const auto states = q4.decode(b);
    test::check_close(states.data(), hidden.data(), ids.size() * 32, 1e-4, 1e-5,
                      "hidden states, q4_0 cache type");
  }
  for (auto [pooling, key] :
       {std::pair{rag::Pooling::cls, "embed.cls"}, std::pair{rag::Pooling::max, "embed.max"}}) {
    rag::SentenceEncoderOptions o;
    o.max_length = 32;
    const rag::SentenceEncoder enc(model, pooling, true, o);
    const auto got = enc.embed(texts);
    const auto want = expected().get(key);
    test::check_close(got.data(), want.data(), want.size(), 1e-4, 1e-5, key);
  }
  // An encoder has no LM head: a logits session is refused.
  CHECK_THROWS_WITH(infer::Session(model), Catch::Contains("embeddings"));
}

TEST_CASE("a BERT encoder survives f16, Q8_0 and GGUF export", "[embedder]") {
  const auto texts = expected().texts();
  const auto want = expected().get("embed.mean");
  for (WeightType t : {WeightType::f16, WeightType::q8_0}) {
    INFO(weight_type_name(t));
    rag::SentenceEncoderOptions o;
    o.weight_type = t;
    const auto enc = rag::SentenceEncoder::load(kModel, o);
    CHECK(min_cosine(enc->embed(texts), want, 32) >= (t == WeightType::f16 ? 0.9999 : 0.999));
    // With bf16 products (f16 weights widened and packed once for AMX where the CPU has it).
    kernels::set_matmul_precision(kernels::MatmulPrecision::bf16);
    const auto bf = enc->embed(texts);
    kernels::set_matmul_precision(kernels::MatmulPrecision::f32);
    CHECK(min_cosine(bf, want, 32) >= 0.999);
  }
  // GGUF: the weights, the WordPiece vocabulary and the pooling come back.
  const std::string dir = test::temp_dir("test_rag", "bert_gguf");
  const auto enc = rag::SentenceEncoder::load(kModel);
  enc->save_gguf(dir + "/bert.gguf");
  const auto back = rag::SentenceEncoder::load(dir + "/bert.gguf");
  CHECK(back->pooling() == rag::Pooling::mean);
  auto arch = enc->model().arch();
  arch.dropout = 0;  // config.json's hidden_dropout_prob is a training setting GGUF does not keep
  CHECK(back->model().arch() == arch);
  CHECK(back->model().tokenizer().fingerprint() == enc->model().tokenizer().fingerprint());
  CHECK(back->max_length() == 40);  // a GGUF file has no sentence_bert_config.json
  rag::SentenceEncoderOptions o32;
  o32.max_length = 32;
  const auto back32 = rag::SentenceEncoder::load(dir + "/bert.gguf", o32);
  for (size_t i = 0; i < texts.size(); ++i) CHECK(back32->tokenize(texts[i]) == expected().ids(i));
  const auto got = back32->embed(texts);
  test::check_close(got.data(), want.data(), want.size(), 1e-4, 1e-5, "GGUF round trip");
}

TEST_CASE("sentence-transformers directories scholar cannot run are clear errors", "[embedder]") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("test_rag", "bert_bad");
  fs::copy(kModel, dir, fs::copy_options::recursive);
  const std::string modules = io::read_file(dir + "/modules.json");
  io::write_file_atomic(
      dir + "/modules.json",
      R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
  {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])");
  CHECK_THROWS_WITH(rag::SentenceEncoder::load(dir),
                    Catch::Contains("modules.json") && Catch::Contains("Dense"));
  io::write_file_atomic(dir + "/modules.json", modules);
  io::write_file_atomic(dir + "/1_Pooling/config.json",
                        R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true})");
  CHECK_THROWS_WITH(rag::SentenceEncoder::load(dir),
                    Catch::Contains("1_Pooling") && Catch::Contains("2 pooling modes"));
  io::write_file_atomic(dir + "/1_Pooling/config.json", R"({"pooling_mode_cls_token": true})");
  CHECK(rag::SentenceEncoder::load(dir)->pooling() == rag::Pooling::cls);
  // Without modules.json: a plain BERT directory, mean pooling, normalized.
  fs::remove(dir + "/modules.json");
  const auto plain = rag::SentenceEncoder::load(dir);
  CHECK(plain->pooling() == rag::Pooling::mean);
  CHECK(plain->normalized());
  CHECK(plain->max_length() == 40);
  CHECK_THROWS_AS(rag::SentenceEncoder::load(dir + "/nothing"), IoError);
  rag::SentenceEncoderOptions bad;
  bad.batch_size = 65;
  CHECK_THROWS_AS(rag::SentenceEncoder::load(kModel, bad), ValueError);
  rag::SentenceEncoderOptions negative;
  negative.max_batch_tokens = -1;
  CHECK_THROWS_WITH(rag::SentenceEncoder::load(kModel, negative),
                    Catch::Contains("max_batch_tokens must be >= 0"));
}

TEST_CASE("retrieval scores count hits, reciprocal ranks and nDCG", "[embedder]") {
  const std::vector<std::vector<uint64_t>> ranked = {{7, 1, 2}, {1, 2, 3, 4, 9}, {5}, {}};
  const std::vector<uint64_t> answers = {7, 9, 6, 1};
  const auto s = rag::score_rankings(ranked, answers);
  CHECK(s.queries == 4);
  CHECK(s.hit_at_1 == Approx(0.25));
  CHECK(s.hit_at_5 == Approx(0.5));
  CHECK(s.mrr_at_10 == Approx((1.0 + 1.0 / 5) / 4));
  CHECK(s.ndcg_at_10 == Approx((1.0 + 1.0 / std::log2(6.0)) / 4));
  CHECK_THROWS_AS(rag::score_rankings(ranked, std::vector<uint64_t>{1}), ShapeError);
}

TEST_CASE("an embedder trained on pairs finds each query's passage", "[embedder]") {
  // 48 made-up dictionary entries: a headword and a definition built from a few topic words.
  const std::vector<std::string> words = {
      "memory", "disk",   "network", "packet", "compiler", "kernel", "thread", "lock",
      "cache",  "socket", "parser",  "token",  "shell",    "editor", "daemon", "queue"};
  std::vector<rag::TextPair> pairs;
  std::mt19937 rng(5);
  for (int i = 0; i < 48; ++i) {
    const std::string head = "term" + std::to_string(i);
    std::string def = head + " is a kind of";
    for (int k = 0; k < 6; ++k) def += " " + words[rng() % words.size()];
    pairs.push_back({"what is " + head + "?", def + "."});
  }
  std::vector<std::string> corpus;
  for (const auto& p : pairs) corpus.push_back(p.query + " " + p.passage);
  const std::vector<std::string_view> views(corpus.begin(), corpus.end());
  const auto tok = text::WordPieceTokenizer::train(views, {.vocab_size = 200});
  nn::Encoder enc(nn::TransformerConfig::bert(tok.vocab_size(), 32, 2, 32, 4, 64), 3);
  const std::string dir = test::temp_dir("test_rag", "trained_embedder");
  rag::save_sentence_encoder(enc, tok, dir + "/before", 32);
  const auto before = rag::evaluate_pairs(*rag::SentenceEncoder::load(dir + "/before"), pairs);
  rag::EmbedderTrainOptions opt;
  opt.steps = 150;
  opt.batch_size = 16;
  opt.lr = 2e-3f;
  opt.warmup_steps = 10;
  opt.max_passage_length = 32;
  int64_t calls = 0;
  opt.on_step = [&](int64_t, float) { ++calls; };
  const auto result = rag::train_embedder(enc, tok, pairs, opt);
  CHECK(calls == 150);
  CHECK(result.losses.size() == 150);
  CHECK(result.losses.back() < 0.3f * result.losses.front());
  rag::save_sentence_encoder(enc, tok, dir + "/after", 32);
  const auto trained = rag::SentenceEncoder::load(dir + "/after");
  const auto after = rag::evaluate_pairs(*trained, pairs);
  INFO("hit@1 " << before.hit_at_1 << " -> " << after.hit_at_1);
  CHECK(before.hit_at_1 < 0.5);
  CHECK(after.hit_at_1 > 0.9);
  CHECK(after.mrr_at_10 > before.mrr_at_10);
  // The saved directory computes what the module computes.
  const std::vector<int32_t> ids = tok.encode_for_model(pairs[3].passage, 32);
  const Tensor<int32_t> x = Tensor<int32_t>::from({1, static_cast<int64_t>(ids.size())}, ids);
  const auto want = enc.embed(x, std::vector<int64_t>{static_cast<int64_t>(ids.size())});
  const auto got = trained->embed(pairs[3].passage);
  test::check_close(got.data(), want.value().contiguous().data(), got.size(), 1e-5, 1e-6,
                    "saved encoder");
  CHECK(trained->fingerprint() != rag::SentenceEncoder::load(dir + "/before")->fingerprint());
  rag::EmbedderTrainOptions bad = opt;
  bad.batch_size = 1;
  CHECK_THROWS_AS(rag::train_embedder(enc, tok, pairs, bad), ValueError);
}

TEST_CASE("training pairs come from headwords and from spans of each passage", "[embedder]") {
  const std::vector<rag::Document> docs = {
      {"d#kludge",
       "d",
       "kludge\n\n   A clumsy but working fix for a hard problem. More text here.",
       {{"headword", "kludge"}}},
      {"a.txt", "a.txt", "Short.", {}},
      {"b.txt", "b.txt", "   ", {}}};
  rag::PairOptions o;
  o.drop_words = 0.0;
  o.title_templates = {"{title}"};
  const auto pairs = rag::make_training_pairs(docs, o);
  REQUIRE(pairs.size() == 2);  // headword pair and span pair of the first; the others too short
  CHECK(pairs[0].query == "kludge");
  CHECK(pairs[0].passage.starts_with("kludge"));
  CHECK(pairs[1].query == "A clumsy but working fix for a hard problem.");
  o.drop_words = 0.5;
  for (const auto& p : rag::make_training_pairs(docs, o)) CHECK(!p.query.empty());
  o.title_templates = {"Define {title}."};
  CHECK(rag::make_training_pairs(docs, o)[0].query == "Define kludge.");
  o.drop_words = 1.0;
  CHECK_THROWS_AS(rag::make_training_pairs(docs, o), ValueError);
}

TEST_CASE("a BERT GGUF from llama.cpp's converter tokenizes and embeds as llama.cpp does",
          "[embedder][llama_cpp]") {
  // tests/reference/make_bert_llama_cpp_fixtures.sh: the fixture model written by llama.cpp's
  // gguf-py, and llama.cpp's ids and mean-pooled embeddings for a few texts.
  const std::string gguf = SCHOLAR_TEST_DATA "/bert/llama_cpp/bert-f32.gguf";
  const io::Json want =
      io::Json::parse(io::read_file(SCHOLAR_TEST_DATA "/bert/llama_cpp/embeddings.json"));
  const auto enc = rag::SentenceEncoder::load(gguf);
  CHECK(enc->pooling() == rag::Pooling::mean);
  const auto& texts = want.at("texts").as_array();
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& t = texts[i].as_string();
    INFO(t);
    std::vector<int32_t> ids;
    for (const io::Json& x : want.at("ids").as_array()[i].as_array())
      ids.push_back(static_cast<int32_t>(x.as_int()));
    CHECK(enc->tokenize(t) == ids);
    std::vector<float> e;
    for (const io::Json& x : want.at("embeddings").as_array()[i].as_array())
      e.push_back(static_cast<float>(x.as_double()));
    double n = 0;
    for (float v : e) n += double{v} * v;
    for (float& v : e) v = static_cast<float>(v / std::sqrt(n));
    // llama.cpp runs BERT's GELU as the tanh approximation (ggml_gelu) where BERT, PyTorch and
    // scholar use erf: its vectors differ from PyTorch's by up to 2.3e-4 on these texts.
    const auto got = enc->embed(t);
    test::check_close(got.data(), e.data(), e.size(), 0, 5e-4, "llama.cpp embedding");
    CHECK(min_cosine(got, e, e.size()) > 0.99999);
  }
  // scholar's own export holds the same tensors and the same vocabulary as llama.cpp's converter.
  const std::string dir = test::temp_dir("test_rag", "bert_gguf_compare");
  rag::SentenceEncoder::load(kModel)->save_gguf(dir + "/ours.gguf");
  const auto theirs = io::GgufFile::open(gguf), ours = io::GgufFile::open(dir + "/ours.gguf");
  REQUIRE(ours.tensors().size() == theirs.tensors().size());
  for (const auto& t : theirs.tensors()) {
    INFO(t.name);
    REQUIRE(ours.contains(t.name));
    CHECK(ours.info(t.name).shape == t.shape);
    const auto a = ours.bytes(t.name), b = theirs.bytes(t.name);
    CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
  }
  for (const char* key :
       {"general.architecture", "bert.context_length", "bert.embedding_length",
        "bert.feed_forward_length", "bert.block_count", "bert.attention.head_count",
        "bert.attention.causal", "bert.pooling_type", "tokenizer.ggml.model",
        "tokenizer.ggml.token_type_count", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.seperator_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"}) {
    INFO(key);
    REQUIRE(ours.has(key));
    const auto& x = ours.get(key);
    const auto& y = theirs.get(key);
    if (x.type() == io::GgufType::string)
      CHECK(x.as_string() == y.as_string());
    else if (x.type() == io::GgufType::boolean)
      CHECK(x.as_bool() == y.as_bool());
    else
      CHECK(x.as_int() == y.as_int());
  }
  CHECK(ours.get("tokenizer.ggml.tokens").as_strings() ==
        theirs.get("tokenizer.ggml.tokens").as_strings());
  CHECK(ours.get("tokenizer.ggml.token_type").as_ints() ==
        theirs.get("tokenizer.ggml.token_type").as_ints());
}
