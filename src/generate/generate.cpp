// The generation loops: sampling/greedy over one or more sequences, and beam search.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "scholar/error.hpp"
#include "scholar/generate/generate.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::generate {

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::max_tokens:
      return "max_tokens";
    case StopReason::eos:
      return "eos";
    case StopReason::stop_string:
      return "stop_string";
    case StopReason::context_full:
      return "context_full";
    case StopReason::callback:
      return "callback";
  }
  return "?";
}

// --- TextStream
// ---------------------------------------------------------------------------------------

TextStream::TextStream(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {}

std::string TextStream::push(std::string_view bytes) {
  if (stopped_) return {};
  pending_.append(bytes);
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    std::string out = pending_.substr(0, first);
    pending_.clear();
    stopped_ = true;
    shown_ += out;
    return out;
  }
  // Hold back the longest ending that could begin a stop string.
  size_t hold = 0;
  for (const auto& s : stops_)
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len)
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
  size_t end = pending_.size() - hold;
  end -= text::incomplete_utf8_tail(std::string_view(pending_).substr(0, end));
  std::string out = pending_.substr(0, end);
  pending_.erase(0, end);
  shown_ += out;
  return out;
}

std::string TextStream::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  if (stopped_) return {};
  shown_ += out;
  return out;
}

// --- helpers
// ------------------------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// log-softmax of the raw logits at `id`, and optionally the n best alternatives.
TokenInfo token_info(std::span<const float> logits, int32_t id, int32_t top_n,
                     std::vector<int32_t>& scratch, std::vector<float>& logp) {
  // One vectorized log-softmax over the vocabulary (a scalar loop of double exp() cost about as
  // much as a whole decoding step's sampling at 50k tokens).
  logp.resize(logits.size());
  kernels::active().log_softmax(logp.data(), logits.data(), logits.size());
  TokenInfo t;
  t.id = id;
  t.logprob = logp[static_cast<size_t>(id)];
  if (top_n > 0) {
    scratch.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) scratch[i] = static_cast<int32_t>(i);
    const size_t n = std::min(static_cast<size_t>(top_n), logits.size());
    std::partial_sort(scratch.begin(), scratch.begin() + static_cast<ptrdiff_t>(n), scratch.end(),
                      [&](int32_t a, int32_t b) {
                        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                      });
    for (size_t i = 0; i < n; ++i) t.top.emplace_back(scratch[i], logp[scratch[i]]);
  }
  return t;
}

std::vector<int32_t> eos_ids(const infer::Session& s, const GenerationConfig& cfg) {
  if (cfg.ignore_eos) return {};
  if (!cfg.eos_token_ids.empty()) return cfg.eos_token_ids;
  const int32_t e = s.model().config().eos_id;
  return e >= 0 ? std::vector<int32_t>{e} : std::vector<int32_t>{};
}

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string piece(const text::Tokenizer* tok, int32_t id, const std::vector<int32_t>& eos) {
  if (!tok || contains(eos, id) || id >= tok->vocab_size()) return {};
  return tok->decode(std::span<const int32_t>(&id, 1));
}

void check_prompt(const infer::Session& s, std::span<const int32_t> prompt) {
  if (prompt.empty()) fail<ValueError>("generate: the prompt has no tokens");
  const int64_t room = std::min(s.n_ctx(), s.model().arch().context_length);
  if (static_cast<int64_t>(prompt.size()) >= room)
    fail<ValueError>("generate: the prompt has ", prompt.size(),
                     " tokens, which leaves no room in a context of ", room);
}

// --- sampling and greedy
// --------------------------------------------------------------------------------

