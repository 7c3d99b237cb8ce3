// The training configurations that the step benchmarks share (train_step, distributed), so that
// their figures describe the same models and batches.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scholar/nn/transformer.hpp"

namespace bench {

struct StepConfig {
  scholar::nn::TransformerConfig model;
  int64_t batch = 0;    ///< rows per step
  int64_t context = 0;  ///< tokens per row
  int64_t vocab = 0;
};

/// small (GPT-2 style, 13.9M, batch 8 x 256), gpt2-small (124M, 4 x 256) or llama (56M, GQA 8/4,
/// SwiGLU 1408, 4 x 512); nothing for another name.
inline std::optional<StepConfig> step_config(const std::string& name) {
  using scholar::nn::TransformerConfig;
  if (name == "small")
    return StepConfig{TransformerConfig::gpt2(8192, 256, 6, 384, 6), 8, 256, 8192};
  if (name == "gpt2-small")
    return StepConfig{TransformerConfig::gpt2(50257, 1024, 12, 768, 12), 4, 256, 50257};
  if (name == "llama")
    return StepConfig{TransformerConfig::llama(32000, 512, 8, 512, 8, 4, 1408), 4, 512, 32000};
  return std::nullopt;
}

}  // namespace bench
