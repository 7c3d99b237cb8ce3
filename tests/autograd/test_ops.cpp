// Every differentiable op, gradient-checked against central finite differences.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "gradcheck.hpp"

using namespace scholar;
using autograd::Var;
namespace ag = scholar::autograd;

namespace {
Tensor<float> rnd(const Shape& s, uint64_t seed, float stddev = 1.0f) {
  Generator g(seed);
  return randn(s, g, 0.0f, stddev);
}
}  // namespace

TEST_CASE("gradcheck: matmul, plain and batched with broadcasting", "[autograd]") {
  test::gradcheck("matmul 2d", [](const auto& v) { return ag::matmul(v[0], v[1]); },
                  {rnd({3, 4}, 1), rnd({4, 5}, 2)});
  test::gradcheck("matmul 3d", [](const auto& v) { return ag::matmul(v[0], v[1]); },
                  {rnd({2, 3, 4}, 3), rnd({2, 4, 2}, 4)});
  test::gradcheck("matmul 3d x 2d", [](const auto& v) { return ag::matmul(v[0], v[1]); },
                  {rnd({2, 3, 4}, 5), rnd({4, 2}, 6)});
  test::gradcheck("matmul batch 1 x 3", [](const auto& v) { return ag::matmul(v[0], v[1]); },
                  {rnd({1, 3, 4}, 7), rnd({3, 4, 2}, 8)});
}

TEST_CASE("gradcheck: linear in both weight layouts, with and without bias", "[autograd]") {
  test::gradcheck("linear out_in", [](const auto& v) { return ag::linear(v[0], v[1], v[2]); },
                  {rnd({2, 3, 5}, 1), rnd({4, 5}, 2), rnd({4}, 3)});
  test::gradcheck(
      "linear in_out",
      [](const auto& v) { return ag::linear(v[0], v[1], v[2], ag::WeightLayout::in_out); },
      {rnd({6, 5}, 4), rnd({5, 4}, 5), rnd({4}, 6)});
  test::gradcheck("linear no bias", [](const auto& v) { return ag::linear(v[0], v[1]); },
                  {rnd({6, 5}, 7), rnd({3, 5}, 8)});
}

TEST_CASE("gradcheck: the fused LoRA linear, with dropout, in both layouts", "[autograd][lora]") {
  // x, W, b, A [r, in], B [out, r]; every input gets a gradient (full fine-tuning plus adapters).
  test::gradcheck("lora_linear out_in",
                  [](const auto& v) {
                    return ag::lora_linear(v[0], v[1], v[2], ag::WeightLayout::out_in,
                                           {v[3], v[4], 1.5f, 0.0f, nullptr, true});
                  },
                  {rnd({2, 3, 5}, 1), rnd({4, 5}, 2), rnd({4}, 3), rnd({2, 5}, 4), rnd({4, 2}, 5)});
  test::gradcheck("lora_linear in_out",
                  [](const auto& v) {
                    return ag::lora_linear(v[0], v[1], ag::Var(), ag::WeightLayout::in_out,
                                           {v[2], v[3], 0.5f, 0.0f, nullptr, true});
                  },
                  {rnd({6, 5}, 6), rnd({5, 4}, 7), rnd({3, 5}, 8), rnd({4, 3}, 9)});
  // Dropout: the same mask on every evaluation (a generator seeded anew each time).
  test::gradcheck(
      "lora_linear dropout",
      [](const auto& v) {
        Generator gen(42);
        return ag::lora_linear(v[0], v[1], v[2], ag::WeightLayout::out_in,
                               {v[3], v[4], 2.0f, 0.3f, &gen, true});
      },
      {rnd({8, 6}, 10), rnd({4, 6}, 11), rnd({4}, 12), rnd({2, 6}, 13), rnd({4, 2}, 14)});
}

TEST_CASE("gradcheck: linear over a compact frozen weight, plain and with LoRA",
          "[autograd][lora]") {
  // The weight is frozen (no gradient); x, b, A, B get theirs through the panel products.
  for (WeightType t : {WeightType::q8_0, WeightType::q4_0, WeightType::f16}) {
    const auto w = std::make_shared<const ag::QuantizedWeight>(
        ag::QuantizedWeight::quantize(rnd({40, 64}, 20), t));
    const std::string name(weight_type_name(t));
    test::gradcheck("linear " + name, [&w](const auto& v) { return ag::linear(v[0], w, v[1]); },
                    {rnd({3, 64}, 21), rnd({40}, 22)});
    test::gradcheck("lora_linear " + name,
                    [&w](const auto& v) {
                      return ag::lora_linear(v[0], w, v[1], {v[2], v[3], 0.7f});
                    },
                    {rnd({5, 64}, 23), rnd({40}, 24), rnd({4, 64}, 25), rnd({40, 4}, 26)});
  }
}

