// LoRA over a model's linear layers: targeting, freezing, merging, and the quantized base.
#include "scholar/nn/lora.hpp"

#include <cmath>
#include <cstdio>
#include <regex>

#include "scholar/error.hpp"
#include "scholar/nn/transformer.hpp"

namespace scholar::nn {

namespace {

// The modules of an adapter itself (never targets).
bool inside_adapter(const std::string& name) {
  return name.ends_with(".lora_A") || name.ends_with(".lora_B") || name == "lora_A" ||
         name == "lora_B";
}

std::string join(const std::vector<std::string>& v, size_t most = 8) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < most; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > most) s += ", ...";
  return s;
}

std::string human(int64_t n) {
  char buf[32];
  if (n >= 1000000)
    std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
  else if (n >= 10000)
    std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

}  // namespace

double LoraConfig::scaling() const {
  return LoraSpec{r, lora_alpha, lora_dropout, use_rslora}.scale();
}

void LoraConfig::validate() const {
  if (r < 1) fail<ValueError>("LoraConfig: r must be >= 1, got ", r);
  if (!(lora_alpha > 0.0)) fail<ValueError>("LoraConfig: lora_alpha must be > 0, got ", lora_alpha);
  if (!(lora_dropout >= 0.0 && lora_dropout < 1.0))
    fail<ValueError>("LoraConfig: lora_dropout must be in [0, 1), got ", lora_dropout);
  if (bias != "none" && bias != "all" && bias != "lora_only")
    fail<ValueError>("LoraConfig: bias must be \"none\", \"all\" or \"lora_only\", got \"", bias,
                     "\"");
  if (!target_modules.empty() && !target_regex.empty())
    fail<ValueError>("LoraConfig: set target_modules or target_regex, not both");
  if (!target_regex.empty()) {
    try {
      std::regex re(target_regex, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail<ValueError>("LoraConfig: target_regex '", target_regex,
                       "' is not a valid regular expression (", e.what(), ")");
    }
  }
  for (const auto& t : target_modules)
    if (t.empty()) fail<ValueError>("LoraConfig: target_modules has an empty name");
}

std::string LoraSummary::str() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "LoRA on %zu layers (scale %.4g): %s trainable of %s parameters (%.2f%%); %.1f MB "
                "of gradients and AdamW state saved",
                layers.size(), lora_scaling, human(trainable_parameters).c_str(),
                human(total_parameters).c_str(), 100.0 * trainable_share(),
                static_cast<double>(training_bytes_saved()) / 1e6);
  return buf;
}

std::vector<std::string> default_lora_targets(const TransformerConfig& cfg) {
  if (cfg.family == TransformerConfig::Family::gpt2) return {"c_attn"};
  return {"q_proj", "v_proj"};
}

std::vector<std::string> lora_targets(Module& model, const LoraConfig& config,
                                      const std::vector<std::string>& family_default) {
  config.validate();
  std::vector<std::string> names = config.target_modules;
  if (names.empty() && config.target_regex.empty()) names = family_default;
  if (names.empty() && config.target_regex.empty())
    fail<ValueError>("LoRA: no target_modules given and no family default for this model");
  const bool all_linear = names.size() == 1 && names[0] == "all-linear";
  std::regex re;
  if (!config.target_regex.empty()) re = std::regex(config.target_regex, std::regex::ECMAScript);

  std::vector<std::string> out, linears;
  for (auto& [name, m] : model.named_modules()) {
    if (name.empty() || inside_adapter(name)) continue;
    const bool is_linear = dynamic_cast<Linear*>(m) != nullptr;
    if (is_linear) linears.push_back(name);
    bool hit = false;
    if (all_linear)
      hit = is_linear && name != "lm_head";
    else if (!config.target_regex.empty())
      hit = std::regex_match(name, re);
    else
      for (const auto& t : names) hit = hit || name == t || name.ends_with("." + t);
    if (!hit) continue;
    if (!is_linear) {
      if (!config.target_regex.empty()) continue;  // a regex may match containers on the way
      fail<ValueError>("LoRA: target module '", name,
                       "' is not a linear layer (LoRA adapts Linear layers only)");
    }
    out.push_back(name);
  }
  if (out.empty())
    fail<ValueError>(
        "LoRA: target_modules ",
        config.target_regex.empty() ? "[" + join(names) + "]" : "'" + config.target_regex + "'",
        " match no linear layer (the model's look like ", join(linears, 4), ")");
  return out;
}

