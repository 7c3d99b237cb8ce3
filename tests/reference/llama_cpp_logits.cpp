// Greedy continuation of a token prompt by llama.cpp's C API (the libraries bundled in
// node-llama-cpp@3.21.1), with the top logits at every step. Built and run by
// tests/reference/make_llama_cpp_fixtures.sh:
//   llama_cpp_logits [--lora ADAPTER.gguf] MODEL.gguf N_TOKENS TOP ID...
// Runs llama.cpp with an F32 KV cache and flash attention off, so that attention is computed in
// f32 as scholar computes it (llama.cpp's defaults store K and V as f16 and accumulate flash
// attention in f16). Prints one JSON object: {"greedy": [ids], "top": [[[id, logit]...]...]}, one
// "top" entry per chosen token (the TOP largest logits of the step that chose it, largest first).
// Stops after N_TOKENS tokens or at an end-of-generation token (which is included).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  const char* lora = nullptr;  // a LoRA adapter applied at scale 1
  if (argc > 2 && std::string(argv[1]) == "--lora") {
    lora = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s [--lora ADAPTER.gguf] MODEL.gguf N_TOKENS TOP ID...\n",
                 argv[0]);
    return 2;
  }
  const int n = std::atoi(argv[2]);
  const int top = std::atoi(argv[3]);
  std::vector<llama_token> prompt;
  for (int i = 4; i < argc; ++i) prompt.push_back(std::atoi(argv[i]));

  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  ggml_backend_load_all();
  llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
  if (model == nullptr) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 64;
  cp.n_threads = 1;
  cp.n_threads_batch = 1;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.type_k = GGML_TYPE_F32;
  cp.type_v = GGML_TYPE_F32;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (lora) {
    llama_adapter_lora* adapter = llama_adapter_lora_init(model, lora);
    if (adapter == nullptr) {
      std::fprintf(stderr, "cannot load the LoRA adapter %s\n", lora);
      return 1;
    }
    float scale = 1.0f;
    if (llama_set_adapters_lora(ctx, &adapter, 1, &scale) != 0) {
      std::fprintf(stderr, "cannot apply the LoRA adapter %s\n", lora);
      return 1;
    }
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);

  std::vector<llama_token> greedy;
  std::vector<std::vector<std::pair<int, float>>> tops;
  llama_batch batch = llama_batch_get_one(prompt.data(), static_cast<int32_t>(prompt.size()));
  llama_token next = 0;
  while (static_cast<int>(greedy.size()) < n) {
    if (llama_decode(ctx, batch) != 0) {
      std::fprintf(stderr, "llama_decode failed\n");
      return 1;
    }
    const float* logits = llama_get_logits_ith(ctx, -1);
    std::vector<int> order(static_cast<size_t>(n_vocab));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return logits[a] > logits[b]; });
    std::vector<std::pair<int, float>> step;
    for (int i = 0; i < top; ++i) step.emplace_back(order[i], logits[order[i]]);
    tops.push_back(step);
    next = order[0];
    greedy.push_back(next);
    if (llama_vocab_is_eog(vocab, next)) break;
    batch = llama_batch_get_one(&next, 1);
  }
  std::printf("{\"greedy\": [");
  for (size_t i = 0; i < greedy.size(); ++i) std::printf("%s%d", i ? ", " : "", greedy[i]);
  std::printf("], \"top\": [");
  for (size_t i = 0; i < tops.size(); ++i) {
    std::printf("%s[", i ? ", " : "");
    for (size_t j = 0; j < tops[i].size(); ++j)
      std::printf("%s[%d, %.9g]", j ? ", " : "", tops[i][j].first, tops[i][j].second);
    std::printf("]");
  }
  std::printf("]}\n");
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
