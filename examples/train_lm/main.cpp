// train_lm: trains a byte-level BPE tokenizer and a small GPT on a text corpus, printing samples as
// it goes, and writes tokenizer.json and a checkpoint that resumes exactly.
//
//   train_lm [--corpus FILE]... [--out DIR] [--vocab N] [--family gpt2|llama] [--layers N]
//            [--width N] [--heads N] [--context N] [--batch N] [--steps N] [--lr X]
//            [--eval-every N] [--sample-every N] [--threads N] [--seed N] [--resume]
//            [--matmul-precision f32|bf16] [--shard-optimizer]
//
// The default corpus is the Jargon File from Debian's jargon-text package. Started by mpiexec (and
// built with SCHOLAR_MPI=ON), it trains data-parallel: --batch rows on every rank, rank 0 printing
// and writing, --shard-optimizer splitting the AdamW moments between the ranks:
//   OMP_NUM_THREADS=1 mpiexec -np 2 train_lm --threads 1 --batch 8
#include <scholar/scholar.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

using namespace scholar;

namespace {

struct Args {
  std::vector<std::string> corpus;
  std::string out = "runs/train_lm";
  int32_t vocab = 4096;
  std::string family = "gpt2";
  int64_t layers = 4, width = 256, heads = 4, context = 128, batch = 16, steps = 2000;
  float lr = 1e-3f;
  int64_t eval_every = 100, sample_every = 500;
  int threads = 0;
  uint64_t seed = 1;
  bool resume = false;
  bool shard_optimizer = false;
  std::string matmul_precision;  // empty: as SCHOLAR_MATMUL_PRECISION says (f32 by default)
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [--corpus FILE]... [--out DIR] [--vocab N] [--family gpt2|llama]\n"
      "          [--layers N] [--width N] [--heads N] [--context N] [--batch N] [--steps N]\n"
      "          [--lr X] [--eval-every N] [--sample-every N] [--threads N] [--seed N] "
      "[--resume]\n"
      "          [--matmul-precision f32|bf16] [--shard-optimizer]\n",
      argv0);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--resume") {
      a.resume = true;
      continue;
    }
    if (k == "--shard-optimizer") {
      a.shard_optimizer = true;
      continue;
    }
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    try {
      if (k == "--corpus")
        a.corpus.push_back(v);
      else if (k == "--out")
        a.out = v;
      else if (k == "--vocab")
        a.vocab = std::stoi(v);
      else if (k == "--family")
        a.family = v;
      else if (k == "--layers")
        a.layers = std::stoll(v);
      else if (k == "--width")
        a.width = std::stoll(v);
      else if (k == "--heads")
        a.heads = std::stoll(v);
      else if (k == "--context")
        a.context = std::stoll(v);
      else if (k == "--batch")
        a.batch = std::stoll(v);
      else if (k == "--steps")
        a.steps = std::stoll(v);
      else if (k == "--lr")
        a.lr = std::stof(v);
      else if (k == "--eval-every")
        a.eval_every = std::stoll(v);
      else if (k == "--sample-every")
        a.sample_every = std::stoll(v);
      else if (k == "--threads")
        a.threads = std::stoi(v);
      else if (k == "--seed")
        a.seed = std::stoull(v);
      else if (k == "--matmul-precision" && (v == "f32" || v == "bf16"))
        a.matmul_precision = v;
      else
        usage(argv[0]);
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "%s: '%s' is not a valid value for %s\n", argv[0], v.c_str(), k.c_str());
      std::exit(2);
    }
  }
  if (a.corpus.empty()) a.corpus.push_back("/usr/share/doc/jargon-text/jargon.txt.gz");
  if (a.family != "gpt2" && a.family != "llama") usage(argv[0]);
  return a;
}

