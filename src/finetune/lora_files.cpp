// LoRA weights between their forms: trained nn models, PEFT files, llama.cpp LoRA GGUF files, and
// inference adapters.
#include <cmath>
#include <filesystem>
#include <map>

#include "scholar/error.hpp"
#include "scholar/finetune/adapter.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/nn/arch.hpp"

namespace scholar::finetune {

namespace {

// The architecture table's row for a Hugging Face module ("model.layers.0.self_attn.q_proj").
const nn::TensorSpec* spec_of(const std::vector<nn::TensorSpec>& specs, const std::string& module) {
  for (const nn::TensorSpec& t : specs)
    if (t.matrix && t.hf_name == module + ".weight") return &t;
  return nullptr;
}

// B's rows reordered between Hugging Face's RoPE pairing and llama.cpp's.
Tensor<float> permute_b(const Tensor<float>& b, int64_t head_dim, bool to_gguf) {
  const Tensor<float> c = b.contiguous();
  std::vector<float> v(c.data(), c.data() + c.numel());
  v = nn::permute_rope_rows(v, c.size(0), c.size(1), head_dim, to_gguf);
  Tensor<float> out = Tensor<float>::empty(c.shape());
  std::copy(v.begin(), v.end(), out.data());
  return out;
}

void no_biases(const LoraWeights& w, const char* who) {
  if (!w.biases.empty())
    fail<ValueError>(who, ": the adapter trains biases (PEFT bias \"", "lora_only\" or \"all\"; ",
                     w.biases.front().first,
                     ", ...), which a low-rank adapter cannot carry; merge ",
                     "the adapter into the model instead (nn::merge_lora, then export)");
}

}  // namespace

double LoraWeights::scale(const Layer& l) const {
  const auto r = static_cast<double>(l.rank());
  return rslora ? alpha / std::sqrt(r) : alpha / r;
}

LoraWeights lora_weights(const nn::Module& model) {
  const auto layers = nn::lora_layers(model);
  if (layers.empty()) fail<ValueError>("lora_weights: the model has no LoRA adapters");
  LoraWeights w;
  const nn::LoraSpec& first = *layers.front().second->lora_spec();
  w.alpha = first.alpha;
  w.rslora = first.rslora;
  for (const auto& [name, l] : layers) {
    const nn::LoraSpec& s = *l->lora_spec();
    if (s.alpha != first.alpha || s.rslora != first.rslora)
      fail<ValueError>("lora_weights: layers '", layers.front().first, "' and '", name,
                       "' have different alphas or scaling rules");
    w.layers.push_back({name, l->lora_a().value().clone(), l->lora_b().value().clone()});
  }
  for (const auto& p : model.named_parameters())
    if (p.var.requires_grad() && p.name.ends_with(".bias"))
      w.biases.emplace_back(p.name, p.var.value().clone());
  return w;
}

LoraWeights lora_weights(const PeftAdapter& a) {
  LoraWeights w;
  w.alpha = a.config.lora_alpha;
  w.rslora = a.config.use_rslora;
  std::map<std::string, std::pair<Tensor<float>, Tensor<float>>> by_module;
  for (const auto& [name, t] : a.tensors) {
    if (name.ends_with(".lora_A.weight"))
      by_module[name.substr(0, name.size() - 14)].first = t;
    else if (name.ends_with(".lora_B.weight"))
      by_module[name.substr(0, name.size() - 14)].second = t;
    else
      w.biases.emplace_back(name, t);
  }
  for (auto& [module, ab] : by_module) {
    if (!ab.first.defined() || !ab.second.defined())
      fail<FormatError>("adapter: layer '", module, "' has only ",
                        ab.first.defined() ? "lora_A" : "lora_B");
    w.layers.push_back({module, std::move(ab.first), std::move(ab.second)});
  }
  return w;
}

void save_lora_gguf(const LoraWeights& w, const nn::TransformerConfig& base,
                    const std::string& path) {
  no_biases(w, "save_lora_gguf");
  if (w.layers.empty()) fail<ValueError>("save_lora_gguf: the adapter has no layers");
  // llama.cpp scales every layer by alpha / rank; rsLoRA's alpha / sqrt(rank) survives as one
  // alpha only when all ranks agree.
  const int64_t r0 = w.layers.front().rank();
  double alpha = w.alpha;
  if (w.rslora) {
    for (const auto& l : w.layers)
      if (l.rank() != r0)
        fail<ValueError>("save_lora_gguf: rsLoRA with layers of ranks ", r0, " and ", l.rank(),
                         " has no single llama.cpp alpha");
    alpha = w.alpha * std::sqrt(static_cast<double>(r0));
  }
  const auto specs = nn::tensor_specs(base);
  const bool permute = nn::gguf_permutes_rope_rows(base);
  io::GgufWriter g;
  using V = io::GgufValue;
  g.set("general.architecture", V::string(std::string(nn::gguf_architecture(base))));
  g.set("general.type", V::string("adapter"));
  g.set("general.name", V::string("scholar LoRA adapter"));
  g.set("adapter.type", V::string("lora"));
  g.set("adapter.lora.alpha", V::f32(static_cast<float>(alpha)));
  for (const auto& l : w.layers) {
    const nn::TensorSpec* t = spec_of(specs, l.module);
    if (!t)
      fail<FormatError>("save_lora_gguf: '", l.module, "' is not a weight matrix of a ",
                        nn::gguf_architecture(base), " model");
    auto a = std::make_shared<Tensor<float>>(l.a.contiguous());
    auto b =
        std::make_shared<Tensor<float>>(permute && t->transform == nn::TensorTransform::rope_rows
                                            ? permute_b(l.b, base.head_dim(), true)
                                            : l.b.contiguous());
    g.add_tensor(t->gguf_name + ".lora_a", WeightType::f32, a->shape(), a->data(),
                 static_cast<size_t>(a->numel()) * sizeof(float), a);
    g.add_tensor(t->gguf_name + ".lora_b", WeightType::f32, b->shape(), b->data(),
                 static_cast<size_t>(b->numel()) * sizeof(float), b);
  }
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  g.save(path);
}

LoraWeights read_lora_gguf(const std::string& path, const nn::TransformerConfig& base) {
  const io::GgufFile f = io::GgufFile::open(path);
  auto str = [&](const std::string& key) {
    const io::GgufValue* v = f.find(key);
    return v ? v->as_string(path + ": " + key) : std::string("(missing)");
  };
  if (str("general.type") != "adapter")
    fail<FormatError>(path, ": general.type is '", str("general.type"),
                      "', not 'adapter' (a model, not a LoRA adapter?)");
  if (str("adapter.type") != "lora")
    fail<FormatError>(path, ": adapter.type is '", str("adapter.type"), "'; scholar reads lora");
  const std::string arch(nn::gguf_architecture(base));
  if (str("general.architecture") != arch)
    fail<FormatError>(path, ": the adapter is for architecture '", str("general.architecture"),
                      "', the base is '", arch, "'");
  LoraWeights w;
  const io::GgufValue* alpha = f.find("adapter.lora.alpha");
  w.alpha = alpha ? alpha->as_double(path + ": adapter.lora.alpha") : 0.0;
  const auto specs = nn::tensor_specs(base);
  const bool permute = nn::gguf_permutes_rope_rows(base);
  std::map<std::string, std::pair<Tensor<float>, Tensor<float>>> pairs;  // by GGUF base name
  for (const io::GgufTensorInfo& t : f.tensors()) {
    const bool is_a = t.name.ends_with(".lora_a"), is_b = t.name.ends_with(".lora_b");
    if (!is_a && !is_b)
      fail<FormatError>(path, ": tensor '", t.name, "' is neither a lora_a nor a lora_b");
    if (t.type != WeightType::f32 && t.type != WeightType::f16 && t.type != WeightType::bf16)
      fail<FormatError>(path, ": tensor '", t.name, "' is ", weight_type_name(t.type),
                        "; scholar reads LoRA tensors in f32, f16 or bf16");
    if (t.shape.rank() != 2)
      fail<FormatError>(path, ": tensor '", t.name, "' has shape ", t.shape.str(), ", not 2-D");
    Tensor<float> v = Tensor<float>::empty(t.shape);
    kernels::active().weight(t.type).to_f32(v.data(), f.bytes(t.name).data(),
                                            static_cast<size_t>(v.numel()));
    auto& slot = pairs[t.name.substr(0, t.name.size() - 7)];
    (is_a ? slot.first : slot.second) = std::move(v);
  }
  if (pairs.empty()) fail<FormatError>(path, ": the adapter holds no tensors");
  for (auto& [gguf, ab] : pairs) {
    if (!ab.first.defined() || !ab.second.defined())
      fail<FormatError>(path, ": '", gguf, "' has only its ",
                        ab.first.defined() ? "lora_a" : "lora_b");
    const nn::TensorSpec* spec = nullptr;
    for (const nn::TensorSpec& t : specs)
      if (t.matrix && t.gguf_name == gguf) spec = &t;
    if (!spec)
      fail<FormatError>(path, ": '", gguf, "' is not a weight matrix of this ", arch,
                        " base (an adapter for another model?)");
    const int64_t r = ab.first.size(0);
    if (ab.second.size(1) != r)
      fail<FormatError>(path, ": '", gguf, "' has lora_a ", ab.first.shape().str(), " and lora_b ",
                        ab.second.shape().str(), " of different ranks");
    std::string module = spec->hf_name.substr(0, spec->hf_name.size() - 7);  // drop ".weight"
    Tensor<float> b = permute && spec->transform == nn::TensorTransform::rope_rows
                          ? permute_b(ab.second, base.head_dim(), false)
                          : std::move(ab.second);
    w.layers.push_back({std::move(module), std::move(ab.first), std::move(b)});
  }
  if (!alpha) w.alpha = static_cast<double>(w.layers.front().rank());  // llama.cpp: scale 1
  return w;
}

LoraWeights read_lora(const std::string& path, const nn::TransformerConfig& base) {
  if (path.ends_with(".gguf")) return read_lora_gguf(path, base);
  return lora_weights(read_peft_adapter(path));
}

std::shared_ptr<infer::Adapter> to_infer_adapter(const LoraWeights& w, const infer::Model& model) {
  no_biases(w, "to_infer_adapter");
  const auto specs = nn::tensor_specs(model.arch());
  const bool interleaved = model.config().rope_style == kernels::RopeStyle::interleaved;
  auto out = std::make_shared<infer::Adapter>();
  for (const auto& l : w.layers) {
    const nn::TensorSpec* t = spec_of(specs, l.module);
    if (!t)
      fail<FormatError>("to_infer_adapter: the model has no weight matrix '", l.module,
                        ".weight' (an adapter for another base?)");
    const Tensor<float> a = l.a.contiguous();
    const Tensor<float> b = interleaved && t->transform == nn::TensorTransform::rope_rows
                                ? permute_b(l.b, model.arch().head_dim(), true)
                                : l.b.contiguous();
    infer::LoraUpdate u;
    u.rank = l.rank();
    u.scale = static_cast<float>(w.scale(l));
    u.a.assign(a.data(), a.data() + a.numel());
    u.b.assign(b.data(), b.data() + b.numel());
    out->add(t->role, t->layer, std::move(u));
  }
  out->check(model);  // shapes against the model's matrices now, not at the first decode
  return out;
}

}  // namespace scholar::finetune
