// generate: loads a model (GGUF file, Hugging Face directory, or a checkpoint written by train_lm)
// and generates text from a prompt, streaming it as it comes, then prints prompt and generation
// speed. With --save-gguf it also writes the model as GGUF (F32, F16, Q8_0 or Q4_0) for llama.cpp.
// --lora PATH[:SCALE] (repeatable) applies LoRA adapters unmerged, each scaled (a PEFT directory or
// a llama.cpp LoRA GGUF); with --save-gguf the adapters are merged into the written model, and
// --export-lora OUT.gguf writes the (single) adapter as a llama.cpp LoRA GGUF.
//
//   generate --model PATH --prompt TEXT [--temperature 0.8] [--top-k 40] [--top-p 0.95]
//            [--min-p 0.05] [--repeat-penalty 1.1] [--beams N] [--seed N] [--max-tokens N]
//            [--threads N] [--order transformers|llama.cpp] [--save-gguf OUT --type q8_0]
//            [--lora PATH[:SCALE]]... [--export-lora OUT.gguf]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "scholar/finetune/adapter.hpp"
#include "scholar/generate/generate.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/parallel.hpp"

using namespace scholar;

namespace {

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s --model PATH --prompt TEXT [--temperature T] [--top-k K] [--top-p P]\n"
      "          [--min-p P] [--repeat-penalty R] [--beams N] [--seed S] [--max-tokens N]\n"
      "          [--threads N] [--order transformers|llama.cpp] [--no-mmap] [--no-repack]\n"
      "          [--save-gguf OUT.gguf [--type f32|f16|q8_0|q4_0]]\n"
      "          [--lora PATH[:SCALE]]... [--export-lora OUT.gguf]\n",
      argv0);
  std::exit(2);
}

WeightType parse_type(const std::string& s) {
  if (const auto t = parse_weight_type(s)) return *t;
  std::string names;
  for (const auto& row : kWeightTypes) names += (names.empty() ? "" : ", ") + std::string(row.name);
  throw ValueError("--type must be one of " + names + ", got '" + s + "'");
}

