// A tiny GPT-2 and a tiny Llama (grouped-query attention, RoPE) against the same models in PyTorch
// 1.13 (tests/reference/make_model_fixtures.py): logits and loss to 1e-4, every gradient and the
// weights after three AdamW steps to 1e-3 (max |difference| / max |reference|).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "scholar/io/file.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/nn/transformer.hpp"
#include "scholar/optim/optim.hpp"
#include "scholar/tensor/ops.hpp"

using namespace scholar;

namespace {

double rel_error(const Tensor<float>& got, const Tensor<float>& want) {
  double scale = 0;
  const auto w = want.contiguous();
  for (int64_t i = 0; i < w.numel(); ++i) scale = std::max(scale, std::fabs(double{w.data()[i]}));
  return max_abs_diff(got, want) / std::max(scale, 1e-30);
}

// The query and value thirds of a QKV bias, without the key third.
Tensor<float> concat_halves(const Tensor<float>& b, int64_t C) {
  Tensor<float> out = Tensor<float>::empty({2 * C});
  out.slice(0, 0, C).copy_from(b.slice(0, 0, C));
  out.slice(0, C, 2 * C).copy_from(b.slice(0, 2 * C, 3 * C));
  return out;
}

struct Fixture {
  io::SafetensorsFile file;
  nn::TransformerConfig config;
  std::vector<std::pair<std::string, Tensor<float>>> weights;

  explicit Fixture(const std::string& name)
      : file(
            io::SafetensorsFile::open(std::string(SCHOLAR_TEST_DATA "/") + name + ".safetensors")) {
    config = nn::TransformerConfig::from_json(io::Json::parse(file.metadata().at("config")));
    for (const auto& t : file.tensors())
      if (t.name.rfind("w.", 0) == 0)
        weights.emplace_back(t.name.substr(2), file.load<float>(t.name));
  }
};

void check_model(const std::string& name) {
  Fixture f(name);
  nn::TransformerLM model(f.config);
  model.load_weights(f.weights);
  const auto ids = f.file.load<int32_t>("ids");
  const auto targets = f.file.load<int32_t>("targets");

  autograd::Var logits = model.forward(ids);
  const double logit_err = rel_error(logits.value(), f.file.load<float>("logits"));
  INFO(name << " logits max relative error " << logit_err);
  CHECK(logit_err <= 1e-4);
  autograd::Var loss = autograd::cross_entropy(logits, targets);
  const float want_loss = f.file.load<float>("loss").item();
  CHECK(std::fabs(loss.value().item() - want_loss) <= 1e-4 * std::fabs(want_loss));
  loss.backward();
  int checked = 0;
  for (const auto& p : model.named_parameters()) {
    const double e = rel_error(p.var.grad(), f.file.load<float>("grad." + p.name));
    INFO(name << " gradient of " << p.name << ": max relative error " << e);
    CHECK(e <= 1e-3);
    ++checked;
  }
  CHECK(checked == static_cast<int>(f.weights.size()));

  // Three AdamW steps with the fixture's hyperparameters.
  const io::Json adam = io::Json::parse(f.file.metadata().at("adamw"));
  nn::TransformerLM trained(f.config);
  trained.load_weights(f.weights);
  optim::AdamW opt(trained.named_parameters(),
                   {.lr = static_cast<float>(adam.at("lr").as_double()),
                    .beta1 = static_cast<float>(adam.at("betas").as_array()[0].as_double()),
                    .beta2 = static_cast<float>(adam.at("betas").as_array()[1].as_double()),
                    .eps = static_cast<float>(adam.at("eps").as_double()),
                    .weight_decay = static_cast<float>(adam.at("weight_decay").as_double())});
  for (int s = 0; s < 3; ++s) {
    opt.zero_grad();
    trained.loss(ids, targets).backward();
    opt.step();
  }
  const int64_t C = f.config.n_embd;
  for (const auto& p : trained.named_parameters()) {
    Tensor<float> got = p.var.value(), want = f.file.load<float>("step3." + p.name);
    if (p.name.find("attn.c_attn.bias") != std::string::npos) {
      // The key third of GPT-2's QKV bias has an exact gradient of zero (adding a constant to every
      // key shifts each softmax row uniformly), so its computed gradient is rounding noise, which
      // Adam's normalization turns into full-size steps of either sign in any implementation.
      CHECK(max_abs_diff(got.slice(0, C, 2 * C),
                         f.file.load<float>("w." + p.name).slice(0, C, 2 * C)) <=
            4 * 1e-2);  // at most lr per step
      got = concat_halves(got, C);
      want = concat_halves(want, C);
    }
    const double e = rel_error(got, want);
    INFO(name << " " << p.name << " after 3 AdamW steps: max relative error " << e);
    CHECK(e <= 1e-3);
  }
}

}  // namespace

TEST_CASE("tiny GPT-2 matches PyTorch: logits, loss, gradients, AdamW steps", "[torch][nn]") {
  check_model("gpt2_tiny");
}

TEST_CASE("tiny Llama with GQA and RoPE matches PyTorch", "[torch][nn]") {
  check_model("llama_tiny");
}

// Llama 3.1's RoPE scaling in the training model: the infer fixture's llama31 directory
// (tests/reference/make_infer_fixtures.py), run through nn::TransformerLM.
TEST_CASE("tiny Llama with Llama 3.1 RoPE scaling matches PyTorch in the training model",
          "[torch][nn]") {
  const std::string dir = std::string(SCHOLAR_TEST_DATA) + "/infer/llama31/";
  const auto config = nn::TransformerConfig::from_json(
      io::Json::parse(io::read_file(dir + "config.json"), dir + "config.json"));
  REQUIRE(config.rope_scaling.type == nn::RopeScalingType::llama3);
  nn::TransformerLM model(config);
  const auto weights_file = io::SafetensorsFile::open(dir + "model.safetensors");
  std::vector<std::pair<std::string, Tensor<float>>> weights;
  for (const auto& t : weights_file.tensors())
    weights.emplace_back(t.name, weights_file.load<float>(t.name));
  model.load_weights(weights);
  const auto want = io::SafetensorsFile::open(dir + "expected.safetensors");
  const auto prompt = want.load<int32_t>("prompt");
  const auto ids = prompt.reshape({1, prompt.numel()});
  const auto logits = model.forward(ids).value();
  const auto expected = want.load<float>("logits_f32");
  const double err = rel_error(logits.reshape(expected.shape()), expected);
  INFO("max relative error " << err);
  CHECK(err < 1e-4);
}
