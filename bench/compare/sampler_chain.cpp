// The cost of a sampling chain per token: llama.cpp's default filters plus every penalty
// (repetition, frequency/presence, no-repeat-3-gram) over a 4096-token window, on a GPT-2-sized
// vocabulary (50,257 logits), with a 4096-token prompt already in the history.
//   sampler_chain [--steps 256] [--reps 5]
// Prints one JSON line: median microseconds per token, for the chain with penalties and for the
// same chain without them. bench/compare/sampler_chain.sh runs it against an earlier commit.
// SCHOLAR_SAMPLER_ACCEPT (set by the script for trees that have it): feed tokens with accept()
// and sample without a history, as generate() does; otherwise pass the history each step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "scholar/generate/generate.hpp"

using namespace scholar;
using namespace scholar::generate;

namespace {

double per_token_us(const GenerationConfig& cfg, const std::vector<float>& logits,
                    const std::vector<int32_t>& prompt, int steps, int reps) {
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    Sampler s(cfg);
    std::vector<int32_t> history = prompt;
#ifdef SCHOLAR_SAMPLER_ACCEPT
    for (int32_t t : prompt) s.accept(t);
#endif
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) {
      // Shift the logits a little each step so that the draws wander like real ones.
      const size_t shift = static_cast<size_t>(i) * 7919 % logits.size();
      std::vector<float> l(logits.size());
      std::rotate_copy(logits.begin(), logits.begin() + static_cast<ptrdiff_t>(shift), logits.end(),
                       l.begin());
#ifdef SCHOLAR_SAMPLER_ACCEPT
      const int32_t id = s.sample(l);
      s.accept(id);
#else
      const int32_t id = s.sample(l, history);
#endif
      history.push_back(id);
    }
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / steps);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 256, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  const int V = 50257, N = 4096;
  Generator g(1);
  std::vector<float> logits(V);
  for (auto& x : logits) x = static_cast<float>(3.0 * g.normal());
  std::vector<int32_t> prompt(N);
  for (auto& t : prompt) t = static_cast<int32_t>(g.next_u64() % 2000);  // a text's repeats
  GenerationConfig plain = GenerationConfig::llama_cpp_defaults();
  plain.seed = 5;
  GenerationConfig pen = plain;
  pen.repetition_penalty = 1.1f;
  pen.frequency_penalty = 0.1f;
  pen.presence_penalty = 0.1f;
  pen.no_repeat_ngram_size = 3;
  pen.penalty_last_n = N;
  const double with = per_token_us(pen, logits, prompt, steps, reps);
  const double without = per_token_us(plain, logits, prompt, steps, reps);
  std::printf(
      "{\"vocab\": %d, \"history\": %d, \"penalties_us\": %.1f, \"no_penalties_us\": %.1f}\n", V, N,
      with, without);
  return 0;
}
