// Opening a GGUF file with a large vocabulary: time and heap held by the parsed metadata.
//   gguf_open write FILE [--vocab 151936]   writes a file shaped like a Qwen2 tokenizer's metadata
//                                            (tokens, token types, merges) and one small tensor
//   gguf_open open FILE [--reps 9]          opens it --reps times; prints one JSON line with the
//                                            median milliseconds and the heap bytes the open file
//                                            holds (glibc's mallinfo2, allocated and not freed)
// bench/compare/gguf_open.sh builds this against this tree and an earlier commit and runs them
// alternately.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "scholar/io/gguf.hpp"

using namespace scholar;

namespace {

size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Byte-level BPE-looking tokens: every one distinct, 1 to 12 bytes, some with the G-dot prefix.
std::string token(size_t i) {
  static const char kAlpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s = i % 3 == 0 ? "\xc4\xa0" : "";
  size_t x = i;
  do {
    s += kAlpha[x % 62];
    x /= 62;
  } while (x > 0);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s write|open FILE [--vocab N] [--reps N]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1], path = argv[2];
  size_t vocab = 151936;
  int reps = 9;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--vocab")) vocab = std::strtoul(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  if (mode == "write") {
    std::vector<std::string> tokens, merges;
    std::vector<int32_t> types(vocab, 1);
    for (size_t i = 0; i < vocab; ++i) tokens.push_back(token(i));
    for (size_t i = 0; i + 1 < vocab; ++i) merges.push_back(token(i / 2) + " " + token(i + 1));
    io::GgufWriter w;
    w.set("general.architecture", io::GgufValue::string("qwen2"));
    w.set("tokenizer.ggml.model", io::GgufValue::string("gpt2"));
    w.set("tokenizer.ggml.tokens", io::GgufValue::string_array(std::move(tokens)));
    w.set("tokenizer.ggml.token_type", io::GgufValue::i32_array(types));
    w.set("tokenizer.ggml.merges", io::GgufValue::string_array(std::move(merges)));
    const std::vector<float> data(32, 1.0f);
    w.add_tensor("output_norm.weight", WeightType::f32, Shape{32}, data.data(), 128);
    w.save(path);
    return 0;
  }
  std::vector<double> ms;
  size_t held = 0, n_tokens = 0;
  for (int r = 0; r < reps; ++r) {
    const size_t before = heap_in_use();
    const auto t0 = std::chrono::steady_clock::now();
    const io::GgufFile f = io::GgufFile::open(path);
    const auto t1 = std::chrono::steady_clock::now();
    held = heap_in_use() - before;
    n_tokens = f.get("tokenizer.ggml.tokens").as_strings().size();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"tokens\": %zu, \"open_ms\": %.3f, \"heap_mib\": %.2f}\n", n_tokens,
              ms[ms.size() / 2], static_cast<double>(held) / (1 << 20));
  return 0;
}
