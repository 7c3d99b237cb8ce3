// distill: trains (or loads) a teacher, then a small student five ways with equal steps, data and
// seeds, and reports held-out perplexity, sizes, training time, generation speed and a sample of
// each:
//   hard      hard labels only (plain language-model training: the baseline)
//   kd        logit distillation from the live teacher (full soft labels, T and alpha)
//   cache     the same from a soft-label cache of the teacher's top K
//   seq       sequence-level: the student trains on text the teacher wrote
//   onpolicy  on-policy (GKD): a share lambda of batches the student writes, the teacher grades
//
//   distill [--corpus FILE]... [--out DIR] [--vocab N] [--teacher PATH]
//           [--teacher-layers N] [--teacher-width N] [--teacher-heads N] [--teacher-steps N]
//           [--student-layers N] [--student-width N] [--student-heads N] [--steps N]
//           [--batch N] [--context N] [--lr X] [--ways hard,kd,cache,seq,onpolicy] [--seeds N]
//           [--temperature X] [--alpha X] [--k N] [--lambda X] [--seq-prompts N]
//           [--seq-samples N] [--seq-tokens N] [--export FILE.gguf] [--threads N] [--quick]
//           [--fixed-windows]   (every way trains on fixed windows, as the cache does: to tell
//                                the cache's top K apart from its fixed windows)
//
// The default corpus is the Jargon File from Debian's jargon-text package. The teacher (trained
// here unless --teacher names any file infer::Model::load reads), the tokenizer, the soft-label
// cache and the teacher's texts are kept in --out and reused by later runs.
#include <scholar/scholar.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace scholar;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::vector<std::string> corpus;
  std::string out = "runs/distill";
  int32_t vocab = 4096;
  std::string teacher;  // a file to load instead of training one
  int64_t teacher_layers = 6, teacher_width = 384, teacher_heads = 6, teacher_steps = 1500;
  int64_t student_layers = 2, student_width = 128, student_heads = 4, steps = 1000;
  int64_t batch = 16, context = 128;
  float lr = 2e-3f;
  std::string ways = "hard,kd,cache,seq,onpolicy";
  int seeds = 3;
  float temperature = 2.0f, alpha = 0.5f, lambda = 0.5f;
  int64_t k = 32;
  int64_t seq_prompts = 1500, seq_samples = 2, seq_tokens = 96;
  std::string export_path;
  int threads = 0;
  bool fixed_windows = false;  // every way draws the soft-label cache's fixed windows (analysis)
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--corpus FILE]... [--out DIR] [--vocab N] [--teacher PATH]\n"
               "  [--teacher-layers N] [--teacher-width N] [--teacher-heads N] "
               "[--teacher-steps N]\n"
               "  [--student-layers N] [--student-width N] [--student-heads N] [--steps N]\n"
               "  [--batch N] [--context N] [--lr X] [--ways hard,kd,cache,seq,onpolicy] "
               "[--seeds N]\n"
               "  [--temperature X] [--alpha X] [--k N] [--lambda X] [--seq-prompts N]\n"
               "  [--seq-samples N] [--seq-tokens N] [--export FILE.gguf] [--threads N] "
               "[--quick]\n",
               argv0);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") usage(argv[0]);
    if (k == "--fixed-windows") {
      a.fixed_windows = true;
      continue;
    }
    if (k == "--quick") {  // the README's demo: about a minute on 2 cores
      a.vocab = 1024;
      a.teacher_layers = 4, a.teacher_width = 192, a.teacher_heads = 4, a.teacher_steps = 250;
      a.student_layers = 2, a.student_width = 64, a.student_heads = 2, a.steps = 150;
      a.context = 64, a.seeds = 1, a.k = 16;
      a.seq_prompts = 200, a.seq_samples = 1, a.seq_tokens = 48;
      continue;
    }
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    try {
      auto ll = [&] { return std::stoll(v); };
      if (k == "--corpus")
        a.corpus.push_back(v);
      else if (k == "--out")
        a.out = v;
      else if (k == "--vocab")
        a.vocab = std::stoi(v);
      else if (k == "--teacher")
        a.teacher = v;
      else if (k == "--teacher-layers")
        a.teacher_layers = ll();
      else if (k == "--teacher-width")
        a.teacher_width = ll();
      else if (k == "--teacher-heads")
        a.teacher_heads = ll();
      else if (k == "--teacher-steps")
        a.teacher_steps = ll();
      else if (k == "--student-layers")
        a.student_layers = ll();
      else if (k == "--student-width")
        a.student_width = ll();
      else if (k == "--student-heads")
        a.student_heads = ll();
      else if (k == "--steps")
        a.steps = ll();
      else if (k == "--batch")
        a.batch = ll();
      else if (k == "--context")
        a.context = ll();
      else if (k == "--lr")
        a.lr = std::stof(v);
      else if (k == "--ways")
        a.ways = v;
      else if (k == "--seeds")
        a.seeds = std::stoi(v);
      else if (k == "--temperature")
        a.temperature = std::stof(v);
      else if (k == "--alpha")
        a.alpha = std::stof(v);
      else if (k == "--k")
        a.k = ll();
      else if (k == "--lambda")
        a.lambda = std::stof(v);
      else if (k == "--seq-prompts")
        a.seq_prompts = ll();
      else if (k == "--seq-samples")
        a.seq_samples = ll();
      else if (k == "--seq-tokens")
        a.seq_tokens = ll();
      else if (k == "--export")
        a.export_path = v;
      else if (k == "--threads")
        a.threads = std::stoi(v);
      else
        usage(argv[0]);
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "%s: '%s' is not a valid value for %s\n", argv[0], v.c_str(), k.c_str());
      std::exit(2);
    }
  }
  if (a.corpus.empty()) a.corpus.push_back("/usr/share/doc/jargon-text/jargon.txt.gz");
  if (a.seeds < 1) usage(argv[0]);
  return a;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);)
    if (!part.empty()) out.push_back(part);
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
// A prompt from a document: its first eight words (the student's data stays the corpus; the
// teacher writes what follows).
std::string prompt_of(const std::string& doc) {
  size_t pos = 0;
  for (int words = 0; words < 8 && pos != std::string::npos; ++words)
    pos = doc.find_first_of(" \n", pos + 1);
  return doc.substr(0, pos == std::string::npos ? doc.size() : pos);
}

