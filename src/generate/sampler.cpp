// Sampling: candidates, the built-in processors, and the chain with its draw.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <unordered_map>

#include "scholar/error.hpp"
#include "scholar/generate/generate.hpp"

namespace scholar::generate {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool better(const Candidates::Item& a, const Candidates::Item& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The last n tokens accepted (all of them when n < 0) and how often each occurs among them,
// updated one token at a time: a ring buffer of the window and a count per distinct token.
class TokenWindow {
 public:
  explicit TokenWindow(int64_t n) : n_(n) {}
  void push(int32_t t) {
    if (n_ == 0) return;
    if (n_ > 0) {
      if (static_cast<int64_t>(ring_.size()) < n_) {
        ring_.push_back(t);
      } else {  // full: the oldest token leaves the window
        int32_t& slot = ring_[head_];
        if (auto it = counts_.find(slot); --it->second == 0) counts_.erase(it);
        slot = t;
        head_ = (head_ + 1) % ring_.size();
      }
    }
    ++counts_[t];
  }
  void clear() {
    ring_.clear();
    counts_.clear();
    head_ = 0;
  }
  /// Distinct tokens of the window with their counts (never zero).
  const std::unordered_map<int32_t, int64_t>& counts() const { return counts_; }

 private:
  int64_t n_;
  std::vector<int32_t> ring_;
  size_t head_ = 0;  // oldest entry once the ring is full
  std::unordered_map<int32_t, int64_t> counts_;
};

}  // namespace

// --- config
// -------------------------------------------------------------------------------------------

void GenerationConfig::validate() const {
  auto bad = [](auto&&... what) { fail<ValueError>("GenerationConfig: ", what...); };
  if (max_new_tokens < 0) bad("max_new_tokens must be >= 0, got ", max_new_tokens);
  if (!(temperature >= 0) || !std::isfinite(temperature))
    bad("temperature must be a finite number >= 0, got ", temperature);
  if (top_k < 0) bad("top_k must be >= 0, got ", top_k);
  if (!(top_p > 0 && top_p <= 1)) bad("top_p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0 && min_p <= 1)) bad("min_p must be in [0, 1], got ", min_p);
  if (!(typical_p > 0 && typical_p <= 1)) bad("typical_p must be in (0, 1], got ", typical_p);
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty))
    bad("repetition_penalty must be > 0, got ", repetition_penalty);
  if (!std::isfinite(frequency_penalty) || !std::isfinite(presence_penalty))
    bad("frequency and presence penalties must be finite");
  if (penalty_last_n < -1) bad("penalty_last_n must be >= -1, got ", penalty_last_n);
  if (no_repeat_ngram_size < 0)
    bad("no_repeat_ngram_size must be >= 0, got ", no_repeat_ngram_size);
  for (const auto& [id, b] : logit_bias)
    if (id < 0 || std::isnan(b)) bad("logit_bias entry for token ", id, " is invalid");
  for (const auto& s : stop_strings)
    if (s.empty()) bad("stop strings must not be empty");
  if (num_beams < 1 || num_beams > 32) bad("num_beams must be in [1, 32], got ", num_beams);
  if (num_return_sequences < 1)
    bad("num_return_sequences must be >= 1, got ", num_return_sequences);
  if (num_beams > 1 && num_return_sequences > num_beams)
    bad("num_return_sequences (", num_return_sequences, ") cannot exceed num_beams (", num_beams,
        ")");
  if (num_beams == 1 && num_return_sequences > 64)
    bad("num_return_sequences must be <= 64, got ", num_return_sequences);
  if (!std::isfinite(length_penalty)) bad("length_penalty must be finite");
  if (top_logprobs < 0) bad("top_logprobs must be >= 0, got ", top_logprobs);
}

GenerationConfig GenerationConfig::transformers_defaults() {
  GenerationConfig c;
  c.temperature = 1.0f;
  c.top_k = 50;
  c.order = ChainOrder::transformers;
  return c;
}

GenerationConfig GenerationConfig::llama_cpp_defaults() {
  GenerationConfig c;
  c.temperature = 0.8f;
  c.top_k = 40;
  c.top_p = 0.95f;
  c.min_p = 0.05f;
  c.penalty_last_n = 64;
  c.order = ChainOrder::llama_cpp;
  return c;
}

// --- candidates
// ---------------------------------------------------------------------------------------

void Candidates::assign(std::span<const float> logits) {
  items.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) items[i] = {static_cast<int32_t>(i), logits[i]};
  sorted = false;
  dense = true;
  selected = -1;
}

