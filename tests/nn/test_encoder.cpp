// nn::Encoder (trainable BERT) against PyTorch (tests/reference/make_bert_fixtures.py): token
// states of a padded batch and pooled sentence vectors; the file round trip to the inference
// engine; and that training moves paired texts together.
#include <catch2/catch.hpp>
#include <cmath>

#include "scholar/autograd/ops.hpp"
#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/nn/encoder.hpp"
#include "scholar/optim/optim.hpp"
#include "support.hpp"

using namespace scholar;
namespace ag = scholar::autograd;
using scholar::autograd::Var;

namespace {

const std::string kDir = SCHOLAR_TEST_DATA "/bert/minilm_tiny";

std::unique_ptr<nn::Encoder> load_tiny() {
  const auto cfg = nn::TransformerConfig::from_json(
      io::Json::parse(io::read_file(kDir + "/config.json"), "config.json"));
  auto enc = std::make_unique<nn::Encoder>(cfg);
  const auto f = io::SafetensorsFile::open(kDir + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor<float>>> w;
  for (const auto& t : f.tensors()) w.emplace_back(t.name, f.load<float>(t.name));
  enc->load_weights(w, /*allow_extra=*/true);  // BertModel's pooler is not used
  return enc;
}

}  // namespace

TEST_CASE("nn::Encoder computes BertModel's states and mean-pooled vectors", "[encoder][torch]") {
  auto enc = load_tiny();
  enc->eval();
  const auto want = io::SafetensorsFile::open(SCHOLAR_TEST_DATA "/bert/expected.safetensors");
  const Tensor<int32_t> ids = want.load<int32_t>("ids");
  const Tensor<int32_t> mask = want.load<int32_t>("mask");
  const int64_t B = ids.size(0), T = ids.size(1);
  std::vector<int64_t> lengths(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) lengths[static_cast<size_t>(b)] += mask.data()[b * T + t];
  const Var h = enc->forward(ids, lengths);
  const Tensor<float> hw = want.load<float>("hidden");
  REQUIRE(h.shape() == hw.shape());
  test::check_close(h.value().contiguous().data(), hw.data(), static_cast<size_t>(hw.numel()), 1e-4,
                    1e-5, "hidden states");
  const Var v = enc->embed(ids, lengths);
  const Tensor<float> vw = want.load<float>("embed.mean");
  test::check_close(v.value().contiguous().data(), vw.data(), static_cast<size_t>(vw.numel()), 1e-4,
                    1e-5, "mean embeddings");
  // Bad input.
  CHECK_THROWS_AS(enc->forward(ids, std::vector<int64_t>{1, 2}), ShapeError);
  std::vector<int64_t> bad = lengths;
  bad[0] = T + 1;
  CHECK_THROWS_AS(enc->forward(ids, bad), ValueError);
  CHECK_THROWS_AS(nn::Encoder(nn::TransformerConfig::gpt2(100, 16, 1, 16, 2)), ValueError);
  CHECK_THROWS_AS(nn::TransformerLM(enc->config()), ValueError);
}

TEST_CASE("a saved nn::Encoder runs on the inference engine with the same states", "[encoder]") {
  auto enc = load_tiny();
  enc->eval();
  const std::string dir = test::temp_dir("test_nn", "encoder_save");
  nn::save_hf_dir(*enc, dir);
  const auto model = infer::Model::load(dir);
  CHECK(model->arch() == enc->config());
  const std::vector<int32_t> ids = {2, 100, 200, 300, 400, 3};
  infer::SessionOptions so;
  so.embeddings = true;
  infer::Session s(model, so);
  infer::Batch b;
  for (size_t t = 0; t < ids.size(); ++t) b.add(ids[t], static_cast<int64_t>(t), 0, true);
  const auto got = s.decode(b);
  const Tensor<int32_t> x = Tensor<int32_t>::from({1, 6}, ids);
  const Var h = enc->forward(x, std::vector<int64_t>{6});
  test::check_close(got.data(), h.value().contiguous().data(), got.size(), 1e-4, 1e-5,
                    "engine vs autograd");
}

TEST_CASE("contrastive training pulls paired texts together", "[encoder]") {
  // Four pairs of token sequences; InfoNCE with in-batch negatives should make each first text
  // closer to its own partner than to the others.
  auto cfg = nn::TransformerConfig::bert(64, 16, 2, 32, 4, 64);
  nn::Encoder enc(cfg, 7);
  const Tensor<int32_t> q = Tensor<int32_t>::from(
      {4, 5},
      std::vector<int32_t>{2, 10, 11, 3, 0, 2, 20, 21, 22, 3, 2, 30, 3, 0, 0, 2, 40, 41, 42, 3});
  const Tensor<int32_t> p = Tensor<int32_t>::from(
      {4, 5},
      std::vector<int32_t>{2, 11, 12, 13, 3, 2, 21, 23, 3, 0, 2, 30, 31, 3, 0, 2, 42, 43, 3, 0});
  const std::vector<int64_t> lq = {4, 5, 3, 5}, lp = {5, 4, 4, 4};
  const Tensor<int32_t> targets = Tensor<int32_t>::from({4}, std::vector<int32_t>{0, 1, 2, 3});
  optim::AdamW opt(enc.named_parameters(), {.lr = 3e-3f, .weight_decay = 0.0f});
  auto loss_of = [&] {
    const Var sim = ag::matmul(enc.embed(q, lq), ag::transpose(enc.embed(p, lp), 0, 1));
    return ag::cross_entropy(ag::scale(sim, 20.0f), targets);
  };
  const float first = loss_of().value().item();
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    Var loss = loss_of();
    loss.backward();
    opt.step();
  }
  const float last = loss_of().value().item();
  CHECK(last < 0.2f * first);
  CHECK(last < 0.1f);
}
