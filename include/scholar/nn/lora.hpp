// scholar/nn/lora.hpp: LoRA adapters on a model's linear layers (Hu et al. 2021), as PEFT does it.
//
// apply_lora() walks a model's named modules, gives every Linear that the config targets an
// adapter (nn::Linear::add_lora: A drawn as PEFT draws it, B zero, so the model's output is
// unchanged at step 0) and freezes everything else, so only the adapters get gradients and
// optimizer state. Parameter names are the base layer's plus ".lora_A.weight" / ".lora_B.weight":
// prefixed with "base_model.model." they are exactly the keys of PEFT's adapter_model.safetensors
// (finetune/adapter.hpp reads and writes those files).
//
//   nn::LoraConfig lc;                        // r 8, lora_alpha 8, the family's default targets
//   lc.target_modules = {"c_attn", "c_proj", "c_fc"};
//   nn::LoraSummary s = nn::apply_lora(model, lc);
//   std::printf("%s\n", s.str().c_str());     // "LoRA on 18 layers (scale 2): 147.5k trainable
//   ..."
//   ... train ...
//   nn::merge_lora(model);                    // fold the adapters into the weights
//
// Thread-safety: as Module (apply, merge and unmerge change the model; no forward may run).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scholar/io/json.hpp"
#include "scholar/nn/module.hpp"

namespace scholar::nn {

class TransformerLM;
struct TransformerConfig;

/// The LoRA configuration, with PEFT's field names and defaults (peft.LoraConfig).
struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8.0;
  double lora_dropout = 0.0;
  /// Which Linear layers get an adapter, as PEFT's list form: a layer is targeted when its full
  /// module name equals an entry or ends in "." + the entry ("c_attn" targets
  /// "transformer.h.0.attn.c_attn"). {"all-linear"}: every Linear except the output head. Empty
  /// (and target_regex empty): the family's default, as PEFT's (GPT-2: c_attn; Llama and Qwen2:
  /// q_proj, v_proj).
  std::vector<std::string> target_modules;
  /// Or PEFT's string form: an ECMAScript regular expression matched against whole module names.
  std::string target_regex;
  /// Rank-stabilized LoRA: scale lora_alpha / sqrt(r) instead of lora_alpha / r.
  bool use_rslora = false;
  /// Which biases train: "none", "all" (every bias in the model), "lora_only" (those of adapted
  /// layers). Trained biases are saved with the adapter, as PEFT does.
  std::string bias = "none";
  /// Seed of A's initialization; dropout masks use seeds derived from it.
  uint64_t seed = 0;

  /// The branch's factor: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
  double scaling() const;
  /// Throws ValueError naming the first bad field (r < 1, lora_alpha <= 0, dropout outside [0, 1),
  /// an unknown bias mode, an invalid regex, both target forms set).
  void validate() const;
};

/// What apply_lora did.
struct LoraSummary {
  std::vector<std::string> layers;   ///< the adapted layers' module names
  int64_t adapter_parameters = 0;    ///< scalars in A and B
  int64_t trainable_parameters = 0;  ///< adapters plus any trained biases
  int64_t total_parameters = 0;      ///< the whole model, adapters included
  double lora_scaling = 0;           ///< the branch's factor
  /// trainable / total.
  double trainable_share() const {
    return total_parameters ? static_cast<double>(trainable_parameters) / total_parameters : 0.0;
  }
  /// Bytes of gradients and AdamW moments (12 per trainable value) that freezing the base saves
  /// against training every parameter.
  int64_t training_bytes_saved() const { return (total_parameters - trainable_parameters) * 12; }
  /// "LoRA on 12 layers (scale 2): 98.3k trainable of 10.9M parameters (0.90%); 130 MB of
  /// gradients and AdamW state saved"
  std::string str() const;
};

/// The module-name suffixes targeted by default for a family (PEFT's
/// TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING): {"c_attn"} for GPT-2, {"q_proj",
/// "v_proj"} for Llama, Mistral and Qwen2.
std::vector<std::string> default_lora_targets(const TransformerConfig& cfg);

/// The Linear layers `config` targets in `model` (module names, in module order). ValueError if
/// none matches, naming the patterns and a few layer names.
std::vector<std::string> lora_targets(Module& model, const LoraConfig& config,
                                      const std::vector<std::string>& family_default = {});

/// Adds adapters to the targeted layers and freezes every other parameter (biases train as
/// config.bias says). For a TransformerLM an empty target list means the family's default. Errors:
/// ValueError for a bad config, a target list that matches no Linear, or a model that already has
/// adapters; ValueError for a rank larger than a targeted layer.
LoraSummary apply_lora(Module& model, const LoraConfig& config);
LoraSummary apply_lora(TransformerLM& model, const LoraConfig& config);

/// Every Linear in `model` that has an adapter, with its module name.
std::vector<std::pair<std::string, Linear*>> lora_layers(Module& model);
std::vector<std::pair<std::string, const Linear*>> lora_layers(const Module& model);

/// Merges every adapter into its weights (forward then skips the branches) / takes them out again.
/// Returns the number of layers changed; layers already in the asked state are left alone.
int64_t merge_lora(Module& model);
int64_t unmerge_lora(Module& model);
/// Removes every adapter (unmerged first if merged). Returns the number of layers changed.
int64_t remove_lora(Module& model);

/// Quantizes the frozen weights of the Linear layers whose module names match `pattern` (an
/// ECMAScript regex over whole names; "" means every Linear except the output head) to `type`
/// (Q8_0, Q4_0, f16, bf16): the QLoRA base. Layers whose weight still trains are an error (freeze
/// or apply_lora first). The freed f32 weights are returned to the system (the tensor storage
/// cache is emptied). Returns the bytes the weights take afterwards; ValueError if nothing matches.
int64_t quantize_linears(Module& model, WeightType type, const std::string& pattern = "");
/// The same for every Embedding (token and position tables; a tied output head then multiplies by
/// the compact table). Returns the bytes the tables take afterwards; ValueError if one still trains
/// or there is none.
int64_t quantize_embeddings(Module& model, WeightType type);

}  // namespace scholar::nn
