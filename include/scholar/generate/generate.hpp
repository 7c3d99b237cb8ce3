// scholar/generate/generate.hpp: decoding — sampling chains, greedy, beam search, streaming.
//
// A Sampler is a chain of small logits processors with an explicit order, ending in a draw:
//
// clang-format off
//   generate::GenerationConfig cfg;
//   cfg.temperature = 0.8f;  cfg.top_k = 40;  cfg.top_p = 0.95f;  cfg.seed = 7;
//   generate::Sampler s(cfg);        // transformers' order: penalties, temperature, top-k, ...
//   std::puts(s.describe().c_str()); // "temperature(0.8) -> top_k(40) -> top_p(0.95) -> dist(seed 7)"
// clang-format on
//
// generate() runs a whole generation on an infer::Session and streams text pieces that are always
// complete UTF-8:
//
//   auto model = infer::Model::load("model.gguf");
//   infer::Session session(model);
//   auto result = generate::generate(session, "Once upon a time", cfg,
//                                    [](const generate::StreamEvent& e) {
//                                      std::fwrite(e.text.data(), 1, e.text.size(), stdout);
//                                      return true;  // false stops
//                                    });
//
// Temperature 0 is greedy. num_beams > 1 runs beam search (hypotheses scored by total
// log-probability / generated length ^ length_penalty, as in transformers), using KV-cache sequence
// copies for the beams' shared prefixes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scholar/infer/model.hpp"
#include "scholar/tensor/random.hpp"

namespace scholar::generate {

/// When beam search stops (transformers' early_stopping).
enum class EarlyStopping : uint8_t {
  heuristic,  ///< False in transformers: stop when no live beam can beat the worst kept hypothesis
  on_enough,  ///< True: stop as soon as num_beams hypotheses are finished
  never,      ///< "never": stop only when the best possible score cannot improve (or at the limit)
};

/// Where temperature goes in the sampling chain.
enum class ChainOrder : uint8_t {
  transformers,  ///< penalties, logit bias, no-repeat-ngram, temperature, top-k, top-p, min-p,
                 ///< typical
  llama_cpp,  ///< penalties, logit bias, no-repeat-ngram, top-k, typical, top-p, min-p, temperature
};

/// Every knob of a generation. Defaults: sampling at temperature 1 with no filters.
struct GenerationConfig {
  int64_t max_new_tokens = 128;
  float temperature = 1.0f;          ///< 0: greedy
  int32_t top_k = 0;                 ///< 0: off
  float top_p = 1.0f;                ///< in (0, 1]; 1: off
  float min_p = 0.0f;                ///< in [0, 1]; 0: off
  float typical_p = 1.0f;            ///< in (0, 1]; 1: off
  float repetition_penalty = 1.0f;   ///< > 0; 1: off (divides positive logits, multiplies negative)
  float frequency_penalty = 0.0f;    ///< subtracted once per earlier occurrence
  float presence_penalty = 0.0f;     ///< subtracted once if the token occurred
  int64_t penalty_last_n = 64;       ///< window of tokens the penalties look at; -1: all
  int32_t no_repeat_ngram_size = 0;  ///< 0: off
  std::vector<std::pair<int32_t, float>> logit_bias;  ///< added to those tokens' logits
  uint64_t seed = 0;
  std::vector<std::string> stop_strings;  ///< generation ends before the first one that appears
  std::vector<int32_t> eos_token_ids;     ///< empty: the model's EOS id, if known
  bool ignore_eos = false;
  int32_t num_beams = 1;
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::heuristic;
  int32_t num_return_sequences = 1;
  int32_t top_logprobs = 0;  ///< report this many alternatives per token (with their log-probs)
  ChainOrder order = ChainOrder::transformers;

