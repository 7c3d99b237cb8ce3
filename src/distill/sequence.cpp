// Sequence-level distillation (the teacher writes a corpus) and on-policy distillation (the
// student writes, the teacher grades).
#include <algorithm>
#include <cstdio>

#include "scholar/distill/distill.hpp"
#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::distill {

// --- sequence level
// -------------------------------------------------------------------------------

std::vector<TeacherText> teacher_corpus(std::shared_ptr<const infer::Model> teacher,
                                        const std::vector<std::string>& prompts,
                                        const SequenceLevelOptions& o) {
  if (!teacher) fail<ValueError>("teacher_corpus: no teacher model");
  o.generation.validate();
  const text::Tokenizer& tok = teacher->tokenizer();  // Error if the file has none
  const int32_t n = o.generation.num_return_sequences;
  std::vector<std::vector<int32_t>> ids(prompts.size());
  int64_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ids[i] = tok.encode(prompts[i]);
    if (ids[i].empty()) fail<ValueError>("teacher_corpus: prompt ", i, " is empty");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids[i].size()));
  }
  const int64_t ctx =
      std::min<int64_t>(teacher->arch().context_length, longest + o.generation.max_new_tokens + 1);
  const int32_t seqs = o.generation.num_beams > 1 ? 2 * o.generation.num_beams : n;
  infer::Session session(teacher, {.n_ctx = ctx * seqs,
                                   .max_batch = std::max<int64_t>(longest, seqs),
                                   .max_sequences = std::max(seqs, 1)});
  std::unique_ptr<ProgressBar> bar;
  if (o.progress)
    bar = std::make_unique<ProgressBar>("teacher corpus", static_cast<int64_t>(prompts.size()),
                                        "prompt", o.on_progress);
  std::vector<TeacherText> out;
  out.reserve(prompts.size() * static_cast<size_t>(n));
  int64_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    generate::GenerationConfig cfg = o.generation;
    cfg.seed = o.generation.seed + 7919 * i;  // each prompt its own stream, reproducibly
    const generate::Result r = generate::generate(session, ids[i], cfg, &tok);
    // Generated text may end inside a character: stored texts are valid UTF-8.
    for (const generate::Sequence& s : r.sequences)
      out.push_back({prompts[i], text::to_valid_utf8(s.text)});
    tokens += r.generated_tokens;
    if (bar) bar->update(static_cast<int64_t>(i + 1), std::to_string(tokens) + " tokens");
  }
  return out;
}

std::vector<std::string> as_documents(const std::vector<TeacherText>& texts) {
  std::vector<std::string> docs;
  docs.reserve(texts.size());
  for (const TeacherText& t : texts) docs.push_back(t.prompt + t.completion);
  return docs;
}

void save_jsonl(const std::vector<TeacherText>& texts, const std::string& path) {
  std::string body;
  for (const TeacherText& t : texts) {
    io::Json j = io::Json::object();
    j.set("prompt", io::Json(t.prompt));
    j.set("completion", io::Json(t.completion));
    body += j.dump();
    body += '\n';
  }
  io::write_file_atomic(path, body);
}