Result sample_loop(infer::Session& session, std::span<const int32_t> prompt,
                   const GenerationConfig& cfg, const text::Tokenizer* tok,
                   const StreamCallback& cb) {
  const int32_t n = cfg.num_return_sequences;
  const auto V = static_cast<size_t>(session.vocab_size());
  const std::vector<int32_t> eos = eos_ids(session, cfg);
  const int64_t ctx = std::min(session.n_ctx(), session.model().arch().context_length);
  Result r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  session.clear();
  auto t0 = Clock::now();
  const auto first = session.prefill(prompt, 0);
  std::vector<std::vector<float>> logits(static_cast<size_t>(n),
                                         std::vector<float>(first.begin(), first.end()));
  for (int32_t s = 1; s < n; ++s) session.copy_sequence(0, s);
  r.prompt_seconds = since(t0);
  t0 = Clock::now();

  struct State {
    Sampler sampler;
    std::vector<int32_t> history;
    TextStream stream;
    bool done = false;
  };
  std::vector<State> st;
  for (int32_t s = 0; s < n; ++s) {
    GenerationConfig c = cfg;
    c.seed = cfg.seed + static_cast<uint64_t>(s);
    st.push_back({Sampler(c), std::vector<int32_t>(prompt.begin(), prompt.end()),
                  TextStream(cfg.stop_strings)});
    for (int32_t t : prompt) st.back().sampler.accept(t);
  }
  r.sequences.resize(static_cast<size_t>(n));
  std::vector<int32_t> scratch;
  std::vector<float> logp;
  infer::Batch batch;
  bool stop_all = false;
  for (int64_t step = 0; step < cfg.max_new_tokens && !stop_all; ++step) {
    batch.clear();
    for (int32_t s = 0; s < n; ++s) {
      State& x = st[static_cast<size_t>(s)];
      if (x.done) continue;
      Sequence& out = r.sequences[static_cast<size_t>(s)];
      const auto& lg = logits[static_cast<size_t>(s)];
      const int32_t id = x.sampler.sample(lg);
      x.sampler.accept(id);
      TokenInfo info = token_info(lg, id, cfg.top_logprobs, scratch, logp);
      out.tokens.push_back(id);
      out.score += info.logprob;
      x.history.push_back(id);
      ++r.generated_tokens;
      const bool is_eos = contains(eos, id);
      const std::string text = x.stream.push(piece(tok, id, eos));
      out.info.push_back(std::move(info));
      if (cb && !cb({s, text, &out.info.back()})) {
        out.stop = StopReason::callback;
        stop_all = true;
      }
      if (is_eos) {
        out.stop = StopReason::eos;
        x.done = true;
      } else if (x.stream.stopped()) {
        out.stop = StopReason::stop_string;
        x.done = true;
      } else if (stop_all) {
        x.done = true;
      } else if (static_cast<int64_t>(x.history.size()) > ctx) {  // no cell left to decode it
        out.stop = StopReason::context_full;
        x.done = true;
      } else if (step + 1 < cfg.max_new_tokens) {
        batch.add(id, static_cast<int64_t>(x.history.size()) - 1, s, true);
      }
    }
    if (batch.size() == 0) break;
    const auto out = session.decode(batch);
    for (size_t i = 0; i < batch.size(); ++i)
      std::copy(out.begin() + static_cast<ptrdiff_t>(i * V),
                out.begin() + static_cast<ptrdiff_t>((i + 1) * V),
                logits[static_cast<size_t>(batch.seq[i])].begin());
  }
  for (int32_t s = 0; s < n; ++s) {
    State& x = st[static_cast<size_t>(s)];
    if (stop_all && !x.done) r.sequences[static_cast<size_t>(s)].stop = StopReason::callback;
    const std::string rest = x.stream.flush();
    if (cb && !rest.empty()) cb({s, rest, nullptr});
    r.sequences[static_cast<size_t>(s)].text = x.stream.text();
  }
  r.generation_seconds = since(t0);
  return r;
}

// --- beam search
// ----------------------------------------------------------------------------------------

struct Hypothesis {
  double score;
  double sum_logprobs;
  std::vector<int32_t> tokens;
  bool eos;
};

struct Hypotheses {
  size_t capacity;
  float length_penalty;
  std::vector<Hypothesis> items;  // at most capacity, any order

  double worst() const {
    double w = std::numeric_limits<double>::infinity();
    for (const auto& h : items) w = std::min(w, h.score);
    return w;
  }
  void add(std::vector<int32_t> tokens, double sum, bool eos) {
    const double score = sum / std::pow(static_cast<double>(tokens.size()), length_penalty);
    if (items.size() < capacity || score > worst()) {
      items.push_back({score, sum, std::move(tokens), eos});
      if (items.size() > capacity)
        items.erase(std::min_element(items.begin(), items.end(), [](const auto& a, const auto& b) {
          return a.score < b.score;
        }));
    }
  }
  // transformers' BeamHypotheses.is_done.
  bool done(double best_sum, int64_t cur_len, int64_t max_len, EarlyStopping es) const {
    if (items.size() < capacity) return false;
    if (es == EarlyStopping::on_enough) return true;
    const double len = es == EarlyStopping::never && length_penalty > 0
                           ? static_cast<double>(max_len)
                           : static_cast<double>(cur_len);
    return worst() >= best_sum / std::pow(len, length_penalty);
  }
};