void Candidates::sort() {
  if (sorted) return;
  std::sort(items.begin(), items.end(), better);
  sorted = true;
  dense = false;
}

void Candidates::probabilities(std::vector<double>& out) const {
  out.resize(items.size());
  float mx = kNegInf;
  for (const Item& it : items) mx = std::max(mx, it.logit);
  if (mx == kNegInf) fail<ValueError>("sampling: every token has been ruled out");
  double z = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    out[i] = std::exp(static_cast<double>(items[i].logit) - mx);
    z += out[i];
  }
  for (double& p : out) p /= z;
}

Candidates::Item* Candidates::find(int32_t id) {
  if (dense) return id >= 0 && static_cast<size_t>(id) < items.size() ? &items[id] : nullptr;
  for (Item& it : items)
    if (it.id == id) return &it;
  return nullptr;
}

// --- processors
// ---------------------------------------------------------------------------------------

namespace {

class RepetitionPenalty final : public LogitsProcessor {
 public:
  RepetitionPenalty(float p, int64_t n) : p_(p), window_(n) {}
  std::string describe() const override { return "repetition_penalty(" + num(p_) + ")"; }
  void apply(Candidates& c) override {
    for (const auto& [id, count] : window_.counts())
      if (auto* it = c.find(id)) it->logit = it->logit > 0 ? it->logit / p_ : it->logit * p_;
    c.sorted = false;
  }
  void accept(int32_t token) override { window_.push(token); }
  std::unique_ptr<LogitsProcessor> clone() const override {
    return std::make_unique<RepetitionPenalty>(*this);
  }
  void reset() override { window_.clear(); }

 private:
  float p_;
  TokenWindow window_;
};

class FrequencyPresence final : public LogitsProcessor {
 public:
  FrequencyPresence(float f, float p, int64_t n) : f_(f), p_(p), window_(n) {}
  std::string describe() const override {
    return "frequency_presence_penalty(" + num(f_) + ", " + num(p_) + ")";
  }
  void apply(Candidates& c) override {
    for (const auto& [id, n] : window_.counts())
      if (auto* it = c.find(id)) it->logit -= static_cast<float>(n) * f_ + p_;
    c.sorted = false;
  }
  void accept(int32_t token) override { window_.push(token); }
  std::unique_ptr<LogitsProcessor> clone() const override {
    return std::make_unique<FrequencyPresence>(*this);
  }
  void reset() override { window_.clear(); }

 private:
  float f_, p_;
  TokenWindow window_;
};

// Bans every token that would repeat an n-gram of the history. Each accepted token files the
// n-gram it completes under its first n - 1 tokens, so a step is one lookup.
class NoRepeatNgram final : public LogitsProcessor {
 public:
  explicit NoRepeatNgram(int32_t n) : n_(static_cast<size_t>(n)) {}
  std::string describe() const override { return "no_repeat_ngram(" + std::to_string(n_) + ")"; }
  void apply(Candidates& c) override {
    if (h_.size() + 1 < n_) return;
    const auto it = banned_.find(key(h_.size() - (n_ - 1)));
    if (it == banned_.end()) return;
    for (int32_t id : it->second)
      if (auto* item = c.find(id)) item->logit = kNegInf;
  }
  void accept(int32_t token) override {
    h_.push_back(token);
    if (h_.size() < n_) return;
    auto& next = banned_[key(h_.size() - n_)];
    if (std::find(next.begin(), next.end(), token) == next.end()) next.push_back(token);
  }
  std::unique_ptr<LogitsProcessor> clone() const override {
    return std::make_unique<NoRepeatNgram>(*this);
  }
  void reset() override {
    h_.clear();
    banned_.clear();
  }

 private:
  // The n - 1 tokens of the history from position `from`, as bytes (the map's key).
  std::string key(size_t from) const {
    return std::string(reinterpret_cast<const char*>(h_.data() + from), (n_ - 1) * sizeof(int32_t));
  }
  size_t n_;
  std::vector<int32_t> h_;
  std::unordered_map<std::string, std::vector<int32_t>> banned_;  // (n-1)-gram -> next tokens
};

class LogitBias final : public LogitsProcessor {
 public:
  explicit LogitBias(std::vector<std::pair<int32_t, float>> b) : b_(std::move(b)) {}
  std::string describe() const override {
    return "logit_bias(" + std::to_string(b_.size()) + " tokens)";
  }
  void apply(Candidates& c) override {
    for (const auto& [id, v] : b_)
      if (auto* it = c.find(id)) it->logit += v;
    c.sorted = false;
  }
  std::unique_ptr<LogitsProcessor> clone() const override {
    return std::make_unique<LogitBias>(b_);
  }