// Samples `n` tokens after `prompt` at the given temperature (full forward pass per token; the
// inference engine with a KV cache is the fast way, this keeps the example self-contained).
std::string sample(const nn::TransformerLM& model, const text::Tokenizer& tok,
                   const std::string& prompt, int n, float temperature, Generator& gen) {
  autograd::NoGradGuard no_grad;
  std::vector<int32_t> ids = tok.encode(prompt);
  const int64_t ctx = model.config().context_length;
  for (int i = 0; i < n; ++i) {
    const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - ctx);
    const int64_t T = static_cast<int64_t>(ids.size()) - start;
    Tensor<int32_t> x = Tensor<int32_t>::from(
        {1, T}, std::span<const int32_t>(ids.data() + start, static_cast<size_t>(T)));
    const Tensor<float> logits = model.forward(x).value().select(1, T - 1).select(0, 0);
    const Tensor<float> p = softmax(logits * (1.0f / temperature), -1);
    float u = gen.uniform(), acc = 0;
    int32_t next = static_cast<int32_t>(p.numel() - 1);
    for (int64_t v = 0; v < p.numel(); ++v) {
      acc += p(v);
      if (u < acc) {
        next = static_cast<int32_t>(v);
        break;
      }
    }
    if (tok.is_special(next)) break;
    ids.push_back(next);
  }
  return tok.decode(ids);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    // Under mpiexec: one rank of a data-parallel run. The others stay quiet.
    std::unique_ptr<train::Communicator> world;
    if (train::launched_by_mpi()) {
      if (train::mpi_available())
        world = train::mpi_world();
      else
        std::fprintf(stderr,
                     "warning: started by mpiexec, but this scholar was built without MPI "
                     "(-DSCHOLAR_MPI=ON): every process trains alone\n");
    }
    const bool leader = !world || world->rank() == 0;
    if (!leader && !std::freopen("/dev/null", "w", stdout)) throw Error("cannot silence stdout");
    if (a.threads > 0) set_num_threads(a.threads);
    if (!a.matmul_precision.empty())
      kernels::set_matmul_precision(a.matmul_precision == "bf16" ? kernels::MatmulPrecision::bf16
                                                                 : kernels::MatmulPrecision::f32);
    std::printf("%s\n", system_info().c_str());
    std::filesystem::create_directories(a.out);
    const std::string ckpt = a.out + "/checkpoint.safetensors";
    const bool resuming = a.resume && std::filesystem::exists(ckpt);

    // 1. Tokenizer: trained on the corpus (or taken from the checkpoint when resuming).
    std::vector<std::string> docs = train::read_documents(a.corpus);
    size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();
    std::printf("corpus: %zu documents, %.2f MB from %zu file(s)\n", docs.size(), bytes / 1e6,
                a.corpus.size());
    std::shared_ptr<text::Tokenizer> tok_ptr;
    if (resuming) {
      auto info = train::read_checkpoint_info(ckpt);
      if (!info.tokenizer) throw Error(ckpt + ": the checkpoint has no tokenizer");
      tok_ptr = info.tokenizer;
      std::printf("resuming from %s at step %lld\n", ckpt.c_str(),
                  static_cast<long long>(info.step));
    } else {
      std::string joined;
      joined.reserve(bytes);
      for (const auto& d : docs) joined += d;
      ProgressBar bar("tokenizer", a.vocab - 257, "merge");
      tok_ptr = std::make_shared<text::BpeTokenizer>(
          text::BpeTokenizer::train(joined, {.vocab_size = a.vocab,
                                             .special_tokens = {"<|endoftext|>"},
                                             .progress = [&](int64_t d, int64_t) {
                                               if (leader) bar.update(d);
                                             }}));
      if (leader) {
        bar.finish();
        tok_ptr->save(a.out + "/tokenizer.json");
      }
    }
    const text::Tokenizer& tok = *tok_ptr;
    const int32_t eot = tok.special_tokens().eos;

    // 2. Data: documents split between training and validation, tokenized in parallel.
    const auto data = train::TokenDataset::build(
        docs, tok, {.validation_fraction = 0.05, .seed = a.seed, .eos_id = eot});
    std::printf("tokens: %zu training, %zu validation (%.2f bytes per token)\n",
                data.tokens(train::Split::train).size(),
                data.tokens(train::Split::validation).size(),
                static_cast<double>(bytes) /
                    static_cast<double>(data.tokens(train::Split::train).size() +
                                        data.tokens(train::Split::validation).size()));

    // 3. Model.
    const auto cfg =
        a.family == "gpt2"
            ? nn::TransformerConfig::gpt2(tok.vocab_size(), a.context, a.layers, a.width, a.heads)
            : nn::TransformerConfig::llama(tok.vocab_size(), a.context, a.layers, a.width, a.heads,
                                           std::max<int64_t>(1, a.heads / 2),
                                           a.width * 8 / 3 / 64 * 64);
    nn::TransformerLM model(cfg, a.seed);
    std::printf("model: %s, %lld layers, width %lld, %lld heads, context %lld: %.2fM parameters\n",
                a.family.c_str(), static_cast<long long>(a.layers), static_cast<long long>(a.width),
                static_cast<long long>(a.heads), static_cast<long long>(a.context),
                model.parameter_count() / 1e6);

    // 4. Training, with samples now and then.
    train::TrainerOptions opt;
    opt.batch_size = a.batch;
    opt.context = a.context;
    opt.max_steps = a.steps;
    opt.lr = a.lr;
    opt.min_lr = a.lr / 10;
    opt.warmup_steps = std::min<int64_t>(100, a.steps / 10);
    opt.eval_every = a.eval_every;
    opt.checkpoint_every = std::max<int64_t>(a.eval_every, a.steps / 4);
    opt.out_dir = a.out;
    opt.seed = a.seed;
    train::Trainer trainer(model, data, opt, &tok);
    trainer.communicator = world.get();
    trainer.distributed.shard_optimizer = a.shard_optimizer;
    if (world) std::printf("data-parallel: %s\n", trainer.distributed_summary().c_str());
    if (resuming) trainer.load_checkpoint(ckpt);
    Generator sample_gen(a.seed + 7);
    trainer.on_step = [&](const train::StepInfo& s) {
      if (leader && a.sample_every > 0 && s.step % a.sample_every == 0) {
        std::fprintf(stderr, "\n");
        std::printf("--- sample at step %lld: %s\n", static_cast<long long>(s.step),
                    sample(model, tok, "hacker", 40, 0.8f, sample_gen).c_str());
        model.train();
      }
    };
    const auto result = trainer.fit();
    if (result.diverged) {
      std::fprintf(stderr, "%s\n", result.message.c_str());
      return 1;
    }
    const double val = trainer.evaluate();
    std::printf("done: %lld steps in %.1f s; validation loss %.4f, perplexity %.1f\n",
                static_cast<long long>(result.steps), result.seconds, val, std::exp(val));
    std::printf("--- final sample: %s\n",
                sample(model, tok, "The hacker", 60, 0.7f, sample_gen).c_str());
    std::printf("wrote %s/tokenizer.json, %s, %s/log.csv\n", a.out.c_str(), ckpt.c_str(),
                a.out.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
