// libFuzzer target: JSON text through the parser, then as a Hugging Face config.json, as a
// tokenizer.json and as a PEFT adapter_config.json. Seeds: the .json files under tests/data.
#include <string_view>

#include "scholar/error.hpp"
#include "scholar/finetune/adapter.hpp"
#include "scholar/io/json.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/text/tokenizer.hpp"

using namespace scholar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto j = io::Json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)j.dump();
    try {
      (void)nn::TransformerConfig::from_json(j);
    } catch (const Error&) {
    }
    try {
      (void)finetune::lora_config_from_peft(j);
    } catch (const Error&) {
    }
    try {
      const auto tok = text::BpeTokenizer::from_json(j);
      (void)tok.decode(tok.encode("fuzz \xc3\xa9 text"));
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
