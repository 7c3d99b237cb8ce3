// Adapters at inference: a trained nn LoRA model and an inference model running its adapter
// unmerged give the same logits (GPT-2; Llama from an HF layout and from llama.cpp's permuted GGUF
// layout), several sessions run different adapters over one base at once, merging matches the
// unmerged form, and llama.cpp LoRA GGUF files round-trip and refuse what is not theirs.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <thread>

#include "scholar/finetune/adapter.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/text/chat.hpp"
#include "support.hpp"

using namespace scholar;

namespace {

std::string temp_dir(const std::string& name) {
  return test::temp_dir("adapters", name);
}

double rel_err(std::span<const float> got, const float* want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::fabs(want[i])));
  }
  return num / std::max(den, 1e-30);
}

nn::TransformerConfig config(bool llama) {
  return llama ? nn::TransformerConfig::llama(96, 32, 2, 64, 4, 2, 96)
               : nn::TransformerConfig::gpt2(96, 32, 2, 64, 4);
}

// An nn model with LoRA on every linear layer and non-zero B (as after training), and the
// inference model of its base (taken before the adapters existed).
struct Trained {
  std::unique_ptr<nn::TransformerLM> lm;
  std::shared_ptr<const infer::Model> base;
  Trained(bool llama, uint64_t seed, bool rslora = false, float b_std = 0.2f) {
    lm = std::make_unique<nn::TransformerLM>(config(llama), 1);
    base = infer::Model::from_module(*lm);
    nn::LoraConfig lc;
    lc.r = 4;
    lc.lora_alpha = 8;
    lc.use_rslora = rslora;
    lc.target_modules = {"all-linear"};
    lc.seed = seed;
    nn::apply_lora(*lm, lc);
    Generator g(seed);
    for (const auto& [name, l] : nn::lora_layers(*lm)) {
      autograd::Var b = l->lora_b();
      b.set_value(randn(b.shape(), g, 0.0f, b_std));
    }
    lm->eval();
  }
};

const std::vector<int32_t> kIds = {3, 17, 42, 8, 91, 5, 60, 23, 11};

// The nn model's logits of the last position of kIds.
std::vector<float> nn_last_logits(const nn::TransformerLM& lm) {
  Tensor<int32_t> ids = Tensor<int32_t>::empty({1, static_cast<int64_t>(kIds.size())});
  std::copy(kIds.begin(), kIds.end(), ids.data());
  const Tensor<float> l = lm.forward(ids).value();
  const int64_t V = l.size(2), T = l.size(1);
  return std::vector<float>(l.data() + (T - 1) * V, l.data() + T * V);
}

std::vector<float> session_logits(infer::Session& s) {
  s.clear();
  const auto l = s.prefill(kIds);
  return std::vector<float>(l.begin(), l.end());
}

}  // namespace

TEST_CASE("an inference model runs a trained LoRA adapter unmerged, as the nn model computes",
          "[adapters]") {
  for (const bool llama : {false, true}) {
    INFO((llama ? "llama" : "gpt2"));
    Trained t(llama, 3, /*rslora=*/llama);
    const std::vector<float> want = nn_last_logits(*t.lm);
    const finetune::LoraWeights w = finetune::lora_weights(*t.lm);
    CHECK(w.layers.size() == (llama ? 14u : 8u));

    infer::Session plain(t.base), with(t.base);
    with.set_adapter(finetune::to_infer_adapter(w, *t.base));
    CHECK(rel_err(session_logits(with), want.data()) < 1e-4);
    CHECK(rel_err(session_logits(plain), want.data()) > 1e-3);  // the adapter matters

    // Llama through llama.cpp's layout: GGUF export permutes Q/K rows; the adapter follows.
    if (llama) {
      const std::string gguf = temp_dir("hf_to_gguf") + "/base.gguf";
      t.base->save_gguf(gguf, WeightType::f32);
      auto from_gguf = infer::Model::load(gguf);
      REQUIRE(from_gguf->config().rope_style == kernels::RopeStyle::interleaved);
      infer::Session g(from_gguf);
      g.set_adapter(finetune::to_infer_adapter(w, *from_gguf));
      CHECK(rel_err(session_logits(g), want.data()) < 1e-4);
    }

    // Scales: 0 is the base, 0.5 twice is 1.
    const auto ad = finetune::to_infer_adapter(w, *t.base);
    with.set_adapters({{ad, 0.0f}});
    CHECK(rel_err(session_logits(with), session_logits(plain).data()) < 1e-6);
    with.set_adapters({{ad, 0.5f}, {ad, 0.5f}});
    CHECK(rel_err(session_logits(with), want.data()) < 1e-4);

    // Merged into a new model: the same logits (f32), the original model untouched.
    auto merged = t.base->merged({{ad, 1.0f}});
    infer::Session m(merged);
    CHECK(rel_err(session_logits(m), want.data()) < 1e-4);
    CHECK(rel_err(session_logits(plain), session_logits(with).data()) > 1e-3);
  }
}

