// scholar/finetune/adapter.hpp: LoRA adapters in Hugging Face PEFT's file layout.
//
// A PEFT LoRA adapter is a directory of two files (peft/utils/save_and_load.py, PEFT 0.13):
//   adapter_config.json        LoraConfig's fields: "peft_type": "LORA", "r", "lora_alpha",
//                              "target_modules" (a list of names or one regex), "use_rslora",
//                              "bias", "lora_dropout", "fan_in_fan_out", "base_model_name_or_path",
//                              "task_type", and options scholar refuses when set (use_dora,
//                              rank_pattern, alpha_pattern, layers_to_transform, modules_to_save,
//                              layer_replication)
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight  [r, in]
//                              base_model.model.<module>.lora_B.weight  [out, r]
//                              base_model.model.<module>.bias           (bias "lora_only"/"all")
// where <module> is the Hugging Face module name (scholar's nn names are the same), for GPT-2's
// Conv1D layers too (PEFT's fan_in_fan_out keeps A and B in nn.Linear's orientation).
//
//   nn::apply_lora(model, lc);  ... train ...
//   finetune::save_peft_adapter(model, "out/adapter", {.base_model_name_or_path = "gpt2"});
//   // later, on a fresh copy of the same base:
//   finetune::load_peft_adapter(base, "out/adapter");
//
// llama.cpp reads LoRA adapters as GGUF files (convert_lora_to_gguf.py): general.type "adapter",
// adapter.type "lora", adapter.lora.alpha (llama.cpp scales by alpha / rank), and tensors
// "<base tensor>.lora_a" [r, in] and "<base tensor>.lora_b" [out, r] under the base's GGUF names,
// with lora_b's query/key rows in llama.cpp's RoPE order for the llama architecture, as the base's.
//
//   finetune::LoraWeights w = finetune::lora_weights(model);        // after training
//   finetune::save_lora_gguf(w, model.config(), "adapter.gguf");    // llama-cli --lora
//   adapter.gguf infer::Session s(base);                                         // an infer::Model
//   of the base s.set_adapter(finetune::to_infer_adapter(w, *base));
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "scholar/infer/model.hpp"
#include "scholar/io/json.hpp"
#include "scholar/nn/lora.hpp"
#include "scholar/nn/transformer.hpp"

namespace scholar::finetune {

/// What save_peft_adapter writes besides the tensors.
struct PeftSaveOptions {
  std::string base_model_name_or_path;  ///< the base's Hugging Face id or path (informative)
  std::string task_type = "CAUSAL_LM";
};

/// An adapter read from disk: its config and tensors, names as in the file.
struct PeftAdapter {
  nn::LoraConfig config;
  std::string base_model_name_or_path;
  bool fan_in_fan_out = false;
  std::vector<std::pair<std::string, Tensor<float>>> tensors;
};

/// adapter_config.json's contents for `config` (target_regex as the string form, otherwise the
/// list).
io::Json peft_config_json(const nn::LoraConfig& config, const PeftSaveOptions& options = {},
                          bool fan_in_fan_out = false);
/// The LoraConfig in an adapter_config.json. FormatError naming the field for a peft_type other
/// than LORA, a missing r/lora_alpha/target_modules, or an option scholar does not implement
/// (use_dora, a non-empty rank_pattern/alpha_pattern, layers_to_transform, modules_to_save,
/// layer_replication); `source` names the file in messages.
nn::LoraConfig lora_config_from_peft(const io::Json& j, const std::string& source = "adapter");

/// Writes `dir`/adapter_config.json and `dir`/adapter_model.safetensors (each atomically; the
/// directory is created if needed) for the adapters in `model`: every lora_A/lora_B and every
/// bias that trains. The config is read back from the layers (rank, alpha, dropout, rsLoRA must be
/// the same in all: PEFT's per-layer patterns are not supported); target_modules lists the adapted
/// layers' last name parts when those pick out exactly the adapted layers, else their full
/// names. ValueError if the model has no adapters.
void save_peft_adapter(const nn::Module& model, const std::string& dir,
                       const PeftSaveOptions& options = {});

/// Reads an adapter directory (or the path of its adapter_model.safetensors). FormatError for a
/// missing or unreadable file, a bad config (lora_config_from_peft), or a tensor key without the
/// "base_model.model." prefix.
PeftAdapter read_peft_adapter(const std::string& path);

/// Gives `model` the adapter at `path`: apply_lora with its config, then its tensors. Everything
/// is checked before the model changes: an adapter for another base (a tensor naming a layer the
/// model lacks, or a shape that does not fit, or an adapted layer with no tensors) is a
/// FormatError/ShapeError naming the tensor. Returns what apply_lora reports.
nn::LoraSummary load_peft_adapter(nn::TransformerLM& model, const std::string& path);

/// An adapter's matrices by Hugging Face module name, in PEFT's orientation (A [r, in], B [out, r],
/// query/key rows in Hugging Face's RoPE order), with its alpha: what PEFT files, llama.cpp LoRA
/// GGUF files and trained models have in common. A layer's rank is its A's rows.
struct LoraWeights {
  struct Layer {
    std::string module;  ///< "model.layers.0.self_attn.q_proj"
    Tensor<float> a, b;
    int64_t rank() const { return a.size(0); }
  };
  std::vector<Layer> layers;
  double alpha = 8.0;
  bool rslora = false;
  /// Trained biases by parameter name (PEFT's bias "lora_only"/"all"): not a low-rank update, so
  /// llama.cpp's format and unmerged inference cannot carry them.
  std::vector<std::pair<std::string, Tensor<float>>> biases;
  /// The factor of a layer: alpha / rank, or alpha / sqrt(rank) with rslora.
  double scale(const Layer& l) const;
};

/// The adapters of a model (after nn::apply_lora and training; merged ones are read as they are).
/// ValueError if it has none.
LoraWeights lora_weights(const nn::Module& model);
/// The adapter read from PEFT files.
LoraWeights lora_weights(const PeftAdapter& adapter);

/// Writes a llama.cpp LoRA GGUF file for a base of config `base` (atomically). rsLoRA's scale is
/// kept by writing alpha * sqrt(r) (llama.cpp divides by r). ValueError for trained biases or
/// layers of different ranks under rsLoRA; FormatError for a module the base's architecture table
/// does not name.
void save_lora_gguf(const LoraWeights& weights, const nn::TransformerConfig& base,
                    const std::string& path);
/// Reads a llama.cpp LoRA GGUF file for a base of config `base`. FormatError naming the file and
/// the key or tensor for another general.type or adapter.type, another architecture, a tensor
/// without its pair, a name the base does not have, or shapes that disagree.
LoraWeights read_lora_gguf(const std::string& path, const nn::TransformerConfig& base);
/// A PEFT directory (or its adapter_model.safetensors) or a .gguf LoRA file.
LoraWeights read_lora(const std::string& path, const nn::TransformerConfig& base);

/// The adapter as an inference model applies it unmerged (Session::set_adapters) or merges it
/// (Model::merged): updates by architecture role and layer, with B's query/key rows in the model's
/// own RoPE order. ValueError for trained biases, FormatError for a module the model lacks,
/// ShapeError for matrices that do not fit it.
std::shared_ptr<infer::Adapter> to_infer_adapter(const LoraWeights& weights,
                                                 const infer::Model& model);

}  // namespace scholar::finetune
