// LoRA: adapters leave the model unchanged at step 0 and train alone; agreement with PyTorch
// running PEFT's math (tests/reference/make_lora_fixtures.py) for logits, loss, gradients and the
// merged model; the PEFT file layout both ways; a quantized base; and every refusal.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "scholar/finetune/adapter.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/tensor/ops.hpp"
#include "support.hpp"

using namespace scholar;
using autograd::Var;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  return test::temp_dir("lora", name);
}

double rel_error(const Tensor<float>& got, const Tensor<float>& want) {
  double scale = 0;
  const auto w = want.contiguous();
  for (int64_t i = 0; i < w.numel(); ++i) scale = std::max(scale, std::fabs(double{w.data()[i]}));
  return max_abs_diff(got, want) / std::max(scale, 1e-30);
}

std::string data(const std::string& rel) {
  return std::string(SCHOLAR_TEST_DATA "/") + rel;
}

// A tiny model of make_model_fixtures.py with its weights, ids and targets.
struct Base {
  io::SafetensorsFile file;
  std::unique_ptr<nn::TransformerLM> model;
  Tensor<int32_t> ids, targets;
  explicit Base(const std::string& name)
      : file(io::SafetensorsFile::open(data(name + ".safetensors"))) {
    const auto cfg =
        nn::TransformerConfig::from_json(io::Json::parse(file.metadata().at("config")));
    model = std::make_unique<nn::TransformerLM>(cfg);
    std::vector<std::pair<std::string, Tensor<float>>> w;
    for (const auto& t : file.tensors())
      if (t.name.rfind("w.", 0) == 0) w.emplace_back(t.name.substr(2), file.load<float>(t.name));
    model->load_weights(w);
    ids = file.load<int32_t>("ids");
    targets = file.load<int32_t>("targets");
  }
};

nn::TransformerConfig small_gpt2() {
  return nn::TransformerConfig::gpt2(/*vocab=*/96, /*context=*/32, /*layers=*/2, /*width=*/64,
                                     /*heads=*/4);
}

Tensor<int32_t> some_ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Tensor<int32_t> ids = Tensor<int32_t>::empty({B, T});
  Generator g(seed);
  for (int64_t i = 0; i < B * T; ++i) ids.data()[i] = static_cast<int32_t>(g.next_u32() % V);
  return ids;
}

}  // namespace

