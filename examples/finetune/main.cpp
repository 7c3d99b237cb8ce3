// finetune: adapts a model trained on one corpus to another, four ways, and teaches it to answer
// questions (supervised fine-tuning), then runs the adapter at inference.
//
// 1. A base (Llama family) is trained on FOLDOC, the Free On-line Dictionary of Computing (Debian's
//    dict-foldoc), or loaded from --base.
// 2. It is adapted to the Jargon File (jargon-text) with equal steps and data, each way in a
//    process of its own so that its peak memory is its own:
//      full     every parameter trains
//      lora     LoRA r = --rank on every linear layer, f32 base
//      qlora    the same over a Q8_0 base (every frozen matrix and table quantized in memory)
//      rslora   rank-stabilized LoRA, r = --rslora-rank
//    For each: perplexity on the Jargon File and on FOLDOC (forgetting) before and after, the
//    trainable share, peak memory while training, step time, and the size of what is saved (a PEFT
//    adapter directory, or the whole model).
// 3. SFT: LoRA on question/answer pairs made from the Jargon File ("What is a kludge?" -> the
//    entry's first sentence), ChatML-formatted, loss on the answers only; answers before and after.
// 4. The adapter applied unmerged by the inference engine, and written as a llama.cpp LoRA GGUF.
//
//   finetune [--base-corpus FILE] [--corpus FILE] [--out DIR] [--base PATH] [--vocab N]
//            [--layers N] [--width N] [--heads N] [--base-steps N] [--steps N] [--batch N]
//            [--context N] [--lr X] [--lora-lr X] [--rank N] [--rslora-rank N] [--alpha X]
//            [--targets all-linear|NAME,...]
//            [--ways full,lora,qlora,rslora] [--sft-steps N (0: none)] [--threads N] [--quick]
//
// With --base, the ways start from that model (any file infer::Model::load reads) and use its
// tokenizer; the adapters are kept in --out/<way>/adapter (PEFT) and --out/<way>/adapter.gguf.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <scholar/scholar.hpp>

#include <malloc.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

using namespace scholar;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::string base_corpus = "/usr/share/dictd/foldoc.dict.dz";
  std::string corpus = "/usr/share/doc/jargon-text/jargon.txt.gz";
  std::string out = "runs/finetune";
  std::string base;  // a model file to start from instead of training one
  int32_t vocab = 4096;
  int64_t layers = 6, width = 384, heads = 6, base_steps = 1500;
  int64_t steps = 300, batch = 16, context = 128, sft_steps = 300;
  float lr = 3e-4f, lora_lr = 2e-3f, alpha = 16.0f;
  int64_t rank = 8, rslora_rank = 64;
  std::string targets = "all-linear";  // LoRA's target_modules, comma-separated
  std::string ways = "full,lora,qlora,rslora";
  int threads = 0;
  bool quick = false;
  std::string way;  // set in the child process that runs one way
  std::vector<std::string> argv;
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--base-corpus FILE] [--corpus FILE] [--out DIR] [--base PATH]\n"
               "  [--vocab N] [--layers N] [--width N] [--heads N] [--base-steps N] [--steps N]\n"
               "  [--batch N] [--context N] [--lr X] [--lora-lr X] [--rank N] [--rslora-rank N]\n"
               "  [--alpha X] [--targets all-linear|NAME,...] [--ways full,lora,qlora,rslora]\n"
               "  [--sft-steps N] [--threads N] [--quick]\n",
               argv0);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 0; i < argc; ++i) a.argv.emplace_back(argv[i]);
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") usage(argv[0]);
    if (k == "--quick") {  // the README's demo: about a minute on 2 cores
      a.quick = true;
      a.vocab = 1024;
      a.layers = 4, a.width = 192, a.heads = 4, a.base_steps = 600;
      a.steps = 100, a.batch = 8, a.context = 64, a.sft_steps = 300;
      a.ways = "lora";
      a.out = "runs/finetune-quick";
      continue;
    }
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    try {
      auto ll = [&] { return std::stoll(v); };
      if (k == "--base-corpus")
        a.base_corpus = v;
      else if (k == "--corpus")
        a.corpus = v;
      else if (k == "--out")
        a.out = v;
      else if (k == "--base")
        a.base = v;
      else if (k == "--vocab")
        a.vocab = std::stoi(v);
      else if (k == "--layers")
        a.layers = ll();
      else if (k == "--width")
        a.width = ll();
      else if (k == "--heads")
        a.heads = ll();
      else if (k == "--base-steps")
        a.base_steps = ll();
      else if (k == "--steps")
        a.steps = ll();
      else if (k == "--batch")
        a.batch = ll();
      else if (k == "--context")
        a.context = ll();
      else if (k == "--lr")
        a.lr = std::stof(v);
      else if (k == "--lora-lr")
        a.lora_lr = std::stof(v);
      else if (k == "--rank")
        a.rank = ll();
      else if (k == "--rslora-rank")
        a.rslora_rank = ll();
      else if (k == "--alpha")
        a.alpha = std::stof(v);
      else if (k == "--ways")
        a.ways = v;
      else if (k == "--targets")
        a.targets = v;
      else if (k == "--sft-steps")
        a.sft_steps = ll();
      else if (k == "--threads")
        a.threads = std::stoi(v);
      else if (k == "--way")
        a.way = v;
      else
        usage(argv[0]);
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "%s: '%s' is not a valid value for %s\n", argv[0], v.c_str(), k.c_str());
      std::exit(2);
    }
  }
  return a;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);)
    if (!part.empty()) out.push_back(part);
  return out;
}