 private:
  std::vector<std::pair<int32_t, float>> b_;
};

class Temperature final : public LogitsProcessor {
 public:
  explicit Temperature(float t) : t_(t) {}
  std::string describe() const override {
    return t_ == 0 ? "greedy" : "temperature(" + num(t_) + ")";
  }
  void apply(Candidates& c) override {
    if (c.items.empty()) return;
    if (t_ == 0) {
      const auto best = *std::min_element(c.items.begin(), c.items.end(), better);
      c.items.assign(1, best);
      c.sorted = true;
      c.dense = false;
      return;
    }
    const float inv = 1.0f / t_;
    for (auto& it : c.items) it.logit *= inv;
  }
  std::unique_ptr<LogitsProcessor> clone() const override {
    return std::make_unique<Temperature>(t_);
  }
  bool greedy() const noexcept { return t_ == 0; }

 private:
  float t_;
};

class TopK final : public LogitsProcessor {
 public:
  explicit TopK(int32_t k) : k_(k) {}
  std::string describe() const override { return "top_k(" + std::to_string(k_) + ")"; }
  void apply(Candidates& c) override {
    const size_t k = static_cast<size_t>(std::max(k_, 1));
    if (k >= c.items.size()) return;
    if (!c.sorted)
      std::partial_sort(c.items.begin(), c.items.begin() + static_cast<ptrdiff_t>(k), c.items.end(),
                        better);
    c.items.resize(k);
    c.sorted = true;
    c.dense = false;
  }
  std::unique_ptr<LogitsProcessor> clone() const override { return std::make_unique<TopK>(k_); }

 private:
  int32_t k_;
};

class TopP final : public LogitsProcessor {
 public:
  explicit TopP(float p) : p_(p) {}
  std::string describe() const override { return "top_p(" + num(p_) + ")"; }
  void apply(Candidates& c) override {
    if (p_ >= 1 || c.items.size() <= 1) return;
    const size_t n = c.items.size();
    float mx = kNegInf;
    for (const auto& it : c.items) mx = std::max(mx, it.logit);
    double z = 0;
    for (const auto& it : c.items) z += std::exp(static_cast<double>(it.logit) - mx);
    // Sort only as much as needed: the best k, growing k until their mass reaches p.
    size_t k = c.sorted ? n : std::min<size_t>(n, 64);
    for (;;) {
      if (!c.sorted)
        std::partial_sort(c.items.begin(), c.items.begin() + static_cast<ptrdiff_t>(k),
                          c.items.end(), better);
      double cum = 0;
      for (size_t i = 0; i < k; ++i) {
        cum += std::exp(static_cast<double>(c.items[i].logit) - mx) / z;
        if (cum >= p_) {
          c.items.resize(i + 1);
          c.sorted = true;
          c.dense = false;
          return;
        }
      }
      if (k == n) {
        c.sorted = true;
        c.dense = false;
        return;  // rounding: the whole set is needed
      }
      k = std::min(n, k * 4);
    }
  }
  std::unique_ptr<LogitsProcessor> clone() const override { return std::make_unique<TopP>(p_); }

 private:
  float p_;
};

class MinP final : public LogitsProcessor {
 public:
  explicit MinP(float p) : p_(p) {}
  std::string describe() const override { return "min_p(" + num(p_) + ")"; }
  void apply(Candidates& c) override {
    if (p_ <= 0 || c.items.empty()) return;
    float mx = kNegInf;
    for (const auto& it : c.items) mx = std::max(mx, it.logit);
    // p_i >= p * p_max  <=>  logit_i >= max + log(p)
    const double cut = static_cast<double>(mx) + std::log(static_cast<double>(p_));
    const auto keep_end =
        std::stable_partition(c.items.begin(), c.items.end(),
                              [&](const auto& it) { return static_cast<double>(it.logit) >= cut; });
    if (keep_end != c.items.end()) {
      c.items.erase(keep_end, c.items.end());
      c.dense = false;
    }
  }
  std::unique_ptr<LogitsProcessor> clone() const override { return std::make_unique<MinP>(p_); }

