// Models move between the formats and the trainable nn side without changing their logits:
// Hugging Face dir -> nn -> Hugging Face dir, GGUF -> nn -> GGUF (llama.cpp's Llama layout, with
// its RoPE row permutation), quantized GGUF -> nn, checked against PyTorch's logits where the
// fixture has them (tests/reference/make_infer_fixtures.py) and against the source model elsewhere.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "scholar/autograd/var.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/nn/arch.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

std::string data(const std::string& rel) {
  return std::string(SCHOLAR_TEST_DATA) + "/" + rel;
}

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("scholar_rt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

double max_rel(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::fabs(b[i])));
  }
  return num / den;
}

std::vector<int32_t> prompt_for(const infer::Model& m) {
  std::vector<int32_t> p(12);
  for (size_t i = 0; i < p.size(); ++i)
    p[i] = static_cast<int32_t>((i * 37 + 11) % static_cast<size_t>(m.arch().vocab_size));
  return p;
}

// Every position's logits from the inference engine.
std::vector<float> session_logits(const std::shared_ptr<const infer::Model>& m,
                                  const std::vector<int32_t>& prompt) {
  infer::Session s(m, {.n_ctx = 32});
  infer::Batch b;
  for (size_t i = 0; i < prompt.size(); ++i) b.add(prompt[i], static_cast<int64_t>(i), 0, true);
  const auto out = s.decode(b);
  return {out.begin(), out.end()};
}

// The same from the nn module's forward pass (autograd, no cache).
std::vector<float> module_logits(const nn::TransformerLM& lm, const std::vector<int32_t>& prompt) {
  autograd::NoGradGuard no_grad;
  const auto ids = Tensor<int32_t>::from({1, static_cast<int64_t>(prompt.size())}, prompt);
  const Tensor<float> l = lm.forward(ids).value().contiguous();
  return {l.data(), l.data() + l.numel()};
}

}  // namespace

TEST_CASE("Hugging Face dir -> nn -> Hugging Face dir and GGUF keep PyTorch's logits",
          "[infer][roundtrip]") {
  for (const char* name : {"gpt2", "llama", "qwen2"}) {
    INFO(name);
    const std::string dir = data(std::string("infer/") + name);
    const auto want = io::SafetensorsFile::open(dir + "/expected.safetensors");
    const auto pt = want.load<int32_t>("prompt");
    const std::vector<int32_t> prompt(pt.data(), pt.data() + pt.numel());
    const Tensor<float> torch = want.load<float>("logits_f32");
    const std::span<const float> ref(torch.data(), static_cast<size_t>(torch.numel()));

    const auto m = infer::Model::load(dir);
    const auto lm = m->to_module();
    CHECK(max_rel(module_logits(*lm, prompt), ref) < 1e-4);  // the trainable side, as PyTorch
    // nn -> Hugging Face directory -> inference.
    const std::string out = temp_path(std::string(name) + "_hf");
    nn::save_hf_dir(*lm, out, m->has_tokenizer() ? &m->tokenizer() : nullptr);
    CHECK(fs::exists(out + "/config.json"));
    const auto back = infer::Model::load(out);
    CHECK(back->arch() == m->arch());
    CHECK(max_rel(session_logits(back, prompt), ref) < 1e-4);
    // nn -> GGUF -> inference (Llama rows permuted for llama.cpp on the way out).
    const std::string gguf = temp_path(std::string(name) + ".gguf");
    infer::Model::from_module(*lm, m->tokenizer_ptr())->save_gguf(gguf, WeightType::f32);
    CHECK(max_rel(session_logits(infer::Model::load(gguf), prompt), ref) < 1e-4);
    fs::remove_all(out);
    fs::remove(gguf);
  }
}

TEST_CASE("GGUF -> nn -> GGUF gives the same logits (llama.cpp's own files)",
          "[infer][roundtrip]") {
  for (const char* name : {"llama_cpp/llama-f32.gguf", "llama_cpp/gpt2-f32.gguf"}) {
    INFO(name);
    const auto m = infer::Model::load(data(name));
    const auto prompt = prompt_for(*m);
    const auto want = session_logits(m, prompt);
    const auto lm = m->to_module();  // Q/K rows back in Hugging Face order
    CHECK(max_rel(module_logits(*lm, prompt), want) < 1e-5);
    const std::string out = temp_path("again.gguf");
    infer::Model::from_module(*lm, m->tokenizer_ptr())->save_gguf(out, WeightType::f32);
    const auto again = infer::Model::load(out);
    CHECK(max_rel(session_logits(again, prompt), want) < 1e-6);
    CHECK(again->tokenizer().fingerprint() == m->tokenizer().fingerprint());
    fs::remove(out);
  }
}

TEST_CASE("quantized GGUF models dequantize into nn with the engine's weights",
          "[infer][roundtrip]") {
  for (const char* name :
       {"gguf/tiny_qwen2_q8_0.gguf", "gguf/tiny_llama_q4_0.gguf", "gguf/tiny_gpt2_f16.gguf"}) {
    INFO(name);
    const auto m = infer::Model::load(data(name));
    const auto prompt = prompt_for(*m);
    // The module holds exactly the stored values, so it matches the engine run on the same
    // values in f32 (the quantized engine also rounds activations to Q8_0).
    const auto want = session_logits(m->converted(WeightType::f32), prompt);
    CHECK(max_rel(module_logits(*m->to_module(), prompt), want) < 1e-5);
  }
}

