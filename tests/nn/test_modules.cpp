// Modules: Hugging Face parameter names, parameter counts, initialization, loading, bad input.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/tensor/ops.hpp"

using namespace scholar;
using nn::TransformerConfig;

TEST_CASE("GPT-2 names and parameter count follow Hugging Face", "[nn]") {
  const auto cfg = TransformerConfig::gpt2(50257, 1024, 12, 768, 12);
  nn::TransformerLM model(cfg);
  CHECK(model.parameter_count() == 124439808);  // GPT-2 small (tied head counted once)
  const auto names = model.named_parameters();
  CHECK(names.front().name == "transformer.wte.weight");
  CHECK(names[1].name == "transformer.wpe.weight");
  CHECK(names[2].name == "transformer.h.0.ln_1.weight");
  CHECK(model.parameter("transformer.h.0.attn.c_attn.weight").shape() == Shape{768, 2304});
  CHECK(model.parameter("transformer.h.11.mlp.c_proj.weight").shape() == Shape{3072, 768});
  CHECK(names.back().name == "transformer.ln_f.bias");
  CHECK_THROWS_WITH(model.parameter("lm_head.weight"), Catch::Contains("transformer.wte.weight"));
}

TEST_CASE("Llama names, grouped-query shapes and count follow Hugging Face", "[nn]") {
  auto cfg = TransformerConfig::llama(32000, 2048, 2, 256, 8, 2, 688);
  cfg.qkv_bias = true;  // Qwen2 style
  nn::TransformerLM model(cfg);
  CHECK(model.parameter("model.layers.1.self_attn.k_proj.weight").shape() == Shape{64, 256});
  CHECK(model.parameter("model.layers.1.self_attn.k_proj.bias").shape() == Shape{64});
  CHECK(model.parameter("model.layers.0.mlp.down_proj.weight").shape() == Shape{256, 688});
  CHECK(model.parameter("lm_head.weight").shape() == Shape{32000, 256});
  const int64_t per_layer = 256 * 256 * 2 + 64 * 256 * 2 + 256 + 64 + 64 + 3 * 256 * 688 + 2 * 256;
  CHECK(model.parameter_count() == 32000 * 256 * 2 + 2 * per_layer + 256);
}

TEST_CASE("initialization: GPT-2 recipe, deterministic per seed", "[nn]") {
  const auto cfg = TransformerConfig::gpt2(512, 64, 4, 128, 4);
  nn::TransformerLM a(cfg, 7), b(cfg, 7), c(cfg, 8);
  const auto wa = a.parameter("transformer.h.0.mlp.c_fc.weight").value();
  CHECK(max_abs_diff(wa, b.parameter("transformer.h.0.mlp.c_fc.weight").value()) == 0.0);
  CHECK(max_abs_diff(wa, c.parameter("transformer.h.0.mlp.c_fc.weight").value()) > 0.0);
  auto stddev = [](const Tensor<float>& t) { return std::sqrt(mean_all(square(t))); };
  CHECK(stddev(wa) == Approx(0.02).epsilon(0.05));
  CHECK(stddev(a.parameter("transformer.h.3.attn.c_proj.weight").value()) ==
        Approx(0.02 / std::sqrt(8.0)).epsilon(0.05));
  CHECK(sum_all(abs(a.parameter("transformer.h.0.attn.c_attn.bias").value())) == 0.0);
  CHECK(mean_all(a.parameter("transformer.ln_f.weight").value()) == 1.0);
}

TEST_CASE("config validation and config.json round trip", "[nn]") {
  auto cfg = TransformerConfig::llama(1000, 128, 2, 96, 6, 2, 256);
  cfg.rope_theta = 500000.0;
  const auto back = TransformerConfig::from_json(cfg.to_json());
  CHECK(back == cfg);
  const auto g = TransformerConfig::gpt2(1000, 128, 2, 96, 6);
  CHECK(TransformerConfig::from_json(g.to_json()) == g);
  auto bad = cfg;
  bad.n_heads = 5;
  CHECK_THROWS_WITH(bad.validate(),
                    Catch::Contains("n_embd (96)") && Catch::Contains("n_heads (5)"));
  bad = cfg;
  bad.n_kv_heads = 4;
  CHECK_THROWS_AS(bad.validate(), ValueError);
  CHECK_THROWS_WITH(TransformerConfig::from_json(io::Json::parse(R"({"model_type": "roberta"})")),
                    Catch::Contains("roberta"));
  // Defaults that to_json spells out (kv heads, MLP width, model type) still compare equal.
  auto mha = TransformerConfig::llama(1000, 128, 2, 96, 6, 0, 256);
  mha.model_type.clear();
  mha.dropout = 0.1f;
  CHECK(TransformerConfig::from_json(mha.to_json()) == mha);
  CHECK_FALSE(TransformerConfig::from_json(mha.to_json()) == cfg);
  // Bad values in a config.json are FormatErrors, not crashes.
  auto zero_heads = cfg.to_json();
  zero_heads.set("num_attention_heads", io::Json(int64_t{0}));
  CHECK_THROWS_WITH(TransformerConfig::from_json(zero_heads),
                    Catch::Contains("config.json") && Catch::Contains("n_heads"));
  auto scaled = cfg.to_json();
  scaled.set("rope_scaling", io::Json::parse(R"({"rope_type": "llama3", "factor": 8.0})"));
  CHECK_THROWS_WITH(
      TransformerConfig::from_json(scaled),
      Catch::Contains("rope_scaling") && Catch::Contains("original_max_position_embeddings"));
  scaled.set("rope_scaling", io::Json::parse(R"({"rope_type": "yarn", "factor": 4.0})"));
  CHECK_THROWS_WITH(TransformerConfig::from_json(scaled),
                    Catch::Contains("rope_scaling") && Catch::Contains("yarn"));
  scaled.set("rope_scaling", io::Json::parse(R"({"rope_type": "linear", "factor": -2})"));
  CHECK_THROWS_WITH(TransformerConfig::from_json(scaled), Catch::Contains("factor"));
  scaled.set("rope_scaling", io::Json::parse(R"({"type": "default"})"));
  CHECK(TransformerConfig::from_json(scaled).rope_freq_factors().empty());
}