 private:
  float p_;
};

class TypicalP final : public LogitsProcessor {
 public:
  explicit TypicalP(float p) : p_(p) {}
  std::string describe() const override { return "typical_p(" + num(p_) + ")"; }
  void apply(Candidates& c) override {
    if (p_ >= 1 || c.items.size() <= 1) return;
    c.probabilities(probs_);
    double ent = 0;
    for (double p : probs_)
      if (p > 0) ent -= p * std::log(p);
    // Order by |-log p - H| (most typical first) and keep until the mass reaches p.
    order_.resize(c.items.size());
    for (size_t i = 0; i < order_.size(); ++i)
      order_[i] = {probs_[i] > 0 ? std::fabs(-std::log(probs_[i]) - ent)
                                 : std::numeric_limits<double>::infinity(),
                   i};
    std::stable_sort(order_.begin(), order_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Candidates::Item> kept;
    double cum = 0;
    for (const auto& [shift, i] : order_) {
      kept.push_back(c.items[i]);
      cum += probs_[i];
      if (cum >= p_) break;
    }
    c.items = std::move(kept);
    c.sorted = false;
    c.dense = false;
  }
  std::unique_ptr<LogitsProcessor> clone() const override { return std::make_unique<TypicalP>(p_); }

 private:
  float p_;
  std::vector<double> probs_;
  std::vector<std::pair<double, size_t>> order_;
};

// The final draw: a token at random from the softmax of what remains.
class Dist final : public LogitsProcessor {
 public:
  explicit Dist(uint64_t seed) : seed_(seed), gen_(seed) {}
  std::string describe() const override { return "dist(seed " + std::to_string(seed_) + ")"; }
  void apply(Candidates& c) override {
    if (c.items.empty()) fail<ValueError>("Sampler: the chain removed every token");
    c.probabilities(probs_);
    c.selected = draw();
  }
  std::unique_ptr<LogitsProcessor> clone() const override { return std::make_unique<Dist>(*this); }
  void reset() override { gen_ = Generator(seed_); }

