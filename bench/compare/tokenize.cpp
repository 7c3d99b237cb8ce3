// GPT-2 tokenization speed: encodes a text file with GPT-2's files and prints MB/s as one JSON
// line (median of 5 runs, one thread). bench/compare/tokenizer.py runs it beside npm's tiktoken and
// gpt-3-encoder.
//   tokenize ENCODER_JSON VOCAB_BPE TEXT_FILE
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "scholar/io/file.hpp"
#include "scholar/text/tokenizer.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s ENCODER_JSON VOCAB_BPE TEXT_FILE\n", argv[0]);
    return 2;
  }
  const auto tok = text::BpeTokenizer::from_gpt2_files(argv[1], argv[2]);
  const std::string text = io::read_file(argv[3]);
  std::vector<int32_t> ids;
  std::vector<double> secs;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    ids = tok.encode(text);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  uint32_t hash = 0;  // the same rolling hash as tokenize_npm.js, to check that the ids agree
  for (const int32_t id : ids) hash = hash * 31u + static_cast<uint32_t>(id);
  std::printf(
      "{\"impl\": \"scholar\", \"mb_per_s\": %.2f, \"tokens\": %zu, \"bytes\": %zu, "
      "\"hash\": %u}\n",
      static_cast<double>(text.size()) / secs[secs.size() / 2] / 1e6, ids.size(), text.size(),
      hash);
  return 0;
}