TEST_CASE("merging into a quantized base re-quantizes: the logits move by rounding only",
          "[adapters][quant]") {
  // An update about a tenth of the weights' size, as fine-tuning makes (B ~ N(0, 0.02)).
  Trained t(false, 5, false, 0.02f);
  const auto ad = finetune::to_infer_adapter(finetune::lora_weights(*t.lm), *t.base);
  for (WeightType type : {WeightType::q8_0, WeightType::q4_0}) {
    INFO(weight_type_name(type));
    auto q = t.base->converted(type);
    infer::Session unmerged(q);
    unmerged.set_adapter(ad);
    const auto a = session_logits(unmerged);
    auto merged = q->merged({{ad, 1.0f}});
    CHECK(merged->weight_type_summary() == std::string(weight_type_name(type)));
    infer::Session m(merged);
    const double e = rel_err(session_logits(m), a.data());
    // Against the rounding the base already has: the same unmerged adapter on the f32 base.
    infer::Session f32(t.base);
    f32.set_adapter(ad);
    const double base_err = rel_err(a, session_logits(f32).data());
    INFO("merged vs unmerged " << e << ", quantized vs f32 " << base_err);
    CHECK(e > 0.0);
    CHECK(e < 1.5 * base_err);
  }
}

TEST_CASE("sessions over one base run different adapters at the same time", "[adapters]") {
  // Two adapters trained on one base (different seeds): each session gives its own model's logits
  // while the other decodes on another thread.
  Trained t1(false, 11), t2(false, 12);
  const auto a1 = finetune::to_infer_adapter(finetune::lora_weights(*t1.lm), *t1.base);
  const auto a2 = finetune::to_infer_adapter(finetune::lora_weights(*t2.lm), *t1.base);
  const auto want1 = nn_last_logits(*t1.lm), want2 = nn_last_logits(*t2.lm);
  ThreadPool p1(1), p2(1);
  infer::SessionOptions o1, o2;
  o1.pool = &p1;
  o2.pool = &p2;
  infer::Session s1(t1.base, o1), s2(t1.base, o2);
  s1.set_adapter(a1);
  s2.set_adapter(a2);
  std::vector<float> got1, got2;
  for (int round = 0; round < 3; ++round) {
    std::thread th([&] { got2 = session_logits(s2); });
    got1 = session_logits(s1);
    th.join();
    CHECK(rel_err(got1, want1.data()) < 1e-4);
    CHECK(rel_err(got2, want2.data()) < 1e-4);
  }
}