  /// ValueError naming the first bad field (top_p outside (0, 1], negative temperature, ...).
  void validate() const;
  /// transformers' defaults for sampling (temperature 1, top_k 50, transformers order).
  static GenerationConfig transformers_defaults();
  /// llama.cpp's defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, penalty window 64,
  /// llama.cpp order).
  static GenerationConfig llama_cpp_defaults();
};

/// The tokens still in play at one step, with their logits.
struct Candidates {
  struct Item {
    int32_t id;
    float logit;
  };
  std::vector<Item> items;
  bool sorted = false;    ///< items in descending logit order
  bool dense = true;      ///< items[i].id == i for every i (nothing removed or reordered yet)
  int64_t selected = -1;  ///< index in items of the token the final draw chose; -1 before it

  /// Resets to all V tokens with these logits.
  void assign(std::span<const float> logits);
  /// Sorts by descending logit (stable on ties: lower id first).
  void sort();
  /// Softmax of the logits, in item order.
  void probabilities(std::vector<double>& out) const;
  /// The item for token `id`, or nullptr if it was removed.
  Item* find(int32_t id);
  const Item* find(int32_t id) const { return const_cast<Candidates*>(this)->find(id); }
};

/// One step of a sampling chain. A processor that depends on the tokens so far (penalties,
/// no-repeat-ngram) keeps its own state, updated one token at a time by accept(), as llama.cpp's
/// samplers do: a step costs the same after 10 tokens as after 10,000.
///
/// Thread-safety: a processor is used by one generation at a time; clone() for another.
class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  /// "top_k(40)": name and parameters, for describe().
  virtual std::string describe() const = 0;
  /// Changes logits or removes candidates (given the tokens accepted so far). The last processor
  /// of a Sampler's chain sets c.selected.
  virtual void apply(Candidates& c) = 0;
  /// Takes note of the next token of the history (a prompt token or a generated one).
  virtual void accept(int32_t token) { (void)token; }
  /// A copy with the same parameters and state.
  virtual std::unique_ptr<LogitsProcessor> clone() const = 0;
  /// Forgets the accepted tokens (a draw restarts its generator from the seed).
  virtual void reset() {}
};

/// The built-in processors.
std::unique_ptr<LogitsProcessor> repetition_penalty(float penalty, int64_t last_n);
std::unique_ptr<LogitsProcessor> frequency_presence_penalty(float frequency, float presence,
                                                            int64_t last_n);
std::unique_ptr<LogitsProcessor> no_repeat_ngram(int32_t n);
std::unique_ptr<LogitsProcessor> logit_bias(std::vector<std::pair<int32_t, float>> bias);
/// Divides logits by t; t == 0 keeps only the best token (greedy).
std::unique_ptr<LogitsProcessor> temperature(float t);
std::unique_ptr<LogitsProcessor> top_k(int32_t k);
/// Keeps the smallest set of best tokens whose probability reaches p.
std::unique_ptr<LogitsProcessor> top_p(float p);
/// Keeps the tokens whose probability is at least p times the best one's.
std::unique_ptr<LogitsProcessor> min_p(float p);
/// Locally typical sampling (Meister et al.), as transformers' TypicalLogitsWarper.
std::unique_ptr<LogitsProcessor> typical_p(float p);
/// The final draw: one token at random from the softmax of what remains (c.selected).
std::unique_ptr<LogitsProcessor> dist(uint64_t seed);

/// A chain of processors whose last element is the random draw (dist).
///
///   Sampler s(cfg);
///   for (int32_t t : prompt) s.accept(t);
///   int32_t id = s.sample(logits);  s.accept(id);  ...
///
/// Thread-safety: one thread at a time; clone (copy) for another thread.
class Sampler {
 public:
  /// An empty chain (plain sampling from the softmax) with this seed.
  explicit Sampler(uint64_t seed = 0);
  /// The chain a config asks for, in its order (processors that would do nothing are left out).
  explicit Sampler(const GenerationConfig& cfg);
  Sampler(const Sampler& o);
  Sampler& operator=(const Sampler& o);
  Sampler(Sampler&&) noexcept = default;
  Sampler& operator=(Sampler&&) noexcept = default;