TEST_CASE("RoPE scaling: linear and Llama 3.1 factors and their config.json round trip", "[nn]") {
  // Head dimension 16, theta 10000: pair p's wavelength is 2 pi 10000^(p/8) = 6.3, 19.9, 62.8,
  // 198.7, 628, ... With an original context of 256 and frequency factors 1 and 4, pairs shorter
  // than 64 keep their frequency, those longer than 256 are divided by 8, and pair 3 is blended.
  auto cfg = TransformerConfig::llama(100, 64, 1, 64, 4, 2, 96);
  CHECK(cfg.rope_freq_factors().empty());
  cfg.rope_scaling = {.type = nn::RopeScalingType::llama3,
                      .factor = 8.0,
                      .low_freq_factor = 1.0,
                      .high_freq_factor = 4.0,
                      .original_context_length = 256};
  const auto f = cfg.rope_freq_factors();
  REQUIRE(f.size() == 8);
  const double pi = 3.14159265358979323846;
  const double smooth = (256.0 / (2 * pi * std::pow(10000.0, 3.0 / 8.0)) - 1.0) / 3.0;
  const std::vector<double> want = {1, 1, 1, 1 / ((1 - smooth) / 8 + smooth), 8, 8, 8, 8};
  for (size_t i = 0; i < 8; ++i) CHECK(f[i] == Approx(want[i]).epsilon(1e-6));
  const auto back = TransformerConfig::from_json(cfg.to_json());
  CHECK(back.rope_scaling.type == nn::RopeScalingType::llama3);
  CHECK(back == cfg);
  // The same factors written out explicitly are the same model; a different factor is not.
  auto explicit_factors = cfg;
  explicit_factors.rope_scaling = {.type = nn::RopeScalingType::factors, .factors = f};
  CHECK(explicit_factors == cfg);
  CHECK(TransformerConfig::from_json(explicit_factors.to_json()) == cfg);
  auto other = cfg;
  other.rope_scaling.factor = 4.0;
  CHECK_FALSE(other == cfg);
  auto linear = cfg;
  linear.rope_scaling = {.type = nn::RopeScalingType::linear, .factor = 2.0};
  CHECK(linear.rope_freq_factors() == std::vector<float>(8, 2.0f));
  CHECK(TransformerConfig::from_json(linear.to_json()) == linear);
  // Bad scalings name what is wrong.
  auto bad = cfg;
  bad.rope_scaling = {.type = nn::RopeScalingType::factors, .factors = {1.0f, 2.0f}};
  CHECK_THROWS_WITH(bad.validate(),
                    Catch::Contains("2 RoPE frequency factors") && Catch::Contains("need 8"));
  bad.rope_scaling = {.type = nn::RopeScalingType::factors, .factors = std::vector<float>(8, 0.0f)};
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("factor 0 is 0"));
  bad.rope_scaling = cfg.rope_scaling;
  bad.rope_scaling.high_freq_factor = 0.5;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("low_freq_factor"));
  auto gpt2 = TransformerConfig::gpt2(100, 64, 1, 64, 4);
  gpt2.rope_scaling = {.type = nn::RopeScalingType::linear, .factor = 2.0};
  CHECK_THROWS_WITH(gpt2.validate(), Catch::Contains("Llama family only"));
}

