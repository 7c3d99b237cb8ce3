// Sentence embeddings by llama.cpp's C API (the libraries bundled in node-llama-cpp@3.21.1), for
// tests/reference/make_bert_llama_cpp_fixtures.sh:
//   llama_cpp_embed MODEL.gguf TEXT...
// Each text is tokenized by llama.cpp (with its special tokens: [CLS] ... [SEP] for BERT) and run
// as its own sequence with embeddings on and the model's pooling; prints one JSON object:
// {"ids": [[...], ...], "embeddings": [[...], ...]} (pooled, not normalized).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.gguf TEXT...\n", argv[0]);
    return 2;
  }
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  ggml_backend_load_all();
  llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
  if (!model) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_embd = llama_model_n_embd(model);
  std::printf("{\"ids\": [");
  std::string emb_json;
  for (int a = 2; a < argc; ++a) {
    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context* ctx = llama_init_from_model(model, cp);
    const char* text = argv[a];
    std::vector<llama_token> ids(std::strlen(text) + 8);
    int n = llama_tokenize(vocab, text, static_cast<int32_t>(std::strlen(text)), ids.data(),
                           static_cast<int32_t>(ids.size()), true, false);
    if (n < 0) {
      ids.resize(static_cast<size_t>(-n));
      n = llama_tokenize(vocab, text, static_cast<int32_t>(std::strlen(text)), ids.data(),
                         static_cast<int32_t>(ids.size()), true, false);
    }
    ids.resize(static_cast<size_t>(n));
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; ++i) {
      batch.token[i] = ids[static_cast<size_t>(i)];
      batch.pos[i] = i;
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = 0;
      batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    if (llama_encode(ctx, batch) != 0) {
      std::fprintf(stderr, "llama_encode failed\n");
      return 1;
    }
    const float* e = llama_get_embeddings_seq(ctx, 0);
    if (!e) {
      std::fprintf(stderr, "no pooled embedding\n");
      return 1;
    }
    std::printf("%s[", a > 2 ? ", " : "");
    for (int i = 0; i < n; ++i) std::printf("%s%d", i ? ", " : "", ids[static_cast<size_t>(i)]);
    std::printf("]");
    emb_json += a > 2 ? ", [" : "[";
    char buf[32];
    for (int i = 0; i < n_embd; ++i) {
      std::snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", e[i]);
      emb_json += buf;
    }
    emb_json += "]";
    llama_batch_free(batch);
    llama_free(ctx);
  }
  std::printf("], \"embeddings\": [%s]}\n", emb_json.c_str());
  llama_model_free(model);
  return 0;
}