Result beam_search(infer::Session& session, std::span<const int32_t> prompt,
                   const GenerationConfig& cfg, const text::Tokenizer* tok) {
  const int32_t B = cfg.num_beams;
  const auto V = static_cast<size_t>(session.vocab_size());
  const std::vector<int32_t> eos = eos_ids(session, cfg);
  const int64_t ctx = std::min(session.n_ctx(), session.model().arch().context_length);
  Result r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  session.clear();
  auto t0 = Clock::now();
  const auto first = session.prefill(prompt, 0);
  r.prompt_seconds = since(t0);
  t0 = Clock::now();

  // The penalties of the config act on every beam's logits (as transformers' logits processors);
  // temperature and the sampling filters do not apply to beam search.
  GenerationConfig pc;
  pc.repetition_penalty = cfg.repetition_penalty;
  pc.frequency_penalty = cfg.frequency_penalty;
  pc.presence_penalty = cfg.presence_penalty;
  pc.penalty_last_n = cfg.penalty_last_n;
  pc.no_repeat_ngram_size = cfg.no_repeat_ngram_size;
  pc.logit_bias = cfg.logit_bias;
  Sampler penalties(pc);

  struct Beam {
    std::vector<int32_t> tokens;
    double sum = 0;
    int32_t seq = 0;
  };
  std::vector<Beam> beams{Beam{}};
  std::vector<float> logits(first.begin(), first.end());  // beams.size() rows of V
  Hypotheses hyps{static_cast<size_t>(B), cfg.length_penalty, {}};
  struct Cand {
    double sum;
    size_t beam;
    int32_t id;
    float logprob;
  };
  std::vector<Cand> cands;
  std::vector<double> lp;
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  int32_t base = 0;  // beams live in sequences [base, base + B); the next step uses the other half
  infer::Batch batch;
  const int64_t max_len = cfg.max_new_tokens;
  for (int64_t step = 0; step < max_len; ++step) {
    cands.clear();
    for (size_t b = 0; b < beams.size(); ++b) {
      history.resize(prompt.size());
      history.insert(history.end(), beams[b].tokens.begin(), beams[b].tokens.end());
      penalties.process(std::span<const float>(logits).subspan(b * V, V), history);
      const Candidates& c = penalties.candidates();
      // log-softmax over what remains (removed tokens have -inf).
      float mx = -std::numeric_limits<float>::infinity();
      for (const auto& it : c.items) mx = std::max(mx, it.logit);
      double z = 0;
      for (const auto& it : c.items) z += std::exp(static_cast<double>(it.logit) - mx);
      const double lse = mx + std::log(z);
      const size_t start = cands.size();
      for (const auto& it : c.items) {
        if (it.logit == -std::numeric_limits<float>::infinity()) continue;
        const float l = static_cast<float>(it.logit - lse);
        cands.push_back({beams[b].sum + l, b, it.id, l});
      }
      // Keep this beam's best 2B.
      const size_t keep = std::min(cands.size() - start, static_cast<size_t>(2 * B));
      std::partial_sort(cands.begin() + static_cast<ptrdiff_t>(start),
                        cands.begin() + static_cast<ptrdiff_t>(start + keep), cands.end(),
                        [](const Cand& a, const Cand& b) { return a.sum > b.sum; });
      cands.resize(start + keep);
    }
    const size_t top = std::min(cands.size(), static_cast<size_t>(2 * B));
    std::partial_sort(
        cands.begin(), cands.begin() + static_cast<ptrdiff_t>(top), cands.end(),
        [](const Cand& a, const Cand& b) {
          return a.sum > b.sum ||
                 (a.sum == b.sum && (a.beam < b.beam || (a.beam == b.beam && a.id < b.id)));
        });
    cands.resize(top);
    std::vector<Beam> next;
    std::vector<size_t> parent;
    for (size_t rank = 0; rank < cands.size() && next.size() < static_cast<size_t>(B); ++rank) {
      const Cand& c = cands[rank];
      std::vector<int32_t> toks = beams[c.beam].tokens;
      toks.push_back(c.id);
      if (contains(eos, c.id)) {
        if (rank >= static_cast<size_t>(B)) continue;  // as transformers: only the best B may end
        hyps.add(std::move(toks), c.sum, true);
      } else {
        next.push_back({std::move(toks), c.sum, 0});
        parent.push_back(c.beam);
      }
    }
    const int64_t cur_len = step + 1;
    const double best = cands.empty() ? -std::numeric_limits<double>::infinity() : cands[0].sum;
    if (next.empty() || hyps.done(best, cur_len, max_len, cfg.early_stopping)) {
      beams.clear();
      break;
    }
    const bool last = step + 1 == max_len || static_cast<int64_t>(prompt.size()) + cur_len >= ctx;
    if (last) {
      beams = std::move(next);
      break;
    }
    // Move the beams' caches into the other half of the sequence ids: a fork copies no data.
    const int32_t nb = base == 0 ? B : 0;
    for (size_t j = 0; j < next.size(); ++j) {
      next[j].seq = nb + static_cast<int32_t>(j);
      session.copy_sequence(beams[parent[j]].seq, next[j].seq);
    }
    for (const Beam& b : beams) session.remove(b.seq);
    base = nb;
    batch.clear();
    for (const Beam& b : next)
      batch.add(b.tokens.back(), static_cast<int64_t>(prompt.size() + b.tokens.size()) - 1, b.seq,
                true);
    const auto out = session.decode(batch);
    logits.assign(out.begin(), out.end());
    beams = std::move(next);
  }
  for (const Beam& b : beams) hyps.add(b.tokens, b.sum, false);  // transformers' finalize
  std::sort(hyps.items.begin(), hyps.items.end(),
            [](const auto& a, const auto& b) { return a.score > b.score; });
  for (size_t i = 0; i < hyps.items.size() && i < static_cast<size_t>(cfg.num_return_sequences);
       ++i) {
    Sequence s;
    s.tokens = hyps.items[i].tokens;
    s.score = hyps.items[i].score;
    s.stop = hyps.items[i].eos ? StopReason::eos : StopReason::max_tokens;
    TextStream ts(cfg.stop_strings);
    for (int32_t id : s.tokens) {
      ts.push(piece(tok, id, eos));
      if (ts.stopped()) {
        s.stop = StopReason::stop_string;
        break;
      }
    }
    ts.flush();
    s.text = ts.text();
    r.generated_tokens += static_cast<int64_t>(s.tokens.size());
    r.sequences.push_back(std::move(s));
  }
  r.generation_seconds = since(t0);
  return r;
}

}  // namespace