TEST_CASE("LoRA leaves the model unchanged at step 0 and trains only the adapters", "[lora]") {
  nn::TransformerLM model(small_gpt2(), 3);
  const auto ids = some_ids(2, 16, 96, 1), targets = some_ids(2, 16, 96, 2);
  const Tensor<float> before = model.forward(ids).value().clone();
  const int64_t total_before = model.parameter_count();

  nn::LoraConfig lc;
  lc.r = 4;
  lc.lora_alpha = 8;
  lc.target_modules = {"all-linear"};
  const nn::LoraSummary s = nn::apply_lora(model, lc);
  CHECK(s.layers.size() == 8);  // c_attn, attn.c_proj, c_fc, mlp.c_proj in each of 2 blocks
  CHECK(s.lora_scaling == 2.0);
  // A [4, in] and B [out, 4] per layer: in + out = 64+192, 64+64, 64+256, 256+64 per block.
  CHECK(s.adapter_parameters == 2 * 4 * ((64 + 192) + (64 + 64) + (64 + 256) + (256 + 64)));
  CHECK(s.trainable_parameters == s.adapter_parameters);
  CHECK(s.total_parameters == total_before + s.adapter_parameters);
  CHECK(s.trainable_share() < 0.1);
  INFO(s.str());
  CHECK(s.str().find("8 layers") != std::string::npos);
  CHECK(model.parameter("transformer.h.0.attn.c_attn.lora_A.weight").shape() == Shape{4, 64});
  CHECK(model.parameter("transformer.h.1.mlp.c_proj.lora_B.weight").shape() == Shape{64, 4});
  // B is zero, so the output is bit for bit what it was.
  CHECK(max_abs_diff(model.forward(ids).value(), before) == 0.0);

  // A few AdamW steps: the loss falls, the base does not move, only adapters have state.
  optim::AdamW opt(model.named_parameters(), {.lr = 1e-2f});
  const Tensor<float> wte = model.parameter("transformer.wte.weight").value().clone();
  const Tensor<float> c_fc = model.parameter("transformer.h.0.mlp.c_fc.weight").value().clone();
  float first = 0, last = 0;
  for (int step = 0; step < 8; ++step) {
    model.zero_grad();
    autograd::Var loss = model.loss(ids, targets);
    loss.backward();
    for (const auto& p : model.named_parameters())
      if (!p.var.requires_grad()) CHECK_FALSE(p.var.grad().defined());
    opt.step();
    (step == 0 ? first : last) = loss.value().item();
  }
  CHECK(last < first - 0.05f);
  CHECK(max_abs_diff(model.parameter("transformer.wte.weight").value(), wte) == 0.0);
  CHECK(max_abs_diff(model.parameter("transformer.h.0.mlp.c_fc.weight").value(), c_fc) == 0.0);
  CHECK(opt.state_bytes() == 2 * s.adapter_parameters * static_cast<int64_t>(sizeof(float)));

  // Merged and unmerged logits agree; unmerge restores the base weight.
  const Tensor<float> adapted = model.forward(ids).value().clone();
  CHECK(nn::merge_lora(model) == 8);
  CHECK(rel_error(model.forward(ids).value(), adapted) < 1e-5);
  CHECK(nn::unmerge_lora(model) == 8);
  CHECK(rel_error(model.parameter("transformer.h.0.mlp.c_fc.weight").value(), c_fc) < 1e-6);
  CHECK(rel_error(model.forward(ids).value(), adapted) < 1e-6);
  // Removing the adapters gives back the base model (to the rounding of merge and unmerge).
  CHECK(nn::remove_lora(model) == 8);
  CHECK(model.parameter_count() == total_before);
  CHECK(rel_error(model.forward(ids).value(), before) < 1e-6);
}

