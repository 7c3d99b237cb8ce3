// Against llama.cpp: greedy continuations recorded from node-llama-cpp@3.21.1 (llama.cpp's own
// build) running scholar's GGUF exports of two small trained models, at F32 and Q8_0
// (tests/reference/make_llama_cpp_fixtures.sh). scholar must tokenize the prompts as llama.cpp did
// and choose the same tokens.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include "scholar/infer/model.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"

using namespace scholar;

namespace {

std::vector<int32_t> ids_of(const io::Json& a) {
  std::vector<int32_t> out;
  for (const auto& v : a.as_array()) out.push_back(static_cast<int32_t>(v.as_int()));
  return out;
}

std::vector<int32_t> greedy(const std::shared_ptr<const infer::Model>& m,
                            const std::vector<int32_t>& prompt, size_t n) {
  infer::Session s(m, {.n_ctx = 64});
  auto logits = s.prefill(prompt);
  std::vector<int32_t> out;
  while (out.size() < n) {
    const auto id =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(id);
    if (out.size() < n) logits = s.decode_one(id);
  }
  return out;
}

// The logit margin by which we prefer our token over llama.cpp's at the first step where the two
// greedy sequences part (0 if they never do).
float divergence_margin(const std::shared_ptr<const infer::Model>& m,
                        const std::vector<int32_t>& prompt, const std::vector<int32_t>& theirs,
                        const std::vector<int32_t>& ours) {
  size_t k = 0;
  while (k < theirs.size() && theirs[k] == ours[k]) ++k;
  if (k == theirs.size()) return 0;
  infer::Session s(m, {.n_ctx = 64});
  std::vector<int32_t> prefix = prompt;
  prefix.insert(prefix.end(), theirs.begin(), theirs.begin() + static_cast<ptrdiff_t>(k));
  const auto logits = s.prefill(prefix);
  return logits[static_cast<size_t>(ours[k])] - logits[static_cast<size_t>(theirs[k])];
}

}  // namespace

TEST_CASE("greedy tokens equal llama.cpp's on our GGUF exports at F32 and Q8_0",
          "[infer][llama_cpp]") {
  const std::string dir = std::string(SCHOLAR_TEST_DATA) + "/llama_cpp/";
  const io::Json want = io::Json::parse(io::read_file(dir + "greedy.json"), "greedy.json");
  const auto& texts = want.at("texts").as_array();
  int q8_diverged = 0;
  for (const char* family : {"gpt2", "llama"}) {
    const auto f32 = infer::Model::load(dir + family + "-f32.gguf");
    const std::string q8_path = (std::filesystem::temp_directory_path() /
                                 ("scholar_llama_cpp_" + std::to_string(::getpid()) + ".gguf"))
                                    .string();
    f32->save_gguf(q8_path, WeightType::q8_0);
    const auto q8 = infer::Model::load(q8_path);
    std::filesystem::remove(q8_path);
    for (auto [model, tag] : {std::pair{f32, "f32"}, std::pair{q8, "q8_0"}}) {
      const io::Json& w = want.at(std::string(family) + "-" + tag);
      for (size_t i = 0; i < texts.size(); ++i) {
        INFO(family << " " << tag << " prompt '" << texts[i].as_string() << "'");
        const auto prompt = ids_of(w.at("prompts").as_array()[i]);
        CHECK(model->tokenizer().encode(texts[i].as_string()) == prompt);
        const auto expected = ids_of(w.at("greedy").as_array()[i]);
        const auto got = greedy(model, prompt, expected.size());
        if (std::string(tag) == "f32") {
          CHECK(got == expected);
        } else if (got != expected) {
          // Q8_0: 2 of 8 continuations part from llama.cpp's at a near-tie (margins 0.035 and
          // 0.004; the cause is not pinned down, see docs/inference.md). Allow that and no more.
          ++q8_diverged;
          const float margin = divergence_margin(model, prompt, expected, got);
          INFO("margin " << margin);
          CHECK(margin < 0.05f);
        }
      }
    }
  }
  CHECK(q8_diverged <= 2);
}
