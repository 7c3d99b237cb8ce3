// libFuzzer target: GGUF files through the reader, the model loader (and one decoding step of any
// model that loads) and the LoRA adapter reader (for a GPT-2 and a Llama base). Seeds:
// tests/data/gguf, and the LoRA adapter in tests/data/llama_cpp.
#include <algorithm>

#include "fuzz_common.hpp"
#include "scholar/error.hpp"
#include "scholar/finetune/adapter.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/gguf.hpp"

using namespace scholar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::input_file(data, size, ".gguf");
  try {
    const auto f = io::GgufFile::open(path);
    size_t sum = 0;
    for (const auto& t : f.tensors()) {
      const auto b = f.bytes(t.name);
      if (!b.empty()) sum += b[0] + b[b.size() - 1];  // touch both ends
    }
    for (const auto& [k, v] : f.metadata()) sum += v.to_string().size();
    (void)sum;
  } catch (const Error&) {
    return 0;
  }
  try {
    const auto m = infer::Model::from_gguf(path);
    if (m->arch().n_embd * m->arch().n_layers <= (1 << 16)) {
      infer::Session s(m, {.n_ctx = 4, .max_batch = 2});
      const int32_t ids[2] = {0, static_cast<int32_t>(m->arch().vocab_size - 1)};
      s.prefill(ids);
    }
    if (m->has_tokenizer()) (void)m->tokenizer().encode("fuzz \xc3\xa9 <|endoftext|>");
  } catch (const Error&) {
  }
  // As a LoRA adapter, over bases shaped like the fixtures' (2 layers, width 64, vocabulary 512).
  for (const auto& base : {nn::TransformerConfig::llama(512, 64, 2, 64, 4, 4, 160),
                           nn::TransformerConfig::gpt2(512, 64, 2, 64, 4)}) {
    try {
      const auto w = finetune::read_lora_gguf(path, base);
      size_t layers = 0;
      for (const auto& l : w.layers) layers += static_cast<size_t>(l.rank() > 0);
      (void)layers;
    } catch (const Error&) {
    }
  }
  return 0;
}