std::vector<TeacherText> load_jsonl(const std::string& path) {
  const std::string body = io::read_file(path);
  std::vector<TeacherText> out;
  size_t start = 0;
  for (int64_t line = 1; start < body.size(); ++line) {
    size_t end = body.find('\n', start);
    if (end == std::string::npos) end = body.size();
    const std::string_view text(body.data() + start, end - start);
    start = end + 1;
    if (text.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + " line " + std::to_string(line);
    const io::Json j = io::Json::parse(text, where);
    out.push_back({j.at("prompt", where).as_string(where + " prompt"),
                   j.at("completion", where).as_string(where + " completion")});
  }
  return out;
}

// --- on policy
// --------------------------------------------------------------------------------------

OnPolicyDistillation::OnPolicyDistillation(train::Teacher& teacher, OnPolicyOptions options)
    : teacher_(teacher), options_(std::move(options)), gen_(options_.seed) {
  options_.loss.validate();
  if (!(options_.lambda >= 0 && options_.lambda <= 1))
    fail<ValueError>("OnPolicyDistillation: lambda must be in [0, 1], got ", options_.lambda);
  if (options_.prompt_tokens < 0)
    fail<ValueError>("OnPolicyDistillation: prompt_tokens must be >= 0, got ",
                     options_.prompt_tokens);
  if (!(options_.sample_temperature >= 0))
    fail<ValueError>("OnPolicyDistillation: sample_temperature must be >= 0, got ",
                     options_.sample_temperature);
}

Tensor<int32_t> OnPolicyDistillation::student_windows(const nn::TransformerLM& model,
                                                      const train::Batch& batch) {
  const int64_t B = batch.inputs.size(0), T = batch.inputs.size(1);
  const int64_t P =
      std::clamp<int64_t>(options_.prompt_tokens ? options_.prompt_tokens : T / 2, 1, T);
  if (T > model.config().context_length)
    fail<ValueError>("OnPolicyDistillation: windows of ", T, " tokens exceed the student's ",
                     "context of ", model.config().context_length);
  const auto student = infer::Model::from_module(model);
  const int64_t group = std::min<int64_t>(B, 64);
  infer::Session session(
      student,
      {.n_ctx = group * T, .max_batch = group * P, .max_sequences = static_cast<int>(group)});
  const Tensor<int32_t> in = batch.inputs.contiguous();
  Tensor<int32_t> out = Tensor<int32_t>::empty({B, T});
  const auto V = static_cast<size_t>(model.config().vocab_size);
  generate::GenerationConfig cfg;
  cfg.temperature = options_.sample_temperature;
  for (int64_t b0 = 0; b0 < B; b0 += group) {
    const int64_t n = std::min(group, B - b0);
    std::vector<generate::Sampler> samplers;
    infer::Batch step;
    for (int64_t b = 0; b < n; ++b) {
      cfg.seed = gen_.next_u64();
      samplers.emplace_back(cfg);
      for (int64_t t = 0; t < P; ++t) {
        const int32_t id = in.data()[(b0 + b) * T + t];
        out.data()[(b0 + b) * T + t] = id;
        samplers.back().accept(id);
        step.add(id, t, static_cast<int32_t>(b), t == P - 1);
      }
    }
    session.clear();
    std::span<const float> logits = session.decode(step);
    for (int64_t t = P; t < T; ++t) {
      step.clear();
      for (int64_t b = 0; b < n; ++b) {
        const int32_t id =
            samplers[static_cast<size_t>(b)].sample(logits.subspan(static_cast<size_t>(b) * V, V));
        samplers[static_cast<size_t>(b)].accept(id);
        out.data()[(b0 + b) * T + t] = id;
        step.add(id, t, static_cast<int32_t>(b), true);
      }
      if (t + 1 < T) logits = session.decode(step);
    }
  }
  return out;
}

autograd::Var OnPolicyDistillation::loss(nn::TransformerLM& model, const train::Batch& batch,
                                         Generator* dropout, train::LossParts& parts) {
  if (batch.segments.defined())
    fail<ValueError>(
        "OnPolicyDistillation: the batch packs several sequences per row, which a "
        "teacher would read as one (build the InstructionDataset with pack = false)");
  const int64_t V = model.config().vocab_size;
  const bool on_policy = gen_.uniform() < options_.lambda;
  Tensor<int32_t> inputs = batch.inputs, targets = batch.targets;
  autograd::DistillOptions o = options_.loss;
  if (on_policy) {
    // The student's windows: inputs are the prompt and its own tokens; the target of position t
    // is the token the student wrote at t + 1. Positions whose next token is still the prompt,
    // and the last (nothing follows it), have no target.
    inputs = student_windows(model, batch);
    const int64_t B = inputs.size(0), T = inputs.size(1);
    const int64_t P =
        std::clamp<int64_t>(options_.prompt_tokens ? options_.prompt_tokens : T / 2, 1, T);
    targets = Tensor<int32_t>::empty({B, T});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        targets.data()[b * T + t] =
            t + 1 >= P && t + 1 < T ? inputs.data()[b * T + t + 1] : o.ignore_index;
    o.alpha = 1.0f;
  }
  Tensor<float> t = teacher_.logits(inputs);
  if (t.rank() != 3 || t.size(2) < V)
    fail<ShapeError>("OnPolicyDistillation: the teacher (", teacher_.describe(), ") gave logits ",
                     t.shape().str(), " for a vocabulary of ", V);
  if (t.size(2) > V) t = t.slice(2, 0, V);
  const autograd::Var s = model.forward(inputs, dropout);
  autograd::DistillTerms terms;
  autograd::Var l = autograd::distill_loss(s, autograd::SoftTargets::full(t), targets, o, &terms);
  parts = {{"kd", terms.soft}, {"ce", terms.hard}, {"on_policy", on_policy ? 1.0 : 0.0}};
  return l;
}

}  // namespace scholar::distill