TEST_CASE("forward rejects bad ids and lengths, loading rejects other configs", "[nn]") {
  const auto cfg = TransformerConfig::gpt2(50, 8, 1, 16, 2);
  nn::TransformerLM model(cfg);
  CHECK_THROWS_WITH(model.forward(Tensor<int32_t>::zeros({1, 9})),
                    Catch::Contains("context length 8"));
  CHECK_THROWS_WITH(model.forward(Tensor<int32_t>::full({1, 3}, 50)),
                    Catch::Contains("token id 50"));
  CHECK_THROWS_AS(model.forward(Tensor<int32_t>::zeros({3})), ShapeError);
  nn::TransformerLM other(TransformerConfig::gpt2(50, 8, 1, 32, 2));
  std::vector<std::pair<std::string, Tensor<float>>> w;
  for (const auto& p : other.named_parameters()) w.emplace_back(p.name, p.var.value());
  CHECK_THROWS_WITH(model.load_weights(w), Catch::Contains("transformer.wte.weight") &&
                                               Catch::Contains("[50, 32]") &&
                                               Catch::Contains("[50, 16]"));
  w.clear();
  for (const auto& p : model.named_parameters()) w.emplace_back(p.name, p.var.value());
  w.pop_back();
  CHECK_THROWS_WITH(model.load_weights(w),
                    Catch::Contains("missing parameter 'transformer.ln_f.bias'"));
  for (const auto& p : model.named_parameters()) w.emplace_back(p.name + ".extra", p.var.value());
  w.emplace_back("transformer.ln_f.bias", model.parameter("transformer.ln_f.bias").value());
  CHECK_THROWS_WITH(model.load_weights(w), Catch::Contains("not a parameter"));
  CHECK_NOTHROW(model.load_weights(w, /*allow_extra=*/true));
}

TEST_CASE("named modules, freezing by name pattern, and the optimizer keeps no frozen state",
          "[nn][optim]") {
  const auto cfg = TransformerConfig::gpt2(64, 16, 2, 32, 4);
  nn::TransformerLM model(cfg, 3);
  // Modules by dotted name, as PyTorch's named_modules().
  std::vector<std::string> names;
  for (const auto& [name, m] : model.named_modules()) names.push_back(name);
  CHECK(names.front().empty());
  for (const char* want : {"transformer", "transformer.h.0", "transformer.h.1.attn.c_attn",
                           "transformer.h.1.mlp.c_proj", "transformer.ln_f"})
    CHECK(std::find(names.begin(), names.end(), want) != names.end());
  const auto& as_const = static_cast<const nn::TransformerLM&>(model);
  CHECK(as_const.named_modules().size() == names.size());

  const int64_t all = model.parameter_count();
  CHECK(model.trainable_parameter_count() == all);
  // Freeze block 0 and the embeddings.
  const int64_t n = model.freeze(R"(transformer\.(h\.0\..*|wte\.weight|wpe\.weight))");
  CHECK(n == 12 + 2);  // a GPT-2 block has 12 tensors
  int64_t frozen = 0;
  for (const auto& p : model.named_parameters())
    if (!p.var.requires_grad()) frozen += p.var.value().numel();
  CHECK(model.trainable_parameter_count() == all - frozen);
  CHECK_THROWS_WITH(model.freeze("transformer.h.9.*"),
                    Catch::Contains("no parameter name matches"));
  CHECK_THROWS_WITH(model.freeze("(unclosed"), Catch::Contains("not a valid regular expression"));

  optim::AdamW opt(model.named_parameters(), {.lr = 1e-2f});
  CHECK(opt.state_bytes() == 2 * 4 * (all - frozen));  // m and v for trainable weights only
  const auto before = model.parameter("transformer.h.0.attn.c_attn.weight").value().clone();
  const auto before1 = model.parameter("transformer.h.1.attn.c_attn.weight").value().clone();
  const auto ids = Tensor<int32_t>::from({1, 6}, {1, 2, 3, 4, 5, 6});
  const auto tgt = Tensor<int32_t>::from({1, 6}, {2, 3, 4, 5, 6, 7});
  model.loss(ids, tgt).backward();
  CHECK_FALSE(model.parameter("transformer.h.0.attn.c_attn.weight").grad().defined());
  CHECK(model.parameter("transformer.h.1.attn.c_attn.weight").grad().defined());
  opt.step();
  CHECK(max_abs_diff(model.parameter("transformer.h.0.attn.c_attn.weight").value(), before) == 0);
  CHECK(max_abs_diff(model.parameter("transformer.h.1.attn.c_attn.weight").value(), before1) > 0);
  for (const auto& [name, t] : opt.state())
    CHECK(name.find("transformer.h.0.") == std::string::npos);
  // State round trip with frozen parameters: the restored optimizer continues bit for bit.
  optim::AdamW again(model.named_parameters(), {.lr = 1e-2f});
  again.load_state(opt.state(), opt.steps());
  CHECK(again.state_bytes() == opt.state_bytes());
  // Unfreezing brings the parameters back; they get moments at their first step.
  CHECK(model.unfreeze(R"(transformer\.h\.0\..*)") == 12);
  model.zero_grad();
  model.loss(ids, tgt).backward();
  opt.step();
  CHECK(max_abs_diff(model.parameter("transformer.h.0.attn.c_attn.weight").value(), before) > 0);
  CHECK(opt.state_bytes() > 2 * 4 * (all - frozen));
}