  /// Inserts a processor before the final draw.
  void add(std::unique_ptr<LogitsProcessor> p);
  /// "repetition_penalty(1.1) -> temperature(0.8) -> top_k(40) -> dist(seed 7)"
  std::string describe() const;
  /// Feeds the next token of the history to every processor.
  void accept(int32_t token);
  /// Runs the chain on logits [V] (given the accepted tokens) and draws a token. It does not
  /// accept it: call accept() with the token the sequence continues with.
  int32_t sample(std::span<const float> logits);
  /// The same for a caller that keeps the whole history instead: tokens beyond those accepted so
  /// far are accepted first (if `history` does not continue them, the processors' state is
  /// rebuilt from it). Costs a comparison with the accepted tokens per call.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  /// The candidates after the chain, before the draw (for tests and for inspecting a step).
  const Candidates& candidates() const noexcept { return cand_; }
  /// Runs the chain without the draw, leaving the result in candidates().
  void process(std::span<const float> logits);
  void process(std::span<const float> logits, std::span<const int32_t> history);
  /// Back to the state right after construction (no tokens accepted, the generator restarts from
  /// the seed).
  void reset();
  /// The tokens accepted since construction or reset().
  std::span<const int32_t> accepted() const noexcept { return accepted_; }

 private:
  void sync(std::span<const int32_t> history);
  std::vector<std::unique_ptr<LogitsProcessor>> chain_;  // ..., dist
  Candidates cand_;
  std::vector<int32_t> accepted_;
  bool greedy_only_ = false;  // the chain is greedy -> dist: sample() takes the argmax directly
};

/// Why a sequence ended.
enum class StopReason : uint8_t { max_tokens, eos, stop_string, context_full, callback };
/// "max_tokens", "eos", ...
std::string_view stop_reason_name(StopReason r);

/// One generated token.
struct TokenInfo {
  int32_t id = 0;
  float logprob = 0;  ///< log-probability under the model (log-softmax of the raw logits)
  std::vector<std::pair<int32_t, float>> top;  ///< the top_logprobs best (id, logprob)
};

/// One finished sequence.
struct Sequence {
  std::vector<int32_t> tokens;  ///< generated tokens (EOS included if it ended there)
  std::string text;             ///< their text (stop string and what follows removed)
  std::vector<TokenInfo> info;
  StopReason stop = StopReason::max_tokens;
  double score = 0;  ///< beam search: the hypothesis score; sampling: sum of log-probs
};

/// What generate() returns.
struct Result {
  std::vector<Sequence> sequences;  ///< best first for beam search
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  ///< summed over sequences
  double prompt_seconds = 0, generation_seconds = 0;
};

/// Passed to the streaming callback.
struct StreamEvent {
  int32_t sequence = 0;    ///< which of num_return_sequences
  std::string_view text;   ///< complete UTF-8 (may be empty while a character is incomplete)
  const TokenInfo* token;  ///< the token just generated (nullptr for the final flush)
};
/// Return false to stop generating.
using StreamCallback = std::function<bool(const StreamEvent&)>;

/// Generates from a text prompt with the session's model tokenizer. The session's cache is cleared
/// first. Streaming is for sampling and greedy; beam search reports only the final sequences.
Result generate(infer::Session& session, std::string_view prompt, const GenerationConfig& cfg,
                const StreamCallback& on_token = {});
/// The same from token ids; tok (may be null) turns tokens into text and finds stop strings.
Result generate(infer::Session& session, std::span<const int32_t> prompt,
                const GenerationConfig& cfg, const text::Tokenizer* tok,
                const StreamCallback& on_token = {});

/// Splits a byte stream into pieces that end on whole UTF-8 characters, and holds back text that
/// might be the start of a stop string. Exposed for tests.
class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop_strings = {});
  /// Adds bytes; returns what can be shown now. Sets stopped() if a stop string completed (the
  /// text before it is returned; the rest is dropped).
  std::string push(std::string_view bytes);
  /// Everything still held back (at the end of generation); invalid trailing bytes pass through.
  std::string flush();
  bool stopped() const noexcept { return stopped_; }
  /// All text shown so far.
  const std::string& text() const noexcept { return shown_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_, shown_;
  bool stopped_ = false;
};

}  // namespace scholar::generate