// Peak resident memory of this process since the last reset, in MB (Linux: VmHWM).
double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}
// Starts a new peak measurement from the current resident size (Linux 4.0+).
void reset_peak_rss() {
  empty_storage_cache();  // hand freed memory back first (the tensor cache, then malloc's)
  malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
}

uint64_t bytes_in(const fs::path& p) {
  if (fs::is_regular_file(p)) return fs::file_size(p);
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(p))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}
// The Jargon File's entries as (headword, first sentence of the definition).
std::vector<train::Conversation> jargon_questions(const std::vector<std::string>& docs) {
  std::vector<train::Conversation> out;
  auto trim = [](std::string t) {
    std::replace(t.begin(), t.end(), '\n', ' ');
    std::string u;
    for (char c : t)  // collapse spaces; drop the {cross-reference} braces
      if (c != '{' && c != '}' && !(c == ' ' && (u.empty() || u.back() == ' '))) u += c;
    while (!u.empty() && u.back() == ' ') u.pop_back();
    return u;
  };
  for (size_t i = 0; i + 1 < docs.size(); ++i) {
    // An entry's head line: ":word: /pronunciation/, n." (one line).
    const std::string head = trim(docs[i]);
    const bool one_line = docs[i].find('\n') + 1 >= docs[i].size();
    if (head.size() < 3 || head[0] != ':' || !one_line) continue;
    const auto end = head.find(':', 1);
    if (end == std::string::npos || end < 2) continue;
    const std::string word = head.substr(1, end - 1);
    std::string body = trim(docs[i + 1]);
    if (body.rfind("1. ", 0) == 0) body = body.substr(3);
    if (body.empty() || body[0] == '[' || body[0] == ':') continue;
    auto stop = body.find(". ");
    if (stop == std::string::npos) stop = body.size() - 1;
    const std::string answer = body.substr(0, stop + 1);
    if (answer.size() < 12 || answer.size() > 160) continue;
    out.push_back({{{"user", "What is " + word + "?"}, {"assistant", answer}},
                   static_cast<int64_t>(out.size() + 1)});
  }
  return out;
}

struct Shared {
  std::shared_ptr<text::Tokenizer> tok;
  train::TokenDataset base_data, data;
  std::vector<std::string> jargon_docs;
  std::string base_ckpt;
};

train::TrainerOptions trainer_options(const Args& a, int64_t steps, float lr) {
  train::TrainerOptions o;
  o.batch_size = a.batch;
  o.context = a.context;
  o.max_steps = steps;
  o.lr = lr;
  o.min_lr = lr / 10;
  o.warmup_steps = std::min<int64_t>(50, steps / 10);
  o.eval_every = 0;
  o.weight_decay = 0.0f;
  return o;
}