// "PATH" or "PATH:SCALE" (the scale is what follows the last ':' when it is a number).
std::pair<std::string, float> lora_arg(const std::string& v) {
  const auto colon = v.rfind(':');
  if (colon != std::string::npos && colon + 1 < v.size()) {
    try {
      size_t used = 0;
      const float s = std::stof(v.substr(colon + 1), &used);
      if (used == v.size() - colon - 1) return {v.substr(0, colon), s};
    } catch (const std::exception&) {
    }
  }
  return {v, 1.0f};
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, prompt, save_path, type = "q8_0", export_lora;
  std::vector<std::pair<std::string, float>> loras;
  generate::GenerationConfig cfg;
  cfg.temperature = 0.8f;
  cfg.top_k = 40;
  cfg.top_p = 0.95f;
  cfg.min_p = 0.05f;
  cfg.max_new_tokens = 64;
  int threads = 0;
  infer::LoadOptions load;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string k = argv[i];
      if (k == "-h" || k == "--help") usage(argv[0]);
      if (k == "--no-mmap") {  // read the weights into memory (huge pages) instead of mapping
        load.access = io::FileAccess::copy;
        continue;
      }
      if (k == "--no-repack") {  // no interleaved copy of quantized matrices: half the memory
        load.interleave = false;
        continue;
      }
      if (i + 1 >= argc) usage(argv[0]);
      const std::string v = argv[++i];
      // Whole-string numbers, or an error naming the flag.
      auto number = [&](auto parse) {
        size_t used = 0;
        try {
          const auto x = parse(v, &used);
          if (used == v.size()) return x;
        } catch (const std::exception&) {
        }
        throw ValueError(k + ": '" + v + "' is not a valid number");
      };
      auto f = [&] {
        return number([](const std::string& t, size_t* u) { return std::stof(t, u); });
      };
      auto i64 = [&] {
        return number([](const std::string& t, size_t* u) { return std::stoll(t, u); });
      };
      if (k == "--model")
        model_path = v;
      else if (k == "--prompt")
        prompt = v;
      else if (k == "--temperature")
        cfg.temperature = f();
      else if (k == "--top-k")
        cfg.top_k = static_cast<int32_t>(i64());
      else if (k == "--top-p")
        cfg.top_p = f();
      else if (k == "--min-p")
        cfg.min_p = f();
      else if (k == "--repeat-penalty")
        cfg.repetition_penalty = f();
      else if (k == "--beams")
        cfg.num_beams = static_cast<int32_t>(i64());
      else if (k == "--seed")
        cfg.seed = static_cast<uint64_t>(i64());
      else if (k == "--max-tokens")
        cfg.max_new_tokens = i64();
      else if (k == "--threads")
        threads = static_cast<int>(i64());
      else if (k == "--order") {
        if (v == "transformers")
          cfg.order = generate::ChainOrder::transformers;
        else if (v == "llama.cpp")
          cfg.order = generate::ChainOrder::llama_cpp;
        else
          usage(argv[0]);
      } else if (k == "--save-gguf")
        save_path = v;
      else if (k == "--lora")
        loras.push_back(lora_arg(v));
      else if (k == "--export-lora")
        export_lora = v;
      else if (k == "--type")
        type = v;
      else
        usage(argv[0]);
    }
    if (model_path.empty() || (prompt.empty() && save_path.empty() && export_lora.empty()))
      usage(argv[0]);
    if (!export_lora.empty() && loras.size() != 1)
      throw ValueError("--export-lora writes one adapter: give exactly one --lora");
    if (threads != 0) set_num_threads(threads);  // negative: a ValueError
    cfg.validate();

    auto model = infer::Model::load(model_path, load);
    const auto& a = model->arch();
    std::fprintf(stderr,
                 "model: %s, %s, %lld layers, width %lld, vocab %lld, %s weights (%.1f MB)\n",
                 model->source().c_str(), a.model_type.c_str(), static_cast<long long>(a.n_layers),
                 static_cast<long long>(a.n_embd), static_cast<long long>(a.vocab_size),
                 model->weight_type_summary().c_str(), model->weight_bytes() / 1e6);
    std::vector<infer::AdapterScale> adapters;
    for (const auto& [path, scale] : loras) {
      const finetune::LoraWeights w = finetune::read_lora(path, a);
      adapters.push_back({finetune::to_infer_adapter(w, *model), scale});
      std::fprintf(stderr, "adapter: %s, %zu layers, rank %lld, alpha %g, scale %g\n", path.c_str(),
                   w.layers.size(), static_cast<long long>(w.layers.front().rank()), w.alpha,
                   scale);
      if (!export_lora.empty()) {
        finetune::save_lora_gguf(w, a, export_lora);
        std::fprintf(stderr, "wrote %s (llama.cpp LoRA adapter)\n", export_lora.c_str());
      }
    }
    if (!save_path.empty()) {
      if (!adapters.empty()) model = model->merged(adapters);  // the written model includes them
      model->save_gguf(save_path, parse_type(type));
      std::fprintf(stderr, "wrote %s (%s%s)\n", save_path.c_str(), type.c_str(),
                   adapters.empty() ? "" : ", adapters merged");
      adapters.clear();  // merged into `model` now
    }
    if (prompt.empty()) return 0;
    (void)model->tokenizer();  // fails here, before any output, if the model came without one
    infer::Session session(model, {.max_sequences = std::max(16, 2 * cfg.num_beams)});
    session.set_adapters(adapters);
    if (cfg.num_beams > 1)
      std::fprintf(stderr, "beam search: %d beams\n", cfg.num_beams);
    else
      std::fprintf(stderr, "sampler: %s\n", generate::Sampler(cfg).describe().c_str());
    std::fprintf(stderr, "threads: %d\n\n", num_threads());
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
    const auto r = generate::generate(session, prompt, cfg, [](const generate::StreamEvent& e) {
      std::fwrite(e.text.data(), 1, e.text.size(), stdout);
      std::fflush(stdout);
      return true;
    });
    if (cfg.num_beams > 1) {
      const std::string& t = r.sequences.at(0).text;
      std::fwrite(t.data(), 1, t.size(), stdout);
    }
    std::printf("\n");
    std::fflush(stdout);
    const int64_t gen = r.generated_tokens;
    std::fprintf(stderr,
                 "\nprompt: %lld tokens, %.1f tokens/s | generation: %lld tokens, %.1f tokens/s | "
                 "stop: %s\n",
                 static_cast<long long>(r.prompt_tokens),
                 r.prompt_tokens / std::max(r.prompt_seconds, 1e-9), static_cast<long long>(gen),
                 gen / std::max(r.generation_seconds, 1e-9),
                 generate::stop_reason_name(r.sequences.at(0).stop).data());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "generate: %s\n", e.what());
    return 1;
  }
  return 0;
}