TEST_CASE("LoRA targets as PEFT matches them", "[lora]") {
  nn::TransformerLM gpt2(small_gpt2());
  nn::LoraConfig lc;  // empty: the family default (c_attn)
  CHECK(nn::lora_targets(gpt2, lc, nn::default_lora_targets(gpt2.config())) ==
        std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"});
  lc.target_modules = {"c_proj"};  // suffix match: attention and MLP projections
  CHECK(nn::lora_targets(gpt2, lc).size() == 4);
  lc.target_modules = {"attn.c_proj"};
  CHECK(nn::lora_targets(gpt2, lc).size() == 2);
  lc.target_modules.clear();
  lc.target_regex = R"(transformer\.h\.1\..*c_(attn|fc))";
  CHECK(nn::lora_targets(gpt2, lc) ==
        std::vector<std::string>{"transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_fc"});

  nn::TransformerLM llama(nn::TransformerConfig::llama(64, 32, 2, 32, 4, 2, 48));
  nn::LoraConfig ll;
  const auto summary = nn::apply_lora(llama, ll);  // q_proj and v_proj by default
  CHECK(summary.layers.size() == 4);
  nn::remove_lora(llama);
  ll.target_modules = {"all-linear"};  // 7 per block; the untied lm_head is left alone
  CHECK(nn::lora_targets(llama, ll).size() == 14);
}

TEST_CASE("LoRA agrees with PyTorch running PEFT's math", "[lora][torch]") {
  for (const auto& [model_name, case_name] :
       {std::pair<std::string, std::string>{"gpt2_tiny", "gpt2_tiny_r4"},
        std::pair<std::string, std::string>{"llama_tiny", "llama_tiny_rslora"}}) {
    INFO(case_name);
    Base base(model_name);
    const auto want =
        io::SafetensorsFile::open(data("lora/" + case_name + ".expected.safetensors"));
    const nn::LoraSummary s = finetune::load_peft_adapter(*base.model, data("lora/" + case_name));
    CHECK(s.layers.size() == (model_name == "gpt2_tiny" ? 8u : 14u));

    autograd::Var logits = base.model->forward(base.ids);
    CHECK(rel_error(logits.value(), want.load<float>("logits")) < 1e-4);
    autograd::Var loss = autograd::cross_entropy(logits, base.targets);
    const float want_loss = want.load<float>("loss").item();
    CHECK(std::fabs(loss.value().item() - want_loss) <= 1e-4 * std::fabs(want_loss));
    loss.backward();
    int checked = 0;
    for (const auto& p : base.model->named_parameters()) {
      if (!p.var.requires_grad()) {
        CHECK_FALSE(p.var.grad().defined());
        continue;
      }
      INFO(p.name);
      REQUIRE(want.contains("grad." + p.name));
      CHECK(rel_error(p.var.grad(), want.load<float>("grad." + p.name)) < 1e-3);
      ++checked;
    }
    int expected = 0;
    for (const auto& t : want.tensors()) expected += t.name.rfind("grad.", 0) == 0;
    CHECK(checked == expected);

    nn::merge_lora(*base.model);
    CHECK(rel_error(base.model->forward(base.ids).value(), want.load<float>("merged_logits")) <
          1e-4);
    nn::unmerge_lora(*base.model);
    CHECK(rel_error(base.model->forward(base.ids).value(), logits.value()) < 1e-5);
  }
}

TEST_CASE("adapters round-trip in PEFT's layout", "[lora]") {
  Base base("gpt2_tiny");
  finetune::load_peft_adapter(*base.model, data("lora/gpt2_tiny_r4"));
  const std::string dir = temp_dir("roundtrip");
  finetune::save_peft_adapter(*base.model, dir, {.base_model_name_or_path = "gpt2_tiny"});

  const io::Json j = io::Json::parse(io::read_file(dir + "/adapter_config.json"));
  CHECK(j.at("peft_type").as_string() == "LORA");
  CHECK(j.at("r").as_int() == 4);
  CHECK(j.at("lora_alpha").as_double() == 8.0);
  CHECK(j.at("bias").as_string() == "lora_only");
  CHECK(j.at("fan_in_fan_out").as_bool());
  CHECK(j.at("base_model_name_or_path").as_string() == "gpt2_tiny");
  std::vector<std::string> targets;
  for (const auto& t : j.at("target_modules").as_array()) targets.push_back(t.as_string());
  CHECK(targets == std::vector<std::string>{"c_attn", "c_fc", "c_proj"});

  // The same tensors as the PyTorch-written file, bit for bit.
  const auto ours = io::SafetensorsFile::open(dir + "/adapter_model.safetensors");
  const auto theirs =
      io::SafetensorsFile::open(data("lora/gpt2_tiny_r4/adapter_model.safetensors"));
  CHECK(ours.tensors().size() == theirs.tensors().size());
  for (const auto& t : theirs.tensors()) {
    INFO(t.name);
    REQUIRE(ours.contains(t.name));
    CHECK(max_abs_diff(ours.load<float>(t.name), theirs.load<float>(t.name)) == 0.0);
  }

  // Read back onto a fresh base: the same logits.
  Base again("gpt2_tiny");
  finetune::load_peft_adapter(*again.model, dir);
  CHECK(max_abs_diff(again.model->forward(again.ids).value(),
                     base.model->forward(base.ids).value()) == 0.0);

  // Targets that last name parts would over-select are written as full names.
  nn::TransformerLM m(small_gpt2());
  nn::LoraConfig lc;
  lc.target_regex = R"(transformer\.h\.0\.attn\.c_proj)";
  nn::apply_lora(m, lc);
  const std::string dir2 = temp_dir("full_names");
  finetune::save_peft_adapter(m, dir2);
  const io::Json j2 = io::Json::parse(io::read_file(dir2 + "/adapter_config.json"));
  REQUIRE(j2.at("target_modules").size() == 1);
  CHECK(j2.at("target_modules").as_array()[0].as_string() == "transformer.h.0.attn.c_proj");
  CHECK(j2.at("bias").as_string() == "none");
  nn::TransformerLM m2(small_gpt2());
  CHECK(finetune::load_peft_adapter(m2, dir2).layers ==
        std::vector<std::string>{"transformer.h.0.attn.c_proj"});
}

TEST_CASE("LoRA over a quantized base: the same gradients as over its f32 image", "[lora][quant]") {
  for (WeightType t : {WeightType::q8_0, WeightType::q4_0}) {
    INFO(weight_type_name(t));
    const auto ids = some_ids(2, 16, 96, 5), targets = some_ids(2, 16, 96, 6);
    nn::TransformerLM q(small_gpt2(), 7), f(small_gpt2(), 7);
    nn::LoraConfig lc;
    lc.target_modules = {"c_attn", "c_fc"};
    lc.r = 4;
    nn::apply_lora(q, lc);
    nn::apply_lora(f, lc);
    const int64_t before = q.parameter_count();
    const int64_t bytes = nn::quantize_linears(q, t);
    // Every linear layer: 64 x (192 + 64 + 256) and 256 x 64 weights, 2 blocks.
    const int64_t values = 2 * 64 * (192 + 64 + 256 + 256);
    CHECK(bytes == static_cast<int64_t>(row_bytes(t, values)));
    CHECK(q.parameter_count() == before - values);
    // The token and position tables too (GPT-2 ties the output head to the token table).
    const int64_t table_bytes = nn::quantize_embeddings(q, t);
    CHECK(table_bytes == static_cast<int64_t>(row_bytes(t, (96 + 32) * 64)));
    // The f32 model gets the quantized model's weights, dequantized.
    for (auto& [name, l] : q.named_modules()) {
      if (auto* ql = dynamic_cast<nn::Linear*>(l); ql && ql->quantized()) {
        Var w = f.parameter(name + ".weight");
        w.set_value(ql->dense_weight());
      }
      if (auto* qe = dynamic_cast<nn::Embedding*>(l); qe && qe->quantized()) {
        Var w = f.parameter(name + ".weight");
        w.set_value(qe->compact_weight()->dequantize());
      }
    }
    // Make B non-zero (as after training) in both.
    Generator g(9);
    for (const auto& p : q.named_parameters())
      if (p.name.find("lora_B") != std::string::npos) {
        Tensor<float> b = randn(p.var.shape(), g, 0.0f, 0.1f);
        Var fb = f.parameter(p.name);
        fb.set_value(b.clone());
        Var qb = p.var;
        qb.set_value(b);
      }
    autograd::Var lq = q.loss(ids, targets), lf = f.loss(ids, targets);
    CHECK(std::fabs(lq.value().item() - lf.value().item()) < 1e-5);
    lq.backward();
    lf.backward();
    for (const auto& p : q.named_parameters())
      if (p.var.requires_grad()) {
        INFO(p.name);
        CHECK(rel_error(p.var.grad(), f.parameter(p.name).grad()) < 1e-4);
      }
    // Merging into a quantized weight re-quantizes it: the logits move by quantization error only.
    const Tensor<float> adapted = q.forward(ids).value().clone();
    nn::merge_lora(q);
    CHECK(rel_error(q.forward(ids).value(), adapted) < (t == WeightType::q8_0 ? 0.02 : 0.2));
    nn::unmerge_lora(q);
  }
}

TEST_CASE("bad LoRA configs and adapters are refused with a clear error", "[lora][errors]") {
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  using Catch::Matchers::Contains;
  nn::TransformerLM model(small_gpt2());
  nn::LoraConfig lc;
  lc.target_modules = {"q_proj"};
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }),
             Contains("match no linear layer") && Contains("transformer.h.0.attn.c_attn"));
  lc.target_modules = {"attn"};
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("is not a linear layer"));
  lc.target_modules = {"c_attn"};
  lc.r = 0;
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("r must be >= 1"));
  lc.r = 65;
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("larger than layer"));
  lc.r = 4;
  lc.lora_alpha = 0;
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("lora_alpha must be > 0"));
  lc.lora_alpha = 8;
  lc.bias = "some";
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("bias must be"));
  lc.bias = "none";
  lc.target_regex = "(";
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("not both"));
  lc.target_modules.clear();
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("not a valid regular"));
  lc.target_regex.clear();
  // Nothing above changed the model.
  CHECK(model.trainable_parameter_count() == model.parameter_count());
  CHECK_THAT(message([&] { finetune::save_peft_adapter(model, temp_dir("none")); }),
             Contains("no LoRA adapters"));
  nn::apply_lora(model, lc);
  CHECK_THAT(message([&] { nn::apply_lora(model, lc); }), Contains("already has adapters"));
  nn::TransformerLM trainable(small_gpt2());
  CHECK_THAT(message([&] { nn::quantize_linears(trainable, WeightType::q8_0); }),
             Contains("is trainable"));
  CHECK_THAT(message([&] { nn::quantize_embeddings(trainable, WeightType::q8_0); }),
             Contains("is trainable"));

  // Adapters for another base.
  {
    nn::TransformerLM other(small_gpt2());
    CHECK_THAT(message([&] { finetune::load_peft_adapter(other, data("lora/llama_tiny_rslora")); }),
               Contains("match no linear layer"));
    CHECK_THAT(message([&] { finetune::load_peft_adapter(other, data("lora/gpt2_tiny_r4")); }),
               Contains("has shape") && Contains("another base"));
    CHECK(other.trainable_parameter_count() == other.parameter_count());  // unchanged
  }
  // Config options scholar does not implement, and damaged files.
  const std::string src = data("lora/gpt2_tiny_r4");
  auto variant = [&](const std::string& name, const std::string& key, io::Json value) {
    const std::string dir = temp_dir(name);
    fs::copy_file(src + "/adapter_model.safetensors", dir + "/adapter_model.safetensors");
    io::Json j = io::Json::parse(io::read_file(src + "/adapter_config.json"));
    j.set(key, std::move(value));
    io::write_file_atomic(dir + "/adapter_config.json", j.dump(2));
    return dir;
  };
  Base b("gpt2_tiny");
  CHECK_THAT(
      message([&] { finetune::load_peft_adapter(*b.model, variant("dora", "use_dora", true)); }),
      Contains("use_dora") && Contains("DoRA"));
  io::Json pattern = io::Json::object();
  pattern.set("transformer.h.0.attn.c_attn", 8);
  CHECK_THAT(message([&] {
               finetune::load_peft_adapter(*b.model,
                                           variant("rank_pattern", "rank_pattern", pattern));
             }),
             Contains("rank_pattern"));
  CHECK_THAT(message([&] {
               finetune::load_peft_adapter(*b.model,
                                           variant("prefix", "peft_type", "PREFIX_TUNING"));
             }),
             Contains("peft_type is 'PREFIX_TUNING'"));
  CHECK_THAT(message([&] { finetune::load_peft_adapter(*b.model, variant("rank", "r", 8)); }),
             Contains("has shape"));
  CHECK_THAT(message([&] { finetune::load_peft_adapter(*b.model, temp_dir("empty")); }),
             Contains("no adapter_config.json"));
  {
    // A file missing one layer's lora_B.
    const std::string dir = temp_dir("missing_b");
    fs::copy_file(src + "/adapter_config.json", dir + "/adapter_config.json");
    const auto f = io::SafetensorsFile::open(src + "/adapter_model.safetensors");
    io::SafetensorsWriter w;
    for (const auto& t : f.tensors())
      if (t.name != "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight")
        w.add(t.name, f.load<float>(t.name));
    w.save(dir + "/adapter_model.safetensors");
    CHECK_THAT(message([&] { finetune::load_peft_adapter(*b.model, dir); }),
               Contains("transformer.h.1.mlp.c_fc") && Contains("no lora_B"));
  }
  CHECK(b.model->trainable_parameter_count() == b.model->parameter_count());
}