TEST_CASE("gradcheck: broadcasting add, sub, mul and scale, sum and mean", "[autograd]") {
  test::gradcheck("add", [](const auto& v) { return ag::add(v[0], v[1]); },
                  {rnd({2, 3, 4}, 1), rnd({3, 1}, 2)});
  test::gradcheck("sub", [](const auto& v) { return ag::sub(v[0], v[1]); },
                  {rnd({4}, 3), rnd({2, 3, 4}, 4)});
  test::gradcheck("mul", [](const auto& v) { return ag::mul(v[0], v[1]); },
                  {rnd({2, 3, 4}, 5), rnd({1, 3, 1}, 6)});
  test::gradcheck("scale", [](const auto& v) { return ag::scale(v[0], -2.5f); }, {rnd({5, 2}, 7)});
  test::gradcheck("sum", [](const auto& v) { return ag::sum(v[0]); }, {rnd({3, 4}, 8)});
  test::gradcheck("mean", [](const auto& v) { return ag::mean(v[0]); }, {rnd({3, 4}, 9)});
  test::gradcheck("reused input", [](const auto& v) { return ag::mul(v[0], ag::add(v[0], v[0])); },
                  {rnd({7}, 10)});
}

TEST_CASE("gradcheck: activations, softmax, dropout", "[autograd]") {
  test::gradcheck("gelu", [](const auto& v) { return ag::gelu(v[0]); }, {rnd({3, 37}, 1, 2.0f)});
  test::gradcheck("l2_normalize", [](const auto& v) { return ag::l2_normalize(v[0]); },
                  {rnd({4, 9}, 3, 1.0f)});
  test::gradcheck("gelu_erf", [](const auto& v) { return ag::gelu_erf(v[0]); },
                  {rnd({3, 37}, 2, 2.0f)});
  test::gradcheck("silu", [](const auto& v) { return ag::silu(v[0]); }, {rnd({3, 37}, 2, 2.0f)});
  test::gradcheck("swiglu", [](const auto& v) { return ag::swiglu(v[0], v[1]); },
                  {rnd({4, 19}, 3, 2.0f), rnd({4, 19}, 4)});
  test::gradcheck("softmax", [](const auto& v) { return ag::softmax(v[0]); },
                  {rnd({3, 11}, 5, 2.0f)});
  test::gradcheck("log_softmax", [](const auto& v) { return ag::log_softmax(v[0]); },
                  {rnd({3, 11}, 6, 2.0f)});
  test::gradcheck("dropout",
                  [](const auto& v) {
                    Generator g(42);  // the same mask on every evaluation
                    return ag::dropout(v[0], 0.3f, g);
                  },
                  {rnd({4, 25}, 7)});
}

TEST_CASE("gradcheck: layernorm and rmsnorm", "[autograd]") {
  test::gradcheck("layernorm", [](const auto& v) { return ag::layernorm(v[0], v[1], v[2]); },
                  {rnd({2, 3, 24}, 1, 2.0f), rnd({24}, 2), rnd({24}, 3)});
  test::gradcheck("layernorm no bias",
                  [](const auto& v) { return ag::layernorm(v[0], v[1], Var()); },
                  {rnd({5, 17}, 4, 2.0f), rnd({17}, 5)});
  test::gradcheck("rmsnorm", [](const auto& v) { return ag::rmsnorm(v[0], v[1]); },
                  {rnd({2, 3, 24}, 6, 2.0f), rnd({24}, 7)});
}

TEST_CASE("gradcheck: embedding, reshape, transpose, slice, concat", "[autograd]") {
  const auto ids = Tensor<int32_t>::from({2, 3}, {1, 4, 1, 0, 2, 4});
  test::gradcheck("embedding", [&](const auto& v) { return ag::embedding(ids, v[0]); },
                  {rnd({5, 6}, 1)});
  test::gradcheck("reshape",
                  [](const auto& v) { return ag::reshape(ag::transpose(v[0], 0, 1), {-1}); },
                  {rnd({3, 4}, 2)});
  test::gradcheck("slice", [](const auto& v) { return ag::slice(v[0], 1, 1, 3); },
                  {rnd({3, 4, 2}, 3)});
  test::gradcheck("concat",
                  [](const auto& v) {
                    return ag::concat({v[0], v[1], v[0]}, 1);
                  },
                  {rnd({2, 3}, 4), rnd({2, 1}, 5)});
}