// Another objective's loss on fixed-window batches (the --fixed-windows analysis).
class OnFixedWindows final : public train::Objective {
 public:
  explicit OnFixedWindows(train::Objective& inner) : inner_(inner) {}
  autograd::Var loss(nn::TransformerLM& m, const train::Batch& b, Generator* d,
                     train::LossParts& parts) override {
    return inner_.loss(m, b, d, parts);
  }
  bool fixed_windows() const override { return true; }
  std::string name() const override { return inner_.name() + "-fixed"; }

 private:
  train::Objective& inner_;
};

struct Run {
  double ppl = 0, train_seconds = 0, gen_tok_s = 0;
  std::string sample;
};

struct Stats {
  double mean = 0, lo = 0, hi = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s{0, v[0], v[0]};
  for (double x : v) s.mean += x, s.lo = std::min(s.lo, x), s.hi = std::max(s.hi, x);
  s.mean /= static_cast<double>(v.size());
  return s;
}

// Greedy decoding speed (128 tokens, median of 3) and a sample, on the inference engine.
void generation(const nn::TransformerLM& student, std::shared_ptr<text::Tokenizer> tok, Run& r) {
  auto model = infer::Model::from_module(student, tok);
  infer::Session session(model);
  generate::GenerationConfig g;
  g.temperature = 0;
  g.max_new_tokens = 128;
  g.ignore_eos = true;
  std::vector<double> rate;
  for (int i = 0; i < 3; ++i) {
    const generate::Result res = generate::generate(session, "The hacker", g);
    rate.push_back(static_cast<double>(res.generated_tokens) / res.generation_seconds);
  }
  std::sort(rate.begin(), rate.end());
  r.gen_tok_s = rate[1];
  g.max_new_tokens = 48;
  g.ignore_eos = false;
  g.repetition_penalty = 1.3f;  // greedy text from tiny models loops without it
  const std::string prompt = "A hacker is a person who";
  std::string text = prompt + generate::generate(session, prompt, g).sequences[0].text;
  std::replace(text.begin(), text.end(), '\n', ' ');
  r.sample = text::to_valid_utf8(text.substr(0, 200));
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    if (a.threads > 0) set_num_threads(a.threads);
    std::printf("%s\n", system_info().c_str());
    fs::create_directories(a.out);
    const std::vector<std::string> ways = split(a.ways, ',');
    for (const auto& w : ways)
      if (w != "hard" && w != "kd" && w != "cache" && w != "seq" && w != "onpolicy")
        throw ValueError("unknown way '" + w + "' (hard, kd, cache, seq, onpolicy)");

    // 1. Corpus and tokenizer (kept in --out).
    const std::vector<std::string> docs = train::read_documents(a.corpus);
    std::shared_ptr<text::Tokenizer> tok;
    const std::string tok_path = a.out + "/tokenizer.json";
    if (!a.teacher.empty()) {
      tok =
          std::const_pointer_cast<text::Tokenizer>(infer::Model::load(a.teacher)->tokenizer_ptr());
      if (!tok) throw Error(a.teacher + ": the teacher has no tokenizer");
    } else if (fs::exists(tok_path)) {
      tok = text::load_tokenizer(tok_path);
    } else {
      std::string joined;
      for (const auto& d : docs) joined += d;
      ProgressBar bar("tokenizer", a.vocab - 257, "merge");
      tok = std::make_shared<text::BpeTokenizer>(text::BpeTokenizer::train(
          joined, {.vocab_size = a.vocab,
                   .special_tokens = {"<|endoftext|>"},
                   .progress = [&](int64_t d, int64_t) { bar.update(d); }}));
      bar.finish();
      tok->save(tok_path);
    }
    const auto data = train::TokenDataset::build(
        docs, *tok, {.validation_fraction = 0.05, .seed = 0, .eos_id = tok->special_tokens().eos});
    std::printf("corpus: %zu documents; %zu training and %zu validation tokens (vocabulary %d)\n",
                docs.size(), data.tokens(train::Split::train).size(),
                data.tokens(train::Split::validation).size(), tok->vocab_size());

    train::TrainerOptions opt;
    opt.batch_size = a.batch;
    opt.context = a.context;
    opt.lr = a.lr;
    opt.min_lr = a.lr / 10;
    opt.eval_every = 0;

    // 2. The teacher: loaded, or trained here once and kept.
    std::shared_ptr<const infer::Model> teacher_model;
    std::unique_ptr<nn::TransformerLM> teacher_lm;
    double teacher_train_seconds = 0;
    const std::string teacher_ckpt = a.out + "/teacher/checkpoint.safetensors";
    if (!a.teacher.empty()) {
      teacher_model = infer::Model::load(a.teacher);
      teacher_lm = teacher_model->to_module();
    } else if (fs::exists(teacher_ckpt)) {
      teacher_model = infer::Model::load(teacher_ckpt);
      teacher_lm = teacher_model->to_module();
      std::printf("teacher: %s\n", teacher_ckpt.c_str());
    } else {
      const auto cfg = nn::TransformerConfig::llama(
          tok->vocab_size(), a.context, a.teacher_layers, a.teacher_width, a.teacher_heads,
          a.teacher_heads, a.teacher_width * 8 / 3 / 32 * 32);
      teacher_lm = std::make_unique<nn::TransformerLM>(cfg, 1234);
      std::printf("training the teacher: %lld layers x %lld, %.2fM parameters, %lld steps\n",
                  static_cast<long long>(a.teacher_layers), static_cast<long long>(a.teacher_width),
                  teacher_lm->parameter_count() / 1e6, static_cast<long long>(a.teacher_steps));
      train::TrainerOptions to = opt;
      to.max_steps = a.teacher_steps;
      to.lr = 1e-3f;
      to.min_lr = 1e-4f;
      to.warmup_steps = std::min<int64_t>(100, a.teacher_steps / 10);
      to.out_dir = a.out + "/teacher";
      to.seed = 1234;
      train::Trainer t(*teacher_lm, data, to, tok.get());
      const auto r = t.fit();
      if (r.diverged) throw Error("teacher training: " + r.message);
      teacher_train_seconds = r.seconds;
      teacher_model = infer::Model::load(teacher_ckpt);
    }
    infer::ModelTeacher teacher(teacher_model, 4096);
    const double teacher_ppl =
        train::perplexity(*teacher_lm, data, train::Split::validation, a.context, a.batch);
    Run teacher_run;
    generation(*teacher_lm, tok, teacher_run);
    std::printf("teacher: validation perplexity %.2f, %.2fM parameters\n", teacher_ppl,
                teacher_lm->parameter_count() / 1e6);

    const auto student_cfg = nn::TransformerConfig::llama(
        tok->vocab_size(), a.context, a.student_layers, a.student_width, a.student_heads,
        a.student_heads, a.student_width * 8 / 3 / 32 * 32);
    distill::check_vocabularies(teacher, tok.get(), student_cfg.vocab_size);
    const autograd::DistillOptions kd_opt{.temperature = a.temperature, .alpha = a.alpha};

    // 3. What some ways need, made once and kept: the soft-label cache and the teacher's texts.
    std::unique_ptr<distill::SoftLabelCache> cache;
    double cache_seconds = 0;
    if (std::count(ways.begin(), ways.end(), "cache")) {
      char name[96];
      std::snprintf(name, sizeof name, "/labels-T%lld-k%lld-t%g.slc",
                    static_cast<long long>(a.context), static_cast<long long>(a.k),
                    static_cast<double>(a.temperature));
      const std::string path = a.out + name;
      bool ok = false;
      if (fs::exists(path)) {
        try {
          cache = std::make_unique<distill::SoftLabelCache>(distill::SoftLabelCache::open(path));
          cache->check(data, train::Split::train, a.context, &teacher);
          ok = true;
        } catch (const Error& e) {
          std::printf("rebuilding %s: %s\n", path.c_str(), e.what());
        }
      }
      if (!ok) {
        const auto t0 = std::chrono::steady_clock::now();
        distill::SoftLabelCache::build(teacher, data, train::Split::train, a.context, path,
                                       {.k = a.k, .temperature = a.temperature});
        cache_seconds = seconds_since(t0);
        cache = std::make_unique<distill::SoftLabelCache>(distill::SoftLabelCache::open(path));
      }
      std::printf("soft-label cache: %s, %.1f MB, %lld windows, k %lld\n", path.c_str(),
                  static_cast<double>(fs::file_size(path)) / 1e6,
                  static_cast<long long>(cache->info().windows),
                  static_cast<long long>(cache->info().k));
    }
    std::unique_ptr<train::TokenDataset> seq_data;
    if (std::count(ways.begin(), ways.end(), "seq")) {
      const std::string path = a.out + "/teacher_texts.jsonl";
      std::vector<distill::TeacherText> texts;
      if (fs::exists(path)) {
        texts = distill::load_jsonl(path);
      } else {
        // Prompts from training documents only: the validation documents stay unseen.
        // Prompts: the opening words (at most 24 tokens) of paragraphs long enough to continue.
        std::vector<std::string> prompts;
        Generator pick(7);
        while (static_cast<int64_t>(prompts.size()) < a.seq_prompts) {
          const std::string& d = docs[pick.below(docs.size())];
          if (d.size() < 200) continue;
          std::string p = prompt_of(d);
          if (tok->encode(p).size() <= 24) prompts.push_back(std::move(p));
        }
        distill::SequenceLevelOptions so;
        so.generation.temperature = 0.8f;
        so.generation.top_p = 0.95f;
        so.generation.max_new_tokens = a.seq_tokens;
        so.generation.num_return_sequences = static_cast<int32_t>(a.seq_samples);
        so.generation.seed = 11;
        texts = distill::teacher_corpus(teacher_model, prompts, so);
        distill::save_jsonl(texts, path);
      }
      seq_data = std::make_unique<train::TokenDataset>(train::TokenDataset::build(
          distill::as_documents(texts), *tok,
          {.validation_fraction = 0, .seed = 0, .eos_id = tok->special_tokens().eos}));
      std::printf("teacher texts: %zu (%zu tokens) in %s\n", texts.size(),
                  seq_data->tokens(train::Split::train).size(), path.c_str());
    }

    // 4. The students.
    std::map<std::string, std::vector<Run>> runs;
    std::unique_ptr<nn::TransformerLM> best;
    double best_ppl = 1e30;
    for (int seed = 1; seed <= a.seeds; ++seed) {
      for (const std::string& way : ways) {
        auto student = std::make_unique<nn::TransformerLM>(student_cfg, 100 + seed);
        train::TrainerOptions so = opt;
        so.max_steps = a.steps;
        so.warmup_steps = std::min<int64_t>(100, a.steps / 10);
        so.seed = static_cast<uint64_t>(seed);
        std::unique_ptr<train::Objective> objective;
        if (way == "kd")
          objective = std::make_unique<distill::LogitDistillation>(teacher, kd_opt);
        else if (way == "cache")
          objective = std::make_unique<distill::CachedDistillation>(*cache, data, kd_opt);
        else if (way == "onpolicy")
          objective = std::make_unique<distill::OnPolicyDistillation>(
              teacher,
              distill::OnPolicyOptions{
                  .loss = kd_opt, .lambda = a.lambda, .seed = static_cast<uint64_t>(seed)});
        train::Trainer trainer(*student, way == "seq" ? *seq_data : data, so, tok.get());
        trainer.objective = objective.get();
        train::LmObjective lm;
        std::unique_ptr<train::Objective> fixed;
        if (a.fixed_windows && way != "cache") {
          fixed = std::make_unique<OnFixedWindows>(objective ? *objective : lm);
          trainer.objective = fixed.get();
        }
        std::printf("student %s, seed %d\n", way.c_str(), seed);
        std::fflush(stdout);
        const auto fit = trainer.fit();
        if (fit.diverged) throw Error("student " + way + ": " + fit.message);
        Run r;
        r.train_seconds = fit.seconds;
        r.ppl = train::perplexity(*student, data, train::Split::validation, a.context, a.batch);
        generation(*student, tok, r);
        std::printf("  validation perplexity %.2f, %.1f s\n", r.ppl, r.train_seconds);
        if (r.ppl < best_ppl) best_ppl = r.ppl, best = std::move(student);
        runs[way].push_back(r);
      }
    }

    // 5. Report (also written to --out/results.md).
    char line[512];
    std::string report;
    std::snprintf(
        line, sizeof line,
        "teacher: %lld layers x %lld, %.2fM parameters, validation perplexity %.2f, "
        "greedy decoding %.0f tokens/s%s\n",
        static_cast<long long>(teacher_lm->config().n_layers),
        static_cast<long long>(teacher_lm->config().n_embd), teacher_lm->parameter_count() / 1e6,
        teacher_ppl, teacher_run.gen_tok_s,
        teacher_train_seconds > 0
            ? (", trained in " + std::to_string(static_cast<int>(teacher_train_seconds)) + " s")
                  .c_str()
            : "");
    report += line;
    std::snprintf(line, sizeof line,
                  "students: %lld layers x %lld, %.2fM parameters, %lld steps of %lld x %lld "
                  "tokens, %d seed(s); T %g, alpha %g, k %lld, lambda %g\n\n",
                  static_cast<long long>(a.student_layers), static_cast<long long>(a.student_width),
                  nn::TransformerLM(student_cfg).parameter_count() / 1e6,
                  static_cast<long long>(a.steps), static_cast<long long>(a.batch),
                  static_cast<long long>(a.context), a.seeds, static_cast<double>(a.temperature),
                  static_cast<double>(a.alpha), static_cast<long long>(a.k),
                  static_cast<double>(a.lambda));
    report += line;
    report +=
        "| way | validation perplexity (mean, min-max) | training s (mean) | greedy tokens/s |\n"
        "|---|---|---|---|\n";
    for (const std::string& way : ways) {
      std::vector<double> p, t, g;
      for (const Run& r : runs[way]) {
        p.push_back(r.ppl);
        t.push_back(r.train_seconds);
        g.push_back(r.gen_tok_s);
      }
      const Stats ps = stats(p), ts = stats(t), gs = stats(g);
      std::snprintf(line, sizeof line, "| %s | %.2f (%.2f-%.2f) | %.0f | %.0f |\n", way.c_str(),
                    ps.mean, ps.lo, ps.hi, ts.mean, gs.mean);
      report += line;
    }
    if (cache_seconds > 0) {
      std::snprintf(line, sizeof line, "\nsoft-label cache built in %.0f s\n", cache_seconds);
      report += line;
    }
    report += "\nsamples (greedy, repetition penalty 1.3, up to 48 tokens, first seed):\n";
    report += "- teacher: " + teacher_run.sample + "\n";
    for (const std::string& way : ways) report += "- " + way + ": " + runs[way][0].sample + "\n";
    std::printf("\n%s", report.c_str());
    io::write_file_atomic(a.out + "/results.md", report);
    if (!a.export_path.empty() && best) {
      infer::Model::from_module(*best, tok)->save_gguf(a.export_path, WeightType::f32);
      std::printf("wrote the best student (perplexity %.2f) to %s\n", best_ppl,
                  a.export_path.c_str());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
