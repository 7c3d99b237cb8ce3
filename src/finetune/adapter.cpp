// PEFT LoRA adapters: adapter_config.json and adapter_model.safetensors.
#include "scholar/finetune/adapter.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/safetensors.hpp"

namespace scholar::finetune {

namespace {

constexpr std::string_view kPrefix = "base_model.model.";

std::string last_part(const std::string& name) {
  const auto dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// Paths: a directory, or the safetensors file inside one.
std::pair<std::string, std::string> adapter_paths(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (fs::is_directory(p))
    return {(p / "adapter_config.json").string(), (p / "adapter_model.safetensors").string()};
  return {(p.parent_path() / "adapter_config.json").string(), p.string()};
}

// A config member that must be absent, null, false or empty.
void refuse(const io::Json& j, std::string_view key, const std::string& source,
            std::string_view what) {
  const io::Json* v = j.find(key);
  if (!v || v->is_null()) return;
  if (v->is_bool() && !v->as_bool()) return;
  if ((v->is_object() || v->is_array()) && v->size() == 0) return;
  fail<FormatError>(source, ": ", key, " is set (", what,
                    "); scholar does not support it, and ignoring it would change the adapter");
}

}  // namespace

io::Json peft_config_json(const nn::LoraConfig& c, const PeftSaveOptions& o, bool fan_in_fan_out) {
  io::Json j = io::Json::object();
  j.set("peft_type", "LORA");
  j.set("task_type", o.task_type);
  j.set("base_model_name_or_path", o.base_model_name_or_path);
  j.set("r", c.r);
  j.set("lora_alpha", c.lora_alpha);
  j.set("lora_dropout", c.lora_dropout);
  j.set("use_rslora", c.use_rslora);
  j.set("bias", c.bias);
  j.set("fan_in_fan_out", fan_in_fan_out);
  if (!c.target_regex.empty()) {
    j.set("target_modules", c.target_regex);
  } else {
    io::Json list = io::Json::array();
    for (const auto& t : c.target_modules) list.push_back(t);
    j.set("target_modules", std::move(list));
  }
  j.set("init_lora_weights", true);
  j.set("inference_mode", true);
  j.set("use_dora", false);
  j.set("rank_pattern", io::Json::object());
  j.set("alpha_pattern", io::Json::object());
  j.set("modules_to_save", nullptr);
  j.set("layers_to_transform", nullptr);
  j.set("layers_pattern", nullptr);
  j.set("revision", nullptr);
  return j;
}

nn::LoraConfig lora_config_from_peft(const io::Json& j, const std::string& source) {
  if (!j.is_object()) fail<FormatError>(source, ": adapter config is not a JSON object");
  const io::Json* type = j.find("peft_type");
  if (!type || !type->is_string() || type->as_string() != "LORA")
    fail<FormatError>(source, ": peft_type is ",
                      type && type->is_string() ? "'" + type->as_string() + "'" : "missing",
                      "; scholar reads LORA adapters");
  refuse(j, "use_dora", source, "DoRA");
  refuse(j, "rank_pattern", source, "per-layer ranks");
  refuse(j, "alpha_pattern", source, "per-layer alphas");
  refuse(j, "layers_to_transform", source, "adapters on some layers only");
  refuse(j, "modules_to_save", source, "fully trained extra modules");
  refuse(j, "layer_replication", source, "replicated layers");
  if (const io::Json* m = j.find("megatron_config"); m && !m->is_null())
    fail<FormatError>(source, ": megatron_config is set; scholar does not support it");

  nn::LoraConfig c;
  c.r = j.at("r", source).as_int("r");
  c.lora_alpha = j.at("lora_alpha", source).as_double("lora_alpha");
  if (const io::Json* d = j.find("lora_dropout"); d && !d->is_null())
    c.lora_dropout = d->as_double("lora_dropout");
  if (const io::Json* r = j.find("use_rslora"); r && !r->is_null())
    c.use_rslora = r->as_bool("use_rslora");
  if (const io::Json* b = j.find("bias"); b && !b->is_null()) c.bias = b->as_string("bias");
  const io::Json& t = j.at("target_modules", source);
  if (t.is_string()) {
    if (t.as_string() == "all-linear")
      c.target_modules = {"all-linear"};
    else
      c.target_regex = t.as_string();
  } else {
    for (const auto& e : t.as_array("target_modules"))
      c.target_modules.push_back(e.as_string("target_modules entry"));
    std::sort(c.target_modules.begin(), c.target_modules.end());
    if (c.target_modules.empty()) fail<FormatError>(source, ": target_modules is empty");
  }
  try {
    c.validate();
  } catch (const ValueError& e) {
    fail<FormatError>(source, ": ", e.what());
  }
  return c;
}

void save_peft_adapter(const nn::Module& model, const std::string& dir,
                       const PeftSaveOptions& options) {
  const auto layers = nn::lora_layers(model);
  if (layers.empty()) fail<ValueError>("save_peft_adapter: the model has no LoRA adapters");
  const nn::LoraSpec first = *layers.front().second->lora_spec();
  std::set<std::string> adapted, parts;
  bool conv1d = false;
  for (const auto& [name, l] : layers) {
    const nn::LoraSpec& s = *l->lora_spec();
    if (s.rank != first.rank || s.alpha != first.alpha || s.dropout != first.dropout ||
        s.rslora != first.rslora)
      fail<ValueError>("save_peft_adapter: layer '", name, "' has r = ", s.rank, ", alpha ",
                       s.alpha, " but '", layers.front().first, "' has r = ", first.rank,
                       ", alpha ", first.alpha, "; PEFT's per-layer patterns are not supported");
    adapted.insert(name);
    parts.insert(last_part(name));
    conv1d = conv1d || l->layout() == autograd::WeightLayout::in_out;
  }
  // Last name parts when they pick out exactly the adapted layers; full names otherwise.
  bool exact = true;
  for (const auto& [name, m] : const_cast<nn::Module&>(model).named_modules())
    if (dynamic_cast<const nn::Linear*>(m) && parts.count(last_part(name)) &&
        !adapted.count(name) && !name.ends_with(".lora_A") && !name.ends_with(".lora_B"))
      exact = false;
  nn::LoraConfig c;
  c.r = first.rank;
  c.lora_alpha = first.alpha;
  c.lora_dropout = first.dropout;
  c.use_rslora = first.rslora;
  const std::set<std::string>& names = exact ? parts : adapted;
  c.target_modules.assign(names.begin(), names.end());

  // Trained biases: of adapted layers only ("lora_only") or others too ("all").
  io::SafetensorsWriter w;
  bool other_bias = false, any_bias = false;
  for (const auto& p : model.named_parameters()) {
    if (p.name.ends_with(".lora_A.weight") || p.name.ends_with(".lora_B.weight")) {
      w.add(std::string(kPrefix) + p.name, p.var.value());
    } else if (p.var.requires_grad() && p.name.ends_with(".bias")) {
      any_bias = true;
      other_bias = other_bias || !adapted.count(p.name.substr(0, p.name.size() - 5));
      w.add(std::string(kPrefix) + p.name, p.var.value());
    }
  }
  c.bias = !any_bias ? "none" : other_bias ? "all" : "lora_only";
  w.set_metadata("format", "pt");
  std::filesystem::create_directories(dir);
  const std::filesystem::path d(dir);
  io::write_file_atomic((d / "adapter_config.json").string(),
                        peft_config_json(c, options, conv1d).dump(2) + "\n");
  w.save((d / "adapter_model.safetensors").string());
}

PeftAdapter read_peft_adapter(const std::string& path) {
  const auto [config_path, tensors_path] = adapter_paths(path);
  if (!std::filesystem::exists(config_path))
    fail<FormatError>(path, ": no adapter_config.json (a PEFT adapter directory has one)");
  PeftAdapter a;
  const io::Json j = io::Json::parse(io::read_file(config_path), config_path);
  a.config = lora_config_from_peft(j, config_path);
  if (const io::Json* b = j.find("base_model_name_or_path"); b && b->is_string())
    a.base_model_name_or_path = b->as_string();
  if (const io::Json* f = j.find("fan_in_fan_out"); f && f->is_bool())
    a.fan_in_fan_out = f->as_bool();
  const io::SafetensorsFile f = io::SafetensorsFile::open(tensors_path);
  for (const auto& t : f.tensors()) {
    if (t.name.rfind(kPrefix, 0) != 0)
      fail<FormatError>(tensors_path, ": tensor '", t.name, "' does not start with '", kPrefix,
                        "' (not a PEFT adapter for a base model)");
    a.tensors.emplace_back(t.name.substr(kPrefix.size()), f.load<float>(t.name));
  }
  if (a.tensors.empty()) fail<FormatError>(tensors_path, ": the adapter holds no tensors");
  return a;
}

nn::LoraSummary load_peft_adapter(nn::TransformerLM& model, const std::string& path) {
  PeftAdapter a = read_peft_adapter(path);
  const std::string where = adapter_paths(path).second;
  if (!nn::lora_layers(model).empty())
    fail<ValueError>("load_peft_adapter: the model already has adapters (nn::remove_lora first)");
  // Check every tensor against the layers the config targets before changing the model.
  const auto targets = nn::lora_targets(model, a.config, nn::default_lora_targets(model.config()));
  std::map<std::string, const nn::Linear*> layers;
  for (auto& [name, m] : model.named_modules())
    if (std::find(targets.begin(), targets.end(), name) != targets.end())
      layers[name] = dynamic_cast<const nn::Linear*>(m);
  std::map<std::string, int> seen;
  for (const auto& [name, t] : a.tensors) {
    const bool is_a = name.ends_with(".lora_A.weight"), is_b = name.ends_with(".lora_B.weight");
    if (!is_a && !is_b) {
      if (!name.ends_with(".bias"))
        fail<FormatError>(where, ": tensor '", name,
                          "' is neither a lora_A/lora_B weight nor a bias");
      continue;  // checked against the model's parameters below
    }
    const std::string layer = name.substr(0, name.size() - 14);
    auto it = layers.find(layer);
    if (it == layers.end())
      fail<FormatError>(where, ": tensor '", name, "' is for layer '", layer,
                        "', which this model does not have or the adapter's config does not "
                        "target (an adapter for another base?)");
    const int64_t in = it->second->in_features(), out = it->second->out_features();
    const Shape want = is_a ? Shape{a.config.r, in} : Shape{out, a.config.r};
    if (!(t.shape() == want))
      fail<ShapeError>(where, ": tensor '", name, "' has shape ", t.shape().str(), "; layer '",
                       layer, "' (", in, " -> ", out, ", r = ", a.config.r, ") needs ", want.str(),
                       " (an adapter for another base?)");
    seen[layer] |= is_a ? 1 : 2;
  }
  for (const auto& [layer, l] : layers)
    if (seen[layer] != 3)
      fail<FormatError>(where, ": the config targets layer '", layer, "' but the file has no ",
                        (seen[layer] & 1) ? "lora_B" : "lora_A", " weight for it");
  const auto params = model.named_parameters();
  for (const auto& [name, t] : a.tensors) {
    if (!name.ends_with(".bias")) continue;
    const nn::NamedParameter* p = nullptr;
    for (const auto& q : params)
      if (q.name == name) p = &q;
    if (!p) fail<FormatError>(where, ": bias '", name, "' names no parameter of this model");
    if (!(p->var.shape() == t.shape()))
      fail<ShapeError>(where, ": bias '", name, "' has shape ", t.shape().str(), ", the model's ",
                       p->var.shape().str());
  }

  nn::LoraSummary s = nn::apply_lora(model, a.config);
  for (auto& [name, t] : a.tensors) {
    autograd::Var v = model.parameter(name);
    v.set_value(std::move(t));
  }
  return s;
}

}  // namespace scholar::finetune