std::unique_ptr<nn::TransformerLM> load_base(const Shared& s) {
  return infer::Model::load(s.base_ckpt)->to_module();
}

// One way, in its own process: prints one line of JSON results on stdout's last line.
int run_way(const Args& a, Shared& s) {
  const std::string& way = a.way;
  auto model = load_base(s);
  const int64_t total = model->parameter_count();
  nn::LoraConfig lc;
  lc.r = way == "rslora" ? a.rslora_rank : a.rank;
  lc.lora_alpha = a.alpha;
  lc.use_rslora = way == "rslora";
  lc.target_modules = split(a.targets, ',');
  float lr = a.lora_lr;
  if (way == "full") {
    lr = a.lr;
  } else {
    const nn::LoraSummary summary = nn::apply_lora(*model, lc);
    std::fprintf(stderr, "%s\n", summary.str().c_str());
    if (way == "qlora") {  // the whole frozen base in Q8_0: linear layers, head and tables
      nn::quantize_linears(*model, WeightType::q8_0, ".*");
      nn::quantize_embeddings(*model, WeightType::q8_0);
    }
  }
  const int64_t trainable = model->trainable_parameter_count();
  reset_peak_rss();
  train::TrainerOptions o = trainer_options(a, a.steps, lr);
  o.seed = 7;
  train::Trainer t(*model, s.data, o, s.tok.get());
  const auto r = t.fit();
  if (r.diverged) throw Error(way + ": " + r.message);
  const double peak = peak_rss_mb();
  const double ppl_new =
      train::perplexity(*model, s.data, train::Split::validation, a.context, a.batch);
  const double ppl_old =
      train::perplexity(*model, s.base_data, train::Split::validation, a.context, a.batch);
  const fs::path dir = fs::path(a.out) / way;
  fs::create_directories(dir);
  uint64_t saved = 0;
  if (way == "full") {
    nn::save_hf_dir(*model, dir.string(), s.tok.get());
    saved = fs::file_size(dir / "model.safetensors");
  } else {
    finetune::save_peft_adapter(*model, (dir / "adapter").string(),
                                {.base_model_name_or_path = s.base_ckpt});
    saved = bytes_in(dir / "adapter");
    finetune::save_lora_gguf(finetune::lora_weights(*model), model->config(),
                             (dir / "adapter.gguf").string());
  }
  std::printf(
      "{\"way\": \"%s\", \"ppl_new\": %.4f, \"ppl_old\": %.4f, \"trainable\": %lld, \"total\": "
      "%lld, \"peak_mb\": %.1f, \"step_ms\": %.1f, \"saved_bytes\": %llu}\n",
      way.c_str(), ppl_new, ppl_old, static_cast<long long>(trainable),
      static_cast<long long>(total), peak, 1000.0 * r.seconds / static_cast<double>(r.steps),
      static_cast<unsigned long long>(saved));
  return 0;
}

// Runs this program again with --way W; returns the JSON line it printed last.
io::Json spawn_way(const Args& a, const std::string& way) {
  const std::string out_path = (fs::path(a.out) / (way + ".json")).string();
  std::vector<std::string> args = a.argv;
  args.insert(args.end(), {"--way", way});
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw Error("cannot start a process for way " + way);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("way " + way + " failed (see the messages above)");
  std::ifstream f(out_path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty() && line[0] == '{') last = line;
  return io::Json::parse(last, out_path);
}