TEST_CASE("llama.cpp LoRA GGUF files round-trip and refuse what is not theirs", "[adapters]") {
  for (const bool llama : {false, true}) {
    INFO((llama ? "llama" : "gpt2"));
    Trained t(llama, 7, /*rslora=*/llama);
    const finetune::LoraWeights w = finetune::lora_weights(*t.lm);
    const std::string path = temp_dir("gguf_" + std::to_string(llama)) + "/adapter.gguf";
    finetune::save_lora_gguf(w, t.lm->config(), path);

    const io::GgufFile f = io::GgufFile::open(path);
    CHECK(f.get("general.type").as_string() == "adapter");
    CHECK(f.get("adapter.type").as_string() == "lora");
    CHECK(f.get("general.architecture").as_string() == (llama ? "llama" : "gpt2"));
    // llama.cpp's scale alpha / r equals the adapter's (rsLoRA: alpha / sqrt(r)).
    const double gguf_alpha = f.get("adapter.lora.alpha").as_double();
    CHECK(std::fabs(gguf_alpha / 4.0 - w.scale(w.layers[0])) < 1e-6);
    const std::string q = llama ? "blk.0.attn_q.weight" : "blk.0.attn_qkv.weight";
    CHECK(f.info(q + ".lora_a").shape == Shape{4, 64});
    CHECK(f.info(q + ".lora_b").shape == Shape{llama ? 64 : 192, 4});

    const finetune::LoraWeights back = finetune::read_lora(path, t.lm->config());
    REQUIRE(back.layers.size() == w.layers.size());
    for (const auto& l : w.layers) {
      const auto it = std::find_if(back.layers.begin(), back.layers.end(),
                                   [&](const auto& b) { return b.module == l.module; });
      REQUIRE(it != back.layers.end());
      CHECK(max_abs_diff(it->a, l.a) == 0.0);
      CHECK(max_abs_diff(it->b, l.b) == 0.0);  // Q/K rows permuted there and back
      CHECK(std::fabs(back.scale(*it) - w.scale(l)) < 1e-6);
    }
    // Read back and run: the trained model's logits.
    infer::Session s(t.base);
    s.set_adapter(finetune::to_infer_adapter(back, *t.base));
    CHECK(rel_err(session_logits(s), nn_last_logits(*t.lm).data()) < 1e-4);
  }
  // Refusals.
  Trained g(false, 9), l(true, 9);
  const std::string dir = temp_dir("refusals");
  finetune::save_lora_gguf(finetune::lora_weights(*g.lm), g.lm->config(), dir + "/gpt2.gguf");
  CHECK_THROWS_WITH(finetune::read_lora(dir + "/gpt2.gguf", l.lm->config()),
                    Catch::Contains("architecture 'gpt2'") && Catch::Contains("'llama'"));
  g.base->save_gguf(dir + "/model.gguf", WeightType::f32);
  CHECK_THROWS_WITH(finetune::read_lora(dir + "/model.gguf", g.lm->config()),
                    Catch::Contains("not 'adapter'"));
  // An adapter for a wider model of the same family.
  Trained wide(false, 9);
  auto other = nn::TransformerConfig::gpt2(96, 32, 2, 32, 4);
  nn::TransformerLM small(other);
  CHECK_THROWS_AS(finetune::to_infer_adapter(finetune::lora_weights(*wide.lm),
                                             *infer::Model::from_module(small)),
                  ShapeError);
  // Biases cannot travel in a low-rank file.
  nn::TransformerLM withbias(config(false));
  nn::LoraConfig lc;
  lc.bias = "lora_only";
  nn::apply_lora(withbias, lc);
  CHECK_THROWS_WITH(finetune::save_lora_gguf(finetune::lora_weights(withbias), withbias.config(),
                                             dir + "/bias.gguf"),
                    Catch::Contains("biases"));
}

TEST_CASE("a merged LoRA model exports as a Hugging Face directory, chat template included",
          "[adapters]") {
  nn::TransformerLM lm(nn::TransformerConfig::llama(256, 32, 2, 64, 4, 2, 96), 1);
  nn::LoraConfig lc;
  lc.target_modules = {"all-linear"};
  nn::apply_lora(lm, lc);
  Generator g(4);
  for (const auto& [name, l] : nn::lora_layers(lm)) {
    autograd::Var b = l->lora_b();
    b.set_value(randn(b.shape(), g, 0.0f, 0.2f));
  }
  lm.eval();
  auto tok = std::make_shared<text::BpeTokenizer>();  // the 256 byte tokens
  tok->set_chat_template("{% for message in messages %}{{'<|im_start|>' + message['role'] }}");
  const std::string dir = temp_dir("hf_export");
  CHECK_THROWS_WITH(nn::save_hf_dir(lm, dir, tok.get()), Catch::Contains("unmerged LoRA"));
  nn::merge_lora(lm);
  nn::save_hf_dir(lm, dir, tok.get());
  const auto back = infer::Model::load(dir);
  CHECK(back->tokenizer().chat_template() == tok->chat_template());
  REQUIRE(text::ChatTemplate::detect(back->tokenizer().chat_template()).has_value());
  infer::Session s(back);
  CHECK(rel_err(session_logits(s), nn_last_logits(lm).data()) < 1e-4);
  // Nothing quantized can be written as f32 weights.
  nn::unmerge_lora(lm);
  nn::quantize_linears(lm, WeightType::q8_0);
  nn::merge_lora(lm);
  CHECK_THROWS_WITH(nn::save_hf_dir(lm, dir, tok.get()), Catch::Contains("quantized"));
}