TEST_CASE("architecture tables name every nn parameter and map adapter names", "[nn][roundtrip]") {
  auto llama = nn::TransformerConfig::llama(96, 32, 2, 32, 4, 2, 64);
  llama.qkv_bias = true;
  for (const auto& cfg : {nn::TransformerConfig::gpt2(96, 32, 2, 32, 4), llama}) {
    // The nn module's names are exactly the table's Hugging Face names, in the same order.
    nn::TransformerLM lm(cfg);
    std::vector<std::string> params, table;
    for (const auto& p : lm.named_parameters()) params.push_back(p.name);
    for (const auto& t : nn::tensor_specs(cfg)) table.push_back(t.hf_name);
    std::sort(params.begin(), params.end());
    std::sort(table.begin(), table.end());
    CHECK(params == table);
    for (const auto& t : nn::tensor_specs(cfg)) {
      CHECK(nn::hf_to_gguf_name(cfg, t.hf_name) == t.gguf_name);
      CHECK(nn::gguf_to_hf_name(cfg, t.gguf_name) == t.hf_name);
    }
  }
  CHECK(nn::hf_to_gguf_name(llama, "model.layers.1.self_attn.q_proj.lora_A.weight") ==
        "blk.1.attn_q.weight.lora_a");
  CHECK(nn::gguf_to_hf_name(llama, "blk.0.ffn_down.weight.lora_b") ==
        "model.layers.0.mlp.down_proj.lora_B.weight");
  const auto gpt2 = nn::TransformerConfig::gpt2(96, 32, 2, 32, 4);
  CHECK(nn::hf_to_gguf_name(gpt2, "transformer.h.1.attn.c_attn.lora_A.weight") ==
        "blk.1.attn_qkv.weight.lora_a");
  CHECK_FALSE(nn::hf_to_gguf_name(llama, "model.layers.7.self_attn.q_proj.weight"));  // no layer 7
  CHECK_FALSE(nn::hf_to_gguf_name(llama, "model.layers.1.self_attn.q_proj.weightx"));
  CHECK_FALSE(nn::gguf_to_hf_name(llama, "blk.x.attn_q.weight"));
  CHECK(nn::gguf_name(nn::TransformerConfig::Family::llama, nn::TensorRole::attn_k, 3) ==
        "blk.3.attn_k.weight");
  CHECK(nn::gguf_name(nn::TransformerConfig::Family::llama, nn::TensorRole::attn_qkv).empty());
  // The RoPE permutation and its inverse.
  std::vector<float> w(8 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  const auto g = nn::permute_rope_rows(w, 8, 3, 4, true);
  CHECK(g != w);
  CHECK(nn::permute_rope_rows(g, 8, 3, 4, false) == w);
  CHECK(std::vector<float>(g.begin() + 3, g.begin() + 6) ==
        std::vector<float>{6, 7, 8});  // row 1 of a head of 4 is HF's row 2 (i + D/2)
}

TEST_CASE("sharded Hugging Face directories with GPT-2's bare names load into nn",
          "[infer][roundtrip]") {
  // Hugging Face's own gpt2 checkpoints name tensors without "transformer."; large models come in
  // shards listed by model.safetensors.index.json. Rewrite the fixture that way.
  const std::string src = data("infer/gpt2");
  const auto f = io::SafetensorsFile::open(src + "/model.safetensors");
  const std::string dir = temp_path("gpt2_sharded");
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
  io::SafetensorsWriter a, b;
  io::Json map = io::Json::object();
  size_t k = 0;
  for (const auto& t : f.tensors()) {
    std::string name = t.name;
    if (name.rfind("transformer.", 0) == 0) name = name.substr(12);
    const bool first = k++ % 2 == 0;
    (first ? a : b).add(name, f.load<float>(t.name));
    map.set(name, io::Json(first ? "model-00001-of-00002.safetensors"
                                 : "model-00002-of-00002.safetensors"));
  }
  a.save(dir + "/model-00001-of-00002.safetensors");
  b.save(dir + "/model-00002-of-00002.safetensors");
  io::Json index = io::Json::object();
  index.set("weight_map", std::move(map));
  io::write_file_atomic(dir + "/model.safetensors.index.json", index.dump());

  const auto want = io::SafetensorsFile::open(src + "/expected.safetensors");
  const auto pt = want.load<int32_t>("prompt");
  const std::vector<int32_t> prompt(pt.data(), pt.data() + pt.numel());
  const Tensor<float> torch = want.load<float>("logits_f32");
  const std::span<const float> ref(torch.data(), static_cast<size_t>(torch.numel()));
  const auto lm = infer::Model::load(dir)->to_module();
  CHECK(max_rel(module_logits(*lm, prompt), ref) < 1e-4);
  fs::remove_all(dir);
}