// Greedy answer of a model (with adapters, if any) to a question, in ChatML.
std::string answer(infer::Session& s, const std::string& question) {
  const text::ChatTemplate chat(text::ChatFormat::chatml);
  generate::GenerationConfig g;
  g.temperature = 0;
  g.max_new_tokens = 40;
  g.repetition_penalty = 1.2f;
  g.stop_strings = {"<|im_end|>", "\n"};
  g.ignore_eos = false;
  s.clear();
  std::string t = generate::generate(s, chat.prompt({{"user", question}}), g).sequences[0].text;
  return t.empty() ? "(nothing)" : text::to_valid_utf8(t);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    if (a.threads > 0) set_num_threads(a.threads);
    fs::create_directories(a.out);
    Shared s;
    // Corpora and the base's tokenizer (kept in --out): FOLDOC for the base, the Jargon File as
    // the new domain. The tokenizer is the base's, learned from FOLDOC only.
    const std::vector<std::string> base_docs = train::read_documents({a.base_corpus});
    s.jargon_docs = train::read_documents({a.corpus});
    const std::string tok_path = a.out + "/tokenizer.json";
    if (!a.base.empty()) {  // the base's own
      s.tok = std::const_pointer_cast<text::Tokenizer>(infer::Model::load(a.base)->tokenizer_ptr());
      if (!s.tok) throw Error(a.base + ": the base model has no tokenizer");
    } else if (fs::exists(tok_path)) {
      s.tok = text::load_tokenizer(tok_path);
    } else {
      std::string joined;
      for (const auto& d : base_docs) joined += d + "\n\n";
      if (joined.size() > (4u << 20)) joined.resize(4u << 20);
      ProgressBar bar("tokenizer", a.vocab - 260, "merge");
      s.tok = std::make_shared<text::BpeTokenizer>(text::BpeTokenizer::train(
          joined, {.vocab_size = a.vocab,
                   .special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"},
                   .progress = [&](int64_t d, int64_t) { bar.update(d); }}));
      bar.finish();
      s.tok->save(tok_path);
    }
    const int32_t eos = s.tok->special_tokens().eos;
    s.base_data = train::TokenDataset::build(
        base_docs, *s.tok, {.validation_fraction = 0.05, .seed = 0, .eos_id = eos});
    s.data = train::TokenDataset::build(s.jargon_docs, *s.tok,
                                        {.validation_fraction = 0.05, .seed = 0, .eos_id = eos});

    // The base: given, kept from an earlier run, or trained now on FOLDOC.
    s.base_ckpt = !a.base.empty() ? a.base : a.out + "/base/checkpoint.safetensors";
    if (!a.way.empty()) return run_way(a, s);

    std::printf("%s\n", system_info().c_str());
    std::printf("FOLDOC: %zu training tokens; Jargon File: %zu (vocabulary %d)\n",
                s.base_data.tokens(train::Split::train).size(),
                s.data.tokens(train::Split::train).size(), s.tok->vocab_size());
    if (!fs::exists(s.base_ckpt)) {
      if (!a.base.empty()) throw Error(a.base + ": no such file");
      const auto cfg =
          nn::TransformerConfig::llama(s.tok->vocab_size(), a.context, a.layers, a.width, a.heads,
                                       a.heads, a.width * 8 / 3 / 32 * 32);
      nn::TransformerLM base(cfg, 1234);
      std::printf("training the base on FOLDOC: %lld layers x %lld, %.2fM parameters, %lld steps\n",
                  static_cast<long long>(a.layers), static_cast<long long>(a.width),
                  base.parameter_count() / 1e6, static_cast<long long>(a.base_steps));
      train::TrainerOptions o = trainer_options(a, a.base_steps, 1e-3f);
      o.weight_decay = 0.1f;
      o.out_dir = a.out + "/base";
      o.seed = 1234;
      train::Trainer t(base, s.base_data, o, s.tok.get());
      const auto r = t.fit();
      if (r.diverged) throw Error("base training: " + r.message);
    }
    auto base = load_base(s);
    const double base_new =
        train::perplexity(*base, s.data, train::Split::validation, a.context, a.batch);
    const double base_old =
        train::perplexity(*base, s.base_data, train::Split::validation, a.context, a.batch);
    std::printf("base: %.2fM parameters; perplexity %.2f on the Jargon File, %.2f on FOLDOC\n\n",
                base->parameter_count() / 1e6, base_new, base_old);

    // The ways, one process each.
    std::vector<io::Json> results;
    for (const auto& way : split(a.ways, ',')) {
      if (way != "full" && way != "lora" && way != "qlora" && way != "rslora")
        throw ValueError("unknown way '" + way + "' (full, lora, qlora, rslora)");
      std::printf("%s: %lld steps\n", way.c_str(), static_cast<long long>(a.steps));
      std::fflush(stdout);
      results.push_back(spawn_way(a, way));
    }
    double full_gain = 0;
    for (const auto& r : results)
      if (r.at("way").as_string() == "full") full_gain = base_new - r.at("ppl_new").as_double();
    std::printf(
        "\n| way | Jargon ppl (base %.2f) | share of full's gain | FOLDOC ppl (base %.2f) | "
        "trainable | peak MB | ms/step | saved |\n|---|---|---|---|---|---|---|---|\n",
        base_new, base_old);
    for (const auto& r : results) {
      const double gain = base_new - r.at("ppl_new").as_double();
      const double share = static_cast<double>(r.at("trainable").as_int()) /
                           static_cast<double>(r.at("total").as_int());
      char gain_s[32] = "-";
      if (full_gain > 0) std::snprintf(gain_s, sizeof gain_s, "%.0f%%", 100.0 * gain / full_gain);
      std::printf("| %s | %.2f | %s | %.2f | %.2f%% | %.0f | %.0f | %.2f MB |\n",
                  r.at("way").as_string().c_str(), r.at("ppl_new").as_double(), gain_s,
                  r.at("ppl_old").as_double(), 100.0 * share, r.at("peak_mb").as_double(),
                  r.at("step_ms").as_double(),
                  static_cast<double>(r.at("saved_bytes").as_int()) / 1e6);
    }

    if (a.sft_steps <= 0) return 0;

    // SFT: questions made from the Jargon File, answered in ChatML, LoRA over the base.
    auto questions = jargon_questions(s.jargon_docs);
    const std::string jsonl = a.out + "/jargon_qa.jsonl";
    train::save_instruction_jsonl(questions, jsonl);
    const auto sft = train::InstructionDataset::load_jsonl(jsonl, *s.tok,
                                                           {.max_length = a.context,
                                                            .chat_template = "chatml",
                                                            .pack = true,
                                                            .validation_fraction = 0.05,
                                                            .seed = 3});
    std::printf("\nSFT: %zu questions (%s), %lld held out; %lld answer tokens to learn\n",
                questions.size(), jsonl.c_str(),
                static_cast<long long>(sft.size(train::Split::validation)),
                static_cast<long long>(sft.target_tokens()));
    auto sft_model = load_base(s);
    nn::LoraConfig lc;
    lc.r = a.rank;
    lc.lora_alpha = a.alpha;
    lc.target_modules = split(a.targets, ',');
    nn::apply_lora(*sft_model, lc);
    train::TrainerOptions o = trainer_options(a, a.sft_steps, a.lora_lr);
    train::Trainer t(*sft_model, sft, o, s.tok.get());
    const double before = t.evaluate();
    t.fit();
    const double after = t.evaluate();
    std::printf("answer loss (held out): %.3f before, %.3f after\n", before, after);
    const std::string adapter_dir = a.out + "/sft_adapter";
    finetune::save_peft_adapter(*sft_model, adapter_dir, {.base_model_name_or_path = s.base_ckpt});
    finetune::save_lora_gguf(finetune::lora_weights(*sft_model), sft_model->config(),
                             a.out + "/sft_adapter.gguf");

    // The adapter at inference: the base model as it is, the adapter applied per session.
    auto engine = infer::Model::load(s.base_ckpt);
    infer::Session plain(engine), tuned(engine);
    tuned.set_adapter(
        finetune::to_infer_adapter(finetune::read_lora(adapter_dir, engine->arch()), *engine));
    std::printf(
        "\nanswers before and after (greedy; the adapter unmerged on the inference "
        "engine):\n");
    for (size_t i : {size_t{0}, questions.size() / 3, questions.size() / 2}) {
      const std::string q = questions[i].messages[0].content;
      std::printf("  Q: %s\n     reference: %s\n     base:      %s\n     tuned:     %s\n",
                  q.c_str(), questions[i].messages[1].content.c_str(), answer(plain, q).c_str(),
                  answer(tuned, q).c_str());
    }
    std::printf("\nadapters: %s (PEFT), %s.gguf (llama.cpp: llama-cli -m BASE.gguf --lora ...)\n",
                adapter_dir.c_str(), adapter_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finetune: %s\n", e.what());
    return 1;
  }
  return 0;
}