 private:
  int64_t draw() {
    const auto n = static_cast<int64_t>(probs_.size());
    if (n == 1) return 0;
    // A uniform double in [0, 1) from 53 random bits.
    const double u = static_cast<double>(gen_.next_u64() >> 11) * 0x1.0p-53;
    double cum = 0;
    for (int64_t i = 0; i < n; ++i) {
      cum += probs_[static_cast<size_t>(i)];
      if (u < cum) return i;
    }
    for (int64_t i = n; i-- > 0;)  // rounding left u past the total
      if (probs_[static_cast<size_t>(i)] > 0) return i;
    return n - 1;
  }
  uint64_t seed_;
  Generator gen_;
  std::vector<double> probs_;
};

}  // namespace

std::unique_ptr<LogitsProcessor> repetition_penalty(float penalty, int64_t last_n) {
  if (!(penalty > 0)) fail<ValueError>("repetition_penalty: must be > 0, got ", penalty);
  return std::make_unique<RepetitionPenalty>(penalty, last_n);
}
std::unique_ptr<LogitsProcessor> frequency_presence_penalty(float f, float p, int64_t last_n) {
  return std::make_unique<FrequencyPresence>(f, p, last_n);
}
std::unique_ptr<LogitsProcessor> no_repeat_ngram(int32_t n) {
  if (n < 1) fail<ValueError>("no_repeat_ngram: n must be >= 1, got ", n);
  return std::make_unique<NoRepeatNgram>(n);
}
std::unique_ptr<LogitsProcessor> logit_bias(std::vector<std::pair<int32_t, float>> bias) {
  return std::make_unique<LogitBias>(std::move(bias));
}
std::unique_ptr<LogitsProcessor> temperature(float t) {
  if (!(t >= 0)) fail<ValueError>("temperature: must be >= 0, got ", t);
  return std::make_unique<Temperature>(t);
}
std::unique_ptr<LogitsProcessor> top_k(int32_t k) {
  if (k < 1) fail<ValueError>("top_k: k must be >= 1, got ", k);
  return std::make_unique<TopK>(k);
}
std::unique_ptr<LogitsProcessor> top_p(float p) {
  if (!(p > 0 && p <= 1)) fail<ValueError>("top_p: p must be in (0, 1], got ", p);
  return std::make_unique<TopP>(p);
}
std::unique_ptr<LogitsProcessor> min_p(float p) {
  if (!(p >= 0 && p <= 1)) fail<ValueError>("min_p: p must be in [0, 1], got ", p);
  return std::make_unique<MinP>(p);
}
std::unique_ptr<LogitsProcessor> typical_p(float p) {
  if (!(p > 0 && p <= 1)) fail<ValueError>("typical_p: p must be in (0, 1], got ", p);
  return std::make_unique<TypicalP>(p);
}
std::unique_ptr<LogitsProcessor> dist(uint64_t seed) {
  return std::make_unique<Dist>(seed);
}

// --- Sampler
// ------------------------------------------------------------------------------------------

Sampler::Sampler(uint64_t seed) {
  chain_.push_back(dist(seed));
}

Sampler::Sampler(const GenerationConfig& cfg) : Sampler(cfg.seed) {
  cfg.validate();
  if (cfg.repetition_penalty != 1.0f)
    add(repetition_penalty(cfg.repetition_penalty, cfg.penalty_last_n));
  if (cfg.frequency_penalty != 0 || cfg.presence_penalty != 0)
    add(frequency_presence_penalty(cfg.frequency_penalty, cfg.presence_penalty,
                                   cfg.penalty_last_n));
  if (cfg.no_repeat_ngram_size > 0) add(no_repeat_ngram(cfg.no_repeat_ngram_size));
  if (!cfg.logit_bias.empty()) add(logit_bias(cfg.logit_bias));
  auto filters = [&] {
    if (cfg.top_k > 0) add(top_k(cfg.top_k));
    if (cfg.order == ChainOrder::llama_cpp && cfg.typical_p < 1) add(typical_p(cfg.typical_p));
    if (cfg.top_p < 1) add(top_p(cfg.top_p));
    if (cfg.min_p > 0) add(min_p(cfg.min_p));
    if (cfg.order == ChainOrder::transformers && cfg.typical_p < 1) add(typical_p(cfg.typical_p));
  };
  if (cfg.order == ChainOrder::transformers) {
    if (cfg.temperature != 1.0f) add(temperature(cfg.temperature));
    if (cfg.temperature != 0) filters();  // greedy: nothing after it matters
  } else {
    if (cfg.temperature != 0) filters();
    if (cfg.temperature != 1.0f) add(temperature(cfg.temperature));
  }
}

Sampler::Sampler(const Sampler& o)
    : cand_(o.cand_), accepted_(o.accepted_), greedy_only_(o.greedy_only_) {
  for (const auto& p : o.chain_) chain_.push_back(p->clone());
}

Sampler& Sampler::operator=(const Sampler& o) {
  if (this != &o) {
    Sampler copy(o);
    *this = std::move(copy);
  }
  return *this;
}

void Sampler::add(std::unique_ptr<LogitsProcessor> p) {
  if (!p) fail<ValueError>("Sampler::add: null processor");
  // The processor joins the others' history.
  for (int32_t t : accepted_) p->accept(t);
  chain_.insert(chain_.end() - 1, std::move(p));
  // Greedy and nothing else: sample() can take the best logit without building candidates.
  const auto* t = dynamic_cast<const Temperature*>(chain_.front().get());
  greedy_only_ = chain_.size() == 2 && t != nullptr && t->greedy();
}

std::string Sampler::describe() const {
  std::string s;
  for (const auto& p : chain_) s += (s.empty() ? "" : " -> ") + p->describe();
  return s;
}

void Sampler::accept(int32_t token) {
  accepted_.push_back(token);
  for (const auto& p : chain_) p->accept(token);
}

void Sampler::sync(std::span<const int32_t> history) {
  const size_t n = accepted_.size();
  if (history.size() < n || !std::equal(accepted_.begin(), accepted_.end(), history.begin())) {
    // Another history (a different beam, say): rebuild the processors' state from it.
    accepted_.clear();
    for (size_t i = 0; i + 1 < chain_.size(); ++i) chain_[i]->reset();
    for (int32_t t : history) accept(t);
    return;
  }
  for (size_t i = n; i < history.size(); ++i) accept(history[i]);
}

void Sampler::process(std::span<const float> logits) {
  if (logits.empty()) fail<ValueError>("Sampler: no logits");
  cand_.assign(logits);
  for (size_t i = 0; i + 1 < chain_.size(); ++i) chain_[i]->apply(cand_);
}

void Sampler::process(std::span<const float> logits, std::span<const int32_t> history) {
  sync(history);
  process(logits);
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (greedy_only_) {  // the first best logit: what the greedy chain would keep, without copies
    if (logits.empty()) fail<ValueError>("Sampler: no logits");
    const auto best = std::max_element(logits.begin(), logits.end());
    if (*best == kNegInf) fail<ValueError>("sampling: every token has been ruled out");
    return static_cast<int32_t>(best - logits.begin());
  }
  process(logits);
  chain_.back()->apply(cand_);
  SCHOLAR_ASSERT(cand_.selected >= 0 && cand_.selected < static_cast<int64_t>(cand_.items.size()),
                 "the final draw chose no token");
  return cand_.items[static_cast<size_t>(cand_.selected)].id;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  sync(history);
  return sample(logits);
}

void Sampler::reset() {
  accepted_.clear();
  for (const auto& p : chain_) p->reset();
}

}  // namespace scholar::generate