namespace {

LoraSummary apply(Module& model, const LoraConfig& config,
                  const std::vector<std::string>& family_default) {
  config.validate();
  if (!lora_layers(model).empty())
    fail<ValueError>("apply_lora: the model already has adapters (remove_lora first)");
  const auto targets = lora_targets(model, config, family_default);
  std::vector<std::pair<std::string, Linear*>> layers;
  for (auto& [name, m] : model.named_modules())
    for (const auto& t : targets)
      if (name == t) layers.emplace_back(name, dynamic_cast<Linear*>(m));
  // Check every rank before changing anything.
  for (const auto& [name, l] : layers)
    if (config.r > std::min(l->in_features(), l->out_features()))
      fail<ValueError>("apply_lora: r = ", config.r, " is larger than layer '", name, "' (",
                       l->in_features(), " -> ", l->out_features(), ")");

  model.freeze(".*");
  Generator gen(config.seed);
  const LoraSpec spec{config.r, config.lora_alpha, config.lora_dropout, config.use_rslora};
  uint64_t i = 0;
  for (auto& [name, l] : layers)
    l->add_lora(spec, gen, config.seed * 0x9E3779B97F4A7C15ull + (++i));
  if (config.bias == "all") {
    for (auto& p : model.named_parameters())
      if (p.name.ends_with(".bias") || p.name == "bias") p.var.set_requires_grad(true);
  } else if (config.bias == "lora_only") {
    for (auto& [name, l] : layers)
      if (Var b = l->bias(); b.defined()) b.set_requires_grad(true);
  }

  LoraSummary s;
  s.lora_scaling = config.scaling();
  for (auto& [name, l] : layers) {
    s.layers.push_back(name);
    s.adapter_parameters += l->lora_a().value().numel() + l->lora_b().value().numel();
  }
  s.trainable_parameters = model.trainable_parameter_count();
  s.total_parameters = model.parameter_count();
  return s;
}

}  // namespace

LoraSummary apply_lora(Module& model, const LoraConfig& config) {
  return apply(model, config, {});
}

LoraSummary apply_lora(TransformerLM& model, const LoraConfig& config) {
  return apply(model, config, default_lora_targets(model.config()));
}

std::vector<std::pair<std::string, Linear*>> lora_layers(Module& model) {
  std::vector<std::pair<std::string, Linear*>> out;
  for (auto& [name, m] : model.named_modules())
    if (auto* l = dynamic_cast<Linear*>(m); l && l->has_lora()) out.emplace_back(name, l);
  return out;
}

std::vector<std::pair<std::string, const Linear*>> lora_layers(const Module& model) {
  std::vector<std::pair<std::string, const Linear*>> out;
  for (auto& [name, l] : lora_layers(const_cast<Module&>(model))) out.emplace_back(name, l);
  return out;
}

int64_t merge_lora(Module& model) {
  int64_t n = 0;
  for (auto& [name, l] : lora_layers(model))
    if (!l->merged()) {
      l->merge();
      ++n;
    }
  return n;
}

int64_t unmerge_lora(Module& model) {
  int64_t n = 0;
  for (auto& [name, l] : lora_layers(model))
    if (l->merged()) {
      l->unmerge();
      ++n;
    }
  return n;
}

int64_t remove_lora(Module& model) {
  int64_t n = 0;
  for (auto& [name, l] : lora_layers(model)) {
    l->remove_lora();
    ++n;
  }
  return n;
}

int64_t quantize_linears(Module& model, WeightType type, const std::string& pattern) {
  std::regex re;
  if (!pattern.empty()) {
    try {
      re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail<ValueError>("quantize_linears: '", pattern, "' is not a valid regular expression (",
                       e.what(), ")");
    }
  }
  std::vector<std::pair<std::string, Linear*>> layers;
  for (auto& [name, m] : model.named_modules()) {
    auto* l = dynamic_cast<Linear*>(m);
    if (!l || name.empty() || inside_adapter(name)) continue;
    if (pattern.empty() ? name == "lm_head" : !std::regex_match(name, re)) continue;
    layers.emplace_back(name, l);
  }
  if (layers.empty()) fail<ValueError>("quantize_linears: no linear layer matches '", pattern, "'");
  for (const auto& [name, l] : layers)
    if (!l->quantized() && l->weight().requires_grad())
      fail<ValueError>("quantize_linears: the weight of '", name,
                       "' is trainable; a quantized weight is frozen (freeze it or apply_lora "
                       "first)");
  int64_t bytes = 0;
  for (auto& [name, l] : layers) {
    if (!l->quantized()) l->quantize(type);
    bytes += static_cast<int64_t>(l->compact_weight()->bytes.size());
  }
  // The f32 weights just freed would otherwise wait in the tensor storage cache for tensors of
  // their sizes, which training over a quantized base never asks for: give the memory back.
  empty_storage_cache();
  return bytes;
}

int64_t quantize_embeddings(Module& model, WeightType type) {
  std::vector<std::pair<std::string, Embedding*>> tables;
  for (auto& [name, m] : model.named_modules())
    if (auto* e = dynamic_cast<Embedding*>(m)) tables.emplace_back(name, e);
  if (tables.empty()) fail<ValueError>("quantize_embeddings: the model has no embedding table");
  for (const auto& [name, e] : tables)
    if (!e->quantized() && e->weight().requires_grad())
      fail<ValueError>("quantize_embeddings: the table '", name,
                       "' is trainable; a quantized table is frozen");
  int64_t bytes = 0;
  for (auto& [name, e] : tables) {
    if (!e->quantized()) e->quantize(type);
    bytes += static_cast<int64_t>(e->compact_weight()->bytes.size());
  }
  empty_storage_cache();
  return bytes;
}

}  // namespace scholar::nn
