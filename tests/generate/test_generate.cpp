// Decoding: each processor changes exactly what it should, draws follow the distribution, chains
// clone and reset, greedy matches PyTorch, beam search equals exhaustive search, streaming.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "scholar/generate/generate.hpp"
#include "scholar/io/safetensors.hpp"

using namespace scholar;
using namespace scholar::generate;

namespace {

std::vector<float> random_logits(size_t V, uint32_t seed, float scale = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(V);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<double> softmax(const std::vector<float>& l) {
  const float mx = *std::max_element(l.begin(), l.end());
  std::vector<double> p(l.size());
  double z = 0;
  for (size_t i = 0; i < l.size(); ++i) z += p[i] = std::exp(double(l[i]) - mx);
  for (auto& x : p) x /= z;
  return p;
}

std::set<int32_t> kept(const Sampler& s) {
  std::set<int32_t> out;
  for (const auto& it : s.candidates().items)
    if (it.logit > -INFINITY) out.insert(it.id);
  return out;
}

std::vector<int32_t> by_prob(const std::vector<float>& l) {
  std::vector<int32_t> ids(l.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  return ids;
}

}  // namespace

TEST_CASE("generation parameters are validated with a message", "[generate]") {
  auto bad = [](auto change, const char* what) {
    GenerationConfig c;
    change(c);
    CHECK_THROWS_WITH(c.validate(), Catch::Contains(what));
  };
  bad([](auto& c) { c.top_p = 0; }, "top_p");
  bad([](auto& c) { c.top_p = 1.5f; }, "top_p");
  bad([](auto& c) { c.temperature = -0.5f; }, "temperature");
  bad([](auto& c) { c.num_beams = 0; }, "num_beams");
  bad([](auto& c) { c.min_p = 2; }, "min_p");
  bad([](auto& c) { c.typical_p = 0; }, "typical_p");
  bad([](auto& c) { c.repetition_penalty = 0; }, "repetition_penalty");
  bad([](auto& c) { c.top_k = -1; }, "top_k");
  bad([](auto& c) { c.stop_strings = {""}; }, "stop strings");
  bad(
      [](auto& c) {
        c.num_beams = 2;
        c.num_return_sequences = 3;
      },
      "num_return_sequences");
  GenerationConfig ok;
  CHECK_NOTHROW(ok.validate());
  CHECK_THROWS_AS(Sampler(GenerationConfig{.top_p = 0}), ValueError);
}

TEST_CASE("the two presets print their chain orders", "[generate]") {
  GenerationConfig c;
  c.temperature = 0.8f;
  c.top_k = 40;
  c.top_p = 0.95f;
  c.min_p = 0.05f;
  c.repetition_penalty = 1.1f;
  c.seed = 7;
  CHECK(Sampler(c).describe() ==
        "repetition_penalty(1.1) -> temperature(0.8) -> top_k(40) -> top_p(0.95) -> min_p(0.05) "
        "-> dist(seed 7)");
  c.order = ChainOrder::llama_cpp;
  CHECK(Sampler(c).describe() ==
        "repetition_penalty(1.1) -> top_k(40) -> top_p(0.95) -> min_p(0.05) -> temperature(0.8) "
        "-> dist(seed 7)");
  c.temperature = 0;
  CHECK(Sampler(c).describe() == "repetition_penalty(1.1) -> greedy -> dist(seed 7)");
  CHECK(Sampler(GenerationConfig::llama_cpp_defaults()).describe() ==
        "top_k(40) -> top_p(0.95) -> min_p(0.05) -> temperature(0.8) -> dist(seed 0)");
  CHECK(Sampler(GenerationConfig::transformers_defaults()).describe() ==
        "top_k(50) -> dist(seed 0)");
}

TEST_CASE("top-k, top-p, min-p and typical-p keep exactly the right tokens", "[generate]") {
  const auto l = random_logits(200, 1);
  const auto p = softmax(l);
  const auto order = by_prob(l);
  const std::vector<int32_t> none;
  SECTION("top-k draws only from the k best") {
    Sampler s(GenerationConfig{.top_k = 5, .seed = 3});
    const std::set<int32_t> best(order.begin(), order.begin() + 5);
    for (int i = 0; i < 2000; ++i) CHECK(best.count(s.sample(l, none)) == 1);
    CHECK(kept(s) == best);
  }
  SECTION("top-p keeps the smallest set whose mass reaches p") {
    for (float tp : {0.1f, 0.5f, 0.9f, 0.99f}) {
      Sampler s(GenerationConfig{.top_p = tp});
      s.process(l, none);
      double mass = 0;
      std::set<int32_t> want;
      for (int32_t id : order) {
        want.insert(id);
        mass += p[id];
        if (mass >= tp) break;
      }
      CHECK(kept(s) == want);
    }
  }
  SECTION("min-p keeps the tokens with p >= min_p * p_max") {
    const double pmax = p[order[0]];
    for (float mp : {0.01f, 0.1f, 0.5f}) {
      Sampler s(GenerationConfig{.min_p = mp});
      s.process(l, none);
      std::set<int32_t> want;
      for (size_t i = 0; i < p.size(); ++i)
        if (p[i] >= mp * pmax) want.insert(static_cast<int32_t>(i));
      CHECK(kept(s) == want);
    }
  }
  SECTION("typical-p keeps the most typical tokens up to mass p") {
    Sampler s(GenerationConfig{.typical_p = 0.7f});
    s.process(l, none);
    double H = 0;
    for (double x : p) H -= x * std::log(x);
    std::vector<int32_t> ids(p.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return std::fabs(-std::log(p[a]) - H) < std::fabs(-std::log(p[b]) - H);
    });
    std::set<int32_t> want;
    double mass = 0;
    for (int32_t id : ids) {
      want.insert(id);
      mass += p[id];
      if (mass >= 0.7) break;
    }
    CHECK(kept(s) == want);
  }
  SECTION("temperature 0 is argmax") {
    Sampler s(GenerationConfig{.temperature = 0, .seed = 9});
    for (int i = 0; i < 10; ++i) CHECK(s.sample(l, none) == order[0]);
  }
}

TEST_CASE("draws follow the distribution (chi-square, fixed seed)", "[generate]") {
  const std::vector<float> l = {0.0f, 1.0f, -1.0f, 2.0f, 0.5f, -0.5f};
  for (float temp : {1.0f, 0.7f}) {
    INFO("temperature " << temp);
    Sampler s(GenerationConfig{.temperature = temp, .seed = 2026});
    std::vector<float> scaled(l);
    for (auto& x : scaled) x /= temp;
    const auto p = softmax(scaled);
    const int N = 60000;
    std::vector<int> count(l.size());
    for (int i = 0; i < N; ++i) ++count[static_cast<size_t>(s.sample(l, {}))];
    double chi2 = 0;
    for (size_t i = 0; i < l.size(); ++i) {
      const double e = N * p[i];
      chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    CHECK(chi2 < 20.52);  // df = 5, p = 0.001
  }
}

TEST_CASE("penalties, bias and no-repeat-ngram change exactly their logits", "[generate]") {
  const std::vector<float> l = {2.0f, -2.0f, 1.0f, -1.0f, 0.5f, 3.0f};
  const std::vector<int32_t> history = {0, 1, 1, 4, 0, 1};
  auto after = [&](GenerationConfig c, std::span<const int32_t> h) {
    c.temperature = 1;
    Sampler s(c);
    s.process(l, h);
    std::vector<float> out(l.size(), -INFINITY);
    for (const auto& it : s.candidates().items) out[static_cast<size_t>(it.id)] = it.logit;
    return out;
  };
  CHECK(after({.repetition_penalty = 2}, history) ==
        std::vector<float>{1.0f, -4.0f, 1.0f, -1.0f, 0.25f, 3.0f});
  // Window of 2: only tokens 0 and 1 count.
  CHECK(after({.repetition_penalty = 2, .penalty_last_n = 2}, history) ==
        std::vector<float>{1.0f, -4.0f, 1.0f, -1.0f, 0.5f, 3.0f});
  // frequency 0.5 per occurrence, presence 0.25 once: token 0 twice, 1 three times, 4 once.
  CHECK(after({.frequency_penalty = 0.5f, .presence_penalty = 0.25f}, history) ==
        std::vector<float>{2.0f - 1.25f, -2.0f - 1.75f, 1.0f, -1.0f, 0.5f - 0.75f, 3.0f});
  CHECK(after({.logit_bias = {{2, 1.5f}, {5, -INFINITY}}}, history) ==
        std::vector<float>{2.0f, -2.0f, 2.5f, -1.0f, 0.5f, -INFINITY});
  // History ends with (0, 1); the earlier trigram (0, 1, 1) bans token 1.
  CHECK(after({.no_repeat_ngram_size = 3}, history) ==
        std::vector<float>{2.0f, -INFINITY, 1.0f, -1.0f, 0.5f, 3.0f});
  CHECK(after({.no_repeat_ngram_size = 3}, std::span(history).first(2)) == l);
}

TEST_CASE("penalty state updated token by token equals penalties recomputed from the history",
          "[generate]") {
  // The oracle recomputes every penalty from the whole history at each step, as transformers'
  // processors do; the sampler only ever sees one accepted token at a time. A small vocabulary and
  // a window shorter than the history make tokens leave the window and n-grams repeat.
  const int V = 12;
  const int64_t last_n = 7;
  const float rep = 1.7f, freq = 0.3f, pres = 0.45f;
  const size_t ngram = 2;
  GenerationConfig c{.repetition_penalty = rep,
                     .frequency_penalty = freq,
                     .presence_penalty = pres,
                     .penalty_last_n = last_n,
                     .no_repeat_ngram_size = static_cast<int32_t>(ngram)};
  Sampler s(c);
  std::mt19937 rng(77);
  std::vector<int32_t> h;
  for (int step = 0; step < 300; ++step) {
    const auto l = random_logits(V, static_cast<uint32_t>(step));
    std::vector<float> want(l);
    const size_t from = h.size() > static_cast<size_t>(last_n) ? h.size() - last_n : 0;
    std::map<int32_t, int> count;
    for (size_t i = from; i < h.size(); ++i) ++count[h[i]];
    for (const auto& [id, n] : count) {
      float& x = want[static_cast<size_t>(id)];
      x = x > 0 ? x / rep : x * rep;
    }
    for (const auto& [id, n] : count) want[static_cast<size_t>(id)] -= n * freq + pres;
    if (h.size() + 1 >= ngram)
      for (size_t i = 0; i + ngram <= h.size(); ++i)
        if (std::equal(h.end() - static_cast<ptrdiff_t>(ngram - 1), h.end(),
                       h.begin() + static_cast<ptrdiff_t>(i)))
          want[static_cast<size_t>(h[i + ngram - 1])] = -INFINITY;
    s.process(l);
    std::vector<float> got(V, -INFINITY);
    for (const auto& it : s.candidates().items) got[static_cast<size_t>(it.id)] = it.logit;
    INFO("step " << step);
    REQUIRE(got == want);
    const auto t = static_cast<int32_t>(rng() % V);
    s.accept(t);
    h.push_back(t);
  }
  CHECK(std::vector<int32_t>(s.accepted().begin(), s.accepted().end()) == h);
  // A caller that passes the whole history gets the same: continuing it accepts only the new
  // tokens, another history rebuilds the state.
  Sampler t(c);
  const auto l = random_logits(V, 5);
  t.process(l, std::span(h).first(100));
  t.process(l, h);
  s.process(l);
  CHECK(t.candidates().items.size() == s.candidates().items.size());
  for (size_t i = 0; i < s.candidates().items.size(); ++i)
    CHECK(t.candidates().items[i].logit == s.candidates().items[i].logit);
  const std::vector<int32_t> other = {3, 3, 3};
  t.process(l, other);
  CHECK(std::vector<int32_t>(t.accepted().begin(), t.accepted().end()) == other);
}

TEST_CASE("a sampler cloned mid-generation continues exactly as the original", "[generate]") {
  const auto l = random_logits(40, 8, 1.0f);
  GenerationConfig c = GenerationConfig::llama_cpp_defaults();
  c.seed = 3;
  c.repetition_penalty = 1.3f;
  c.no_repeat_ngram_size = 3;
  Sampler a(c);
  for (int32_t t : {1, 2, 3, 4}) a.accept(t);
  for (int i = 0; i < 10; ++i) a.accept(a.sample(l));
  Sampler b = a;  // penalty windows, n-gram table and generator state all copied
  std::vector<int32_t> from_a, from_b;
  for (int i = 0; i < 30; ++i) {
    from_a.push_back(a.sample(l));
    a.accept(from_a.back());
    from_b.push_back(b.sample(l));
    b.accept(from_b.back());
  }
  CHECK(from_a == from_b);
  // Processors added later catch up with the accepted tokens.
  Sampler d(5);
  for (int32_t t : {7, 7, 9}) d.accept(t);
  d.add(repetition_penalty(2.0f, -1));
  d.process(l);
  CHECK(d.candidates().find(7)->logit == (l[7] > 0 ? l[7] / 2 : l[7] * 2));
  CHECK(d.candidates().find(8)->logit == l[8]);
  CHECK(d.describe() == "repetition_penalty(2) -> dist(seed 5)");
}

TEST_CASE("a cloned chain with the same seed draws the same tokens, reset restarts it",
          "[generate]") {
  const auto l = random_logits(50, 4, 1.0f);
  GenerationConfig c = GenerationConfig::llama_cpp_defaults();
  c.seed = 11;
  c.repetition_penalty = 1.2f;
  Sampler a(c);
  std::vector<int32_t> ha, hb;
  for (int i = 0; i < 20; ++i) ha.push_back(a.sample(l, ha));
  Sampler b(c);
  Sampler b2 = b;  // clone before use
  for (int i = 0; i < 20; ++i) hb.push_back(b2.sample(l, hb));
  CHECK(ha == hb);
  a.reset();
  std::vector<int32_t> hc;
  for (int i = 0; i < 20; ++i) hc.push_back(a.sample(l, hc));
  CHECK(hc == ha);
  std::set<int32_t> distinct(ha.begin(), ha.end());
  CHECK(distinct.size() > 1);  // it really samples
}

TEST_CASE("greedy generation reproduces PyTorch's greedy tokens", "[generate][torch]") {
  const std::string dir = std::string(SCHOLAR_TEST_DATA) + "/infer/llama";
  const auto want = io::SafetensorsFile::open(dir + "/expected.safetensors");
  const auto pt = want.load<int32_t>("prompt");
  const auto gt = want.load<int32_t>("greedy_f32");
  const std::vector<int32_t> prompt(pt.data(), pt.data() + pt.numel());
  const std::vector<int32_t> greedy(gt.data(), gt.data() + gt.numel());
  infer::Session s(infer::Model::load(dir));
  GenerationConfig c{
      .max_new_tokens = static_cast<int64_t>(greedy.size()), .temperature = 0, .top_logprobs = 3};
  const Result r = generate::generate(s, prompt, c, nullptr);
  REQUIRE(r.sequences.size() == 1);
  CHECK(r.sequences[0].tokens == greedy);
  CHECK(r.sequences[0].stop == StopReason::max_tokens);
  CHECK(r.prompt_tokens == static_cast<int64_t>(prompt.size()));
  for (const auto& t : r.sequences[0].info) {
    REQUIRE(t.top.size() == 3);
    CHECK(t.top[0].first == t.id);  // greedy took the best
    CHECK(t.top[0].second == Approx(t.logprob));
    CHECK(t.top[0].second >= t.top[1].second);
  }
  // Two sampled sequences in one batch; each equals a single-sequence run with its seed.
  GenerationConfig sc{
      .max_new_tokens = 8, .temperature = 1.0f, .top_k = 20, .seed = 5, .num_return_sequences = 2};
  const Result two = generate::generate(s, prompt, sc, nullptr);
  for (int i = 0; i < 2; ++i) {
    GenerationConfig one = sc;
    one.num_return_sequences = 1;
    one.seed = sc.seed + static_cast<uint64_t>(i);
    CHECK(generate::generate(s, prompt, one, nullptr).sequences[0].tokens ==
          two.sequences[static_cast<size_t>(i)].tokens);
  }
  // The context is never overrun.
  infer::Session small(infer::Model::load(dir), {.n_ctx = 16});
  const Result full = generate::generate(
      small, prompt, GenerationConfig{.max_new_tokens = 50, .temperature = 0}, nullptr);
  CHECK(full.sequences[0].stop == StopReason::context_full);
  CHECK(full.sequences[0].tokens.size() == 16 - prompt.size() + 1);
}

TEST_CASE("beam search equals exhaustive search on a tiny vocabulary", "[generate][beam]") {
  nn::TransformerLM lm(nn::TransformerConfig::llama(5, 128, 2, 32, 4, 2, 64), 3);
  const auto m = infer::Model::from_module(lm);
  const std::vector<int32_t> prompt = {1, 3, 2};
  const int L = 3;
  // Every continuation's total log-probability.
  infer::Session s(m, {.n_ctx = 128, .max_sequences = 64});
  std::vector<std::pair<double, std::vector<int32_t>>> all;
  for (int code = 0; code < 125; ++code) {
    std::vector<int32_t> seq = {code / 25, code / 5 % 5, code % 5};
    s.clear();
    auto logits = s.prefill(prompt);
    double sum = 0;
    for (int i = 0; i < L; ++i) {
      const auto p = softmax(std::vector<float>(logits.begin(), logits.end()));
      sum += std::log(p[static_cast<size_t>(seq[static_cast<size_t>(i)])]);
      if (i + 1 < L) logits = s.decode_one(seq[static_cast<size_t>(i)]);
    }
    all.emplace_back(sum, seq);
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  GenerationConfig c{
      .max_new_tokens = L, .ignore_eos = true, .num_beams = 25, .num_return_sequences = 5};
  const Result r = generate::generate(s, prompt, c, nullptr);
  REQUIRE(r.sequences.size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    INFO("rank " << i);
    CHECK(r.sequences[i].tokens == all[i].second);
    CHECK(r.sequences[i].score == Approx(all[i].first / L).epsilon(1e-4));
  }
  // With an EOS token, finished hypotheses compete by score / length^length_penalty.
  GenerationConfig e{.max_new_tokens = L,
                     .eos_token_ids = {0},
                     .num_beams = 4,
                     .length_penalty = 1.0f,
                     .num_return_sequences = 4};
  const Result re = generate::generate(s, prompt, e, nullptr);
  REQUIRE(re.sequences.size() == 4);
  for (size_t i = 1; i < 4; ++i) CHECK(re.sequences[i - 1].score >= re.sequences[i].score);
  for (const auto& q : re.sequences) {
    const bool ends_eos = q.tokens.back() == 0;
    CHECK((q.stop == StopReason::eos) == ends_eos);
    CHECK(std::count(q.tokens.begin(), q.tokens.end(), 0) == (ends_eos ? 1 : 0));
  }
  GenerationConfig too_many{.num_beams = 40};
  CHECK_THROWS_AS(generate::generate(s, prompt, too_many, nullptr), ValueError);
}

TEST_CASE("text streams hold back partial characters and stop-string prefixes", "[generate]") {
  TextStream t({"STOP", "\n\n"});
  CHECK(t.push("Hello ") == "Hello ");
  CHECK(t.push("\xe2\x82") == "");  // first two bytes of the euro sign
  CHECK(t.push("\xac and ST") == "\xe2\x82\xac and ");
  CHECK(t.push("AR") == "STAR");  // not a stop string after all
  CHECK(t.push("\n") == "");
  CHECK(t.push("x") == "\nx");
  CHECK(t.push("ST") == "");
  CHECK(t.push("OP and more") == "");
  CHECK(t.stopped());
  CHECK(t.text() == "Hello \xe2\x82\xac and STAR\nx");
  CHECK(t.flush().empty());
  TextStream u;
  CHECK(u.push("\xf0\x9f") == "");
  CHECK(u.flush() == "\xf0\x9f");  // an unfinished character is flushed as is at the end
}

TEST_CASE("streamed pieces never split a character and add up to the text", "[generate]") {
  std::string corpus;
  for (int i = 0; i < 50; ++i)
    corpus += "Caf\xc3\xa9 au lait, na\xc3\xafve \xe2\x82\xac" + std::to_string(i * 37) +
              " \xf0\x9f\x98\x80 the quick brown fox jumps over the lazy dog. ";
  auto tok = std::make_shared<text::BpeTokenizer>(
      text::BpeTokenizer::train(corpus, {.vocab_size = 400, .special_tokens = {"<|endoftext|>"}}));
  const int32_t eos = *tok->find("<|endoftext|>");
  nn::TransformerLM lm(nn::TransformerConfig::gpt2(tok->vocab_size(), 64, 1, 32, 2), 5);
  const auto m = infer::Model::from_module(lm, tok);
  CHECK(m->config().eos_id == eos);
  infer::Session s(m);
  GenerationConfig c{.max_new_tokens = 40, .temperature = 1.5f, .seed = 1};
  std::string streamed;
  int events = 0;
  const Result r =
      generate::generate(s, "Caf\xc3\xa9 au lait, na\xc3\xafve", c, [&](const StreamEvent& e) {
        // A character is never split between two pieces: a
        // piece ending in a lead byte is never followed by one
        // starting with its continuation.
        if (!e.text.empty() && !streamed.empty()) {
          const auto last = static_cast<unsigned char>(streamed.back());
          const auto next = static_cast<unsigned char>(e.text[0]);
          CHECK_FALSE((last >= 0xC0 && (next & 0xC0) == 0x80));
        }
        streamed += e.text;
        ++events;
        return true;
      });
  CHECK(events >= 40);
  CHECK(streamed == r.sequences[0].text);
  std::vector<int32_t> toks = r.sequences[0].tokens;
  if (!toks.empty() && toks.back() == eos) toks.pop_back();
  CHECK(tok->decode(toks) == r.sequences[0].text);
  // A callback returning false stops; so does a stop string.
  int n = 0;
  const Result stopped =
      generate::generate(s, "Hello", c, [&](const StreamEvent&) { return ++n < 5; });
  CHECK(stopped.sequences[0].stop == StopReason::callback);
  CHECK(stopped.sequences[0].tokens.size() == 5);
  GenerationConfig sc = c;
  const std::string text = r.sequences[0].text;
  if (text.size() > 12) {
    sc.stop_strings = {text.substr(8, 3)};
    const Result st = generate::generate(s, "Caf\xc3\xa9 au lait, na\xc3\xafve", sc);
    CHECK(st.sequences[0].stop == StopReason::stop_string);
    CHECK(st.sequences[0].text == text.substr(0, text.find(sc.stop_strings[0])));
  }
}

TEST_CASE("greedy sampling takes the first best logit, with or without processors before it",
          "[generate]") {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 3.0f, 1.0f, 0.0f, 2.5f, 3.0f};
  Sampler g(GenerationConfig{.temperature = 0});
  CHECK(g.describe() == "greedy -> dist(seed 0)");
  CHECK(g.sample(l) == 3);  // ties go to the lower id, as the candidates' order says
  g.process(l);
  REQUIRE(g.candidates().items.size() == 1);
  CHECK(g.candidates().items[0].id == 3);
  // With a penalty in front, the chain runs in full: token 3, seen, loses to token 7.
  Sampler p(GenerationConfig{.temperature = 0, .repetition_penalty = 2.0f});
  p.accept(3);
  CHECK(p.sample(l) == 7);
  std::vector<float> none(4, -INFINITY);
  CHECK_THROWS_AS(g.sample(none), ValueError);
}