Result generate(infer::Session& session, std::span<const int32_t> prompt,
                const GenerationConfig& cfg, const text::Tokenizer* tok,
                const StreamCallback& on_token) {
  cfg.validate();
  check_prompt(session, prompt);
  for (int32_t id : prompt)
    if (id < 0 || id >= session.vocab_size())
      fail<IndexError>("generate: prompt token ", id, " is outside the vocabulary of ",
                       session.vocab_size());
  const int32_t need = cfg.num_beams > 1 ? 2 * cfg.num_beams : cfg.num_return_sequences;
  if (session.max_sequences() < need)
    fail<ValueError>(
        "generate: ", cfg.num_beams > 1 ? "beam search with num_beams " : "num_return_sequences ",
        cfg.num_beams > 1 ? cfg.num_beams : cfg.num_return_sequences,
        " needs a session with max_sequences >= ", need, " (it has ", session.max_sequences(), ")");
  if (cfg.num_beams > 1) return beam_search(session, prompt, cfg, tok);
  return sample_loop(session, prompt, cfg, tok, on_token);
}

Result generate(infer::Session& session, std::string_view prompt, const GenerationConfig& cfg,
                const StreamCallback& on_token) {
  const text::Tokenizer& tok = session.model().tokenizer();
  const std::vector<int32_t> ids = tok.encode_with_special(prompt);
  return generate(session, ids, cfg, &tok, on_token);
}

}  // namespace scholar::generate
