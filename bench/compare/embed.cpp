// Sentence embedding timed in scholar: a random-weight encoder of all-MiniLM-L6-v2's shape (BERT,
// vocabulary 30522, 6 layers x 384, 12 heads, FFN 1536), 32 texts of exactly 128 tokens per call,
// mean pooling and normalization, through rag::SentenceEncoder (tokenization included). The model
// is written once as a Hugging Face directory under --dir and loaded back as f32, f16 or Q8_0.
// Prints one JSON line: sentences/s and seconds per batch. bench/compare/embed.py runs it beside
// the same model in PyTorch.
//   embed_bench [--threads N] [--steps N] [--warmup N] [--type f32|f16|q8_0] [--dir DIR]
//               [--batch-tokens N]   (SentenceEncoderOptions::max_batch_tokens; default 0: its own)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "scholar/nn/encoder.hpp"
#include "scholar/parallel.hpp"
#include "scholar/rag/embedder.hpp"
#include "scholar/system.hpp"
#include "scholar/text/wordpiece.hpp"

using namespace scholar;

int main(int argc, char** argv) {
  int threads = 1, steps = 5, warmup = 2;
  std::string type = "f32", dir = "/tmp/scholar_embed_bench";
  int64_t batch_tokens = 0;  // SentenceEncoderOptions::max_batch_tokens (0: its default)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--threads")
      threads = std::atoi(v.c_str());
    else if (k == "--steps")
      steps = std::atoi(v.c_str());
    else if (k == "--warmup")
      warmup = std::atoi(v.c_str());
    else if (k == "--type")
      type = v;
    else if (k == "--dir")
      dir = v;
    else if (k == "--batch-tokens")
      batch_tokens = std::atoll(v.c_str());
    else {
      std::fprintf(stderr,
                   "usage: %s [--threads N] [--steps N] [--warmup N] [--type T] [--dir D] "
                   "[--batch-tokens N]\n",
                   argv[0]);
      return 2;
    }
  }
  set_num_threads(threads);
  constexpr int64_t V = 30522, T = 128, B = 32;
  // A vocabulary of synthetic words, so that texts of 126 words are 128 tokens.
  std::vector<std::string> vocab = text::WordPieceTokenizer::bert_special_tokens();
  while (static_cast<int64_t>(vocab.size()) < V)
    vocab.push_back(std::string("w").append(std::to_string(vocab.size())));
  text::WordPieceTokenizer tok(vocab, {});
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    nn::Encoder enc(nn::TransformerConfig::bert(V, 512, 6, 384, 12, 1536), 1);
    nn::save_hf_dir(enc, dir, &tok);
  }
  rag::SentenceEncoderOptions o;
  o.batch_size = B;
  o.max_batch_tokens = batch_tokens;
  o.max_length = T;
  o.weight_type = *parse_weight_type(type);
  const auto enc = rag::SentenceEncoder::load(dir, o);
  std::mt19937 rng(1);
  std::vector<std::string> texts(B);
  for (auto& t : texts)
    for (int w = 0; w < T - 2; ++w) {
      t += w ? " w" : "w";
      t += std::to_string(5 + rng() % (V - 5));
    }
  if (static_cast<int64_t>(enc->tokenize(texts[0]).size()) != T) {
    std::fprintf(stderr, "texts are not %lld tokens\n", static_cast<long long>(T));
    return 1;
  }
  for (int i = 0; i < warmup; ++i) enc->embed(texts);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) enc->embed(texts);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"sentences_per_s\": %.2f, \"seconds_per_batch\": %.4f, \"type\": \"%s\", "
      "\"threads\": %d, \"system\": \"%s\"}\n",
      static_cast<double>(B * steps) / s, s / steps, type.c_str(), threads, system_info().c_str());
}