TEST_CASE("gradcheck: attention (causal, GQA, RoPE in both layouts, masks)", "[autograd]") {
  const int64_t B = 2, T = 5, D = 4;
  for (int variant = 0; variant < 5; ++variant) {
    ag::AttentionOptions opt;
    opt.n_heads = 4;
    opt.n_kv_heads = variant == 0 ? 4 : 2;
    opt.causal = variant != 3;
    opt.rope.enabled = variant >= 2;
    opt.rope.style = variant == 4 ? kernels::RopeStyle::interleaved : kernels::RopeStyle::half;
    opt.rope.position_offset = 3;
    Tensor<float> mask = Tensor<float>::zeros({T, T});
    if (variant == 3) {  // not causal, but with a padding-style mask on the last key
      for (int64_t i = 0; i < T; ++i) mask(i, T - 1) = -std::numeric_limits<float>::infinity();
      opt.mask = &mask;
    }
    INFO("variant " << variant);
    test::gradcheck(
        "attention", [&](const auto& v) { return ag::attention(v[0], v[1], v[2], opt); },
        {rnd({B, T, 4 * D}, 10 + variant), rnd({B, T, opt.n_kv_heads * D}, 20 + variant),
         rnd({B, T, opt.n_kv_heads * D}, 30 + variant)});
  }
}

TEST_CASE("causal attention in row chunks equals the full square with a causal mask",
          "[autograd]") {
  // T = 150 spans three chunks of query rows (the last one ragged); the reference path is the
  // non-causal one over the whole square with an explicit -inf mask above the diagonal.
  const int64_t B = 2, T = 150, D = 8, H = 4, Hkv = 2;
  Tensor<float> mask = Tensor<float>::zeros({T, T});
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) mask(i, j) = -std::numeric_limits<float>::infinity();
  std::vector<Tensor<float>> outs, grads;
  for (bool causal : {true, false}) {
    ag::AttentionOptions opt;
    opt.n_heads = H;
    opt.n_kv_heads = Hkv;
    opt.causal = causal;
    opt.rope.enabled = true;
    if (!causal) opt.mask = &mask;
    Var q(rnd({B, T, H * D}, 41), true), k(rnd({B, T, Hkv * D}, 42), true),
        v(rnd({B, T, Hkv * D}, 43), true);
    Var o = ag::attention(q, k, v, opt);
    ag::sum(ag::mul(o, Var(rnd({B, T, H * D}, 44)))).backward();
    outs.push_back(o.value());
    for (const Var& x : {q, k, v}) grads.push_back(x.grad());
  }
  CHECK(allclose(outs[0], outs[1], 1e-5, 1e-6));
  for (int i = 0; i < 3; ++i) CHECK(allclose(grads[i], grads[i + 3], 1e-4, 1e-5));
}

TEST_CASE("gradcheck: cross-entropy with ignored targets", "[autograd]") {
  const auto targets = Tensor<int32_t>::from({2, 3}, {1, -100, 6, 0, 3, -100});
  test::gradcheck("cross_entropy", [&](const auto& v) { return ag::cross_entropy(v[0], targets); },
                  {rnd({2, 3, 7}, 1, 2.0f)});
}

TEST_CASE("op errors name the op and the shapes", "[autograd]") {
  Var a(rnd({2, 3}, 1), true), b(rnd({4, 5}, 2), true);
  CHECK_THROWS_WITH(ag::matmul(a, b), Catch::Contains("[2, 3]") && Catch::Contains("[4, 5]"));
  CHECK_THROWS_WITH(ag::linear(a, b), Catch::Contains("linear") && Catch::Contains("[2, 3]"));
  CHECK_THROWS_AS(ag::layernorm(a, Var(rnd({4}, 3)), Var()), ShapeError);
  CHECK_THROWS_WITH(ag::embedding(Tensor<int32_t>::from({2}, {1, 9}), Var(rnd({5, 3}, 4))),
                    Catch::Contains("token id 9") && Catch::Contains("[0, 5)"));
  CHECK_THROWS_WITH(ag::cross_entropy(a, Tensor<int32_t>::from({2}, {0, 3})),
                    Catch::Contains("target 3") && Catch::Contains("position 1"));
  CHECK_THROWS_AS(ag::cross_entropy(a, Tensor<int32_t>::from({2}, {-100, -100})), ValueError);
  CHECK_THROWS_AS(ag::cross_entropy(a, Tensor<int32_t>::from({3}, {0, 1, 2})), ShapeError);
  ag::AttentionOptions opt;
  opt.n_heads = 3;
  opt.n_kv_heads = 2;
  Var q(rnd({1, 2, 6}, 5)), k(rnd({1, 2, 4}, 6));
  CHECK_THROWS_AS(ag::attention(q, k, k, opt), ValueError);
  Generator g(1);
  CHECK_THROWS_AS(ag::dropout(a, 1.0f, g), ValueError);
}
