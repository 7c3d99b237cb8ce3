// Distillation objectives and the soft-label cache.
#include "scholar/distill/distill.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <queue>

#include "core/digest.hpp"
#include "scholar/error.hpp"
#include "scholar/io/json.hpp"
#include "scholar/kernels/kernels.hpp"
#include "scholar/parallel.hpp"
#include "scholar/tensor/dtype.hpp"

namespace scholar::distill {

namespace {

// Tokens the tokenizer defines, or the vocabulary size without one.
int64_t token_count(const train::Teacher& t) {
  return t.tokenizer() ? std::min<int64_t>(t.tokenizer()->vocab_size(), t.vocab_size())
                       : t.vocab_size();
}

// The teacher's logits for `windows`, restricted to the first V columns (a view, no copy).
Tensor<float> teacher_logits(train::Teacher& teacher, const Tensor<int32_t>& windows, int64_t V) {
  Tensor<float> t = teacher.logits(windows);
  if (t.rank() != 3 || t.size(0) != windows.size(0) || t.size(1) != windows.size(1) ||
      t.size(2) < V)
    fail<ShapeError>("distill: the teacher (", teacher.describe(), ") gave logits ",
                     t.shape().str(), " for windows ", windows.shape().str(), " and vocabulary ",
                     V);
  return t.size(2) == V ? t : t.slice(2, 0, V);
}

train::LossParts parts_of(const autograd::DistillTerms& terms) {
  return {{"kd", terms.soft}, {"ce", terms.hard}};
}

}  // namespace

void check_vocabularies(const train::Teacher& teacher, const text::Tokenizer* student_tokenizer,
                        int64_t student_vocab) {
  const text::Tokenizer* tt = teacher.tokenizer();
  if (tt && student_tokenizer && tt->fingerprint() != student_tokenizer->fingerprint())
    fail<ValueError>("distill: the teacher (", teacher.describe(),
                     ") and the student use different ", "tokenizers (fingerprints ",
                     tt->fingerprint(), " and ", student_tokenizer->fingerprint(), ", ",
                     tt->vocab_size(), " and ", student_tokenizer->vocab_size(),
                     " tokens): distillation needs one vocabulary");
  const int64_t tv = teacher.vocab_size();
  if (tv == student_vocab) return;
  // A padded teacher vocabulary teaches a student that covers every real token.
  const int64_t tokens = tt ? tt->vocab_size() : -1;
  if (tv > student_vocab && tokens >= 0 && tokens <= student_vocab) return;
  fail<ValueError>("distill: the teacher (", teacher.describe(), ") has a vocabulary of ", tv,
                   " and the student of ", student_vocab,
                   tokens >= 0 ? " (the tokenizer has " + std::to_string(tokens) + " tokens)" : "",
                   ": they must be equal, or the teacher's padded beyond the tokenizer's tokens");
}

// --- live teacher
// ---------------------------------------------------------------------------------

LogitDistillation::LogitDistillation(train::Teacher& teacher, autograd::DistillOptions options)
    : teacher_(teacher), options_(options) {
  options_.validate();
}

autograd::Var LogitDistillation::loss(nn::TransformerLM& model, const train::Batch& batch,
                                      Generator* dropout, train::LossParts& parts) {
  if (batch.segments.defined())
    fail<ValueError>(
        "LogitDistillation: the batch packs several sequences per row, which a "
        "teacher would read as one (build the InstructionDataset with pack = false)");
  const int64_t V = model.config().vocab_size;
  const Tensor<float> t = teacher_logits(teacher_, batch.inputs, V);
  const autograd::Var s = model.forward(batch.inputs, dropout);
  autograd::DistillTerms terms;
  autograd::Var l =
      autograd::distill_loss(s, autograd::SoftTargets::full(t), batch.targets, options_, &terms);
  parts = parts_of(terms);
  return l;
}

// --- soft-label cache ----------------------------------------------------------------------------

namespace {

constexpr char kMagic[8] = {'S', 'C', 'H', 'S', 'L', 'C', '0', '1'};
constexpr const char* kFormat = "scholar-soft-labels/1";

const char* split_name(train::Split s) {
  return s == train::Split::train ? "train" : "validation";
}

io::Json info_json(const SoftLabelInfo& i) {
  io::Json j = io::Json::object();
  j.set("format", io::Json(kFormat));
  j.set("teacher", io::Json(i.teacher));
  j.set("teacher_name", io::Json(i.teacher_name));
  j.set("tokenizer", io::Json(i.tokenizer));
  j.set("corpus", io::Json(i.corpus));
  j.set("split", io::Json(i.split));
  j.set("window", io::Json(i.window));
  j.set("windows", io::Json(i.windows));
  j.set("k", io::Json(i.k));
  j.set("temperature", io::Json(static_cast<double>(i.temperature)));
  j.set("vocab", io::Json(i.vocab));
  return j;
}

// The k largest of x[0..n) in descending order (ties: the lower id first), by a min-heap that most
// values fail to enter after one comparison.
void top_k(const float* x, int64_t n, int64_t k, std::vector<int32_t>& out) {
  auto worse = [&](int32_t a, int32_t b) {  // "a ranks below b"
    return x[a] < x[b] || (x[a] == x[b] && a > b);
  };
  auto heap_cmp = [&](int32_t a, int32_t b) { return worse(b, a); };  // min-heap on rank
  out.clear();
  for (int32_t i = 0; i < n; ++i) {
    if (static_cast<int64_t>(out.size()) < k) {
      out.push_back(i);
      std::push_heap(out.begin(), out.end(), heap_cmp);
    } else if (worse(out.front(), i)) {
      std::pop_heap(out.begin(), out.end(), heap_cmp);
      out.back() = i;
      std::push_heap(out.begin(), out.end(), heap_cmp);
    }
  }
  std::sort(out.begin(), out.end(), [&](int32_t a, int32_t b) { return worse(b, a); });
}

}  // namespace

std::string corpus_digest(const std::vector<int32_t>& tokens) {
  detail::Digest d;
  d.bytes(tokens.data(), tokens.size() * sizeof(int32_t));
  return d.hex();
}

void SoftLabelCache::build(train::Teacher& teacher, const train::TokenDataset& data,
                           train::Split split, int64_t window, const std::string& path,
                           const BuildOptions& o) {
  if (o.k < 1) fail<ValueError>("SoftLabelCache: k must be positive, got ", o.k);
  if (!(o.temperature > 0) || !std::isfinite(o.temperature))
    fail<ValueError>("SoftLabelCache: temperature must be > 0, got ", o.temperature);
  if (o.batch < 1) fail<ValueError>("SoftLabelCache: batch must be positive, got ", o.batch);
  const int64_t W = data.window_count(split, window);
  if (W == 0)
    fail<ValueError>("SoftLabelCache: the ", split_name(split), " split has no whole window of ",
                     window + 1, " tokens");
  const int64_t V = token_count(teacher);
  if (o.k > V) fail<ValueError>("SoftLabelCache: k ", o.k, " exceeds the vocabulary of ", V);
  if (data.max_token() > V)
    fail<ValueError>("SoftLabelCache: the data holds token id ", data.max_token() - 1,
                     ", outside the teacher's vocabulary of ", V);
  SoftLabelInfo info{teacher.fingerprint(),
                     teacher.describe(),
                     teacher.tokenizer() ? teacher.tokenizer()->fingerprint() : std::string(),
                     corpus_digest(data.tokens(split)),
                     split_name(split),
                     window,
                     W,
                     o.k,
                     o.temperature,
                     V};
  const int id_bytes = V <= 65536 ? 2 : 4;
  const std::string header = info_json(info).dump();
  io::AtomicFile out(path);
  out.write(kMagic, 8);
  const uint64_t hl = header.size();
  out.write(&hl, 8);
  out.write(header);
  const size_t head = 16 + header.size();
  const std::string pad((64 - head % 64) % 64, '\0');
  out.write(pad);

  // Two passes over the windows would run the teacher twice; instead the log-probabilities go to
  // a second temporary file while the ids stream out, and are appended at the end.
  io::AtomicFile lp_tmp(path + ".logprobs");
  std::unique_ptr<ProgressBar> bar;
  if (o.progress) bar = std::make_unique<ProgressBar>("soft labels", W, "window", o.on_progress);
  const int64_t K = o.k, T = window;
  const float inv_t = 1.0f / o.temperature;
  for (int64_t w0 = 0; w0 < W; w0 += o.batch) {
    const int64_t n = std::min(o.batch, W - w0);
    std::vector<int64_t> which(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) which[static_cast<size_t>(i)] = w0 + i;
    const train::Batch b = data.windows_at(split, window, which);
    const Tensor<float> logits = teacher_logits(teacher, b.inputs, V);
    const int64_t rows = n * T, row_stride = logits.stride(1);
    std::vector<uint8_t> ids(static_cast<size_t>(rows * K) * static_cast<size_t>(id_bytes));
    std::vector<uint16_t> lps(static_cast<size_t>(rows * K));
    parallel_for(0, rows, 4, [&](int64_t r0, int64_t r1) {
      std::vector<float> z(static_cast<size_t>(V));
      std::vector<int32_t> top;
      const kernels::KernelTable& kt = kernels::active();
      for (int64_t r = r0; r < r1; ++r) {
        const float* row = logits.data() + (r / T) * logits.stride(0) + (r % T) * row_stride;
        kt.scale(z.data(), row, inv_t, static_cast<size_t>(V));
        kt.log_softmax(z.data(), z.data(), static_cast<size_t>(V));
        top_k(z.data(), V, K, top);
        for (int64_t j = 0; j < K; ++j) {
          const int32_t id = top[static_cast<size_t>(j)];
          const size_t at = static_cast<size_t>(r * K + j);
          if (id_bytes == 2) {
            const auto v = static_cast<uint16_t>(id);
            std::memcpy(ids.data() + at * 2, &v, 2);
          } else {
            std::memcpy(ids.data() + at * 4, &id, 4);
          }
          lps[at] = f16::from_float(z[static_cast<size_t>(id)]);
        }
      }
    });
    out.write(ids.data(), ids.size());
    lp_tmp.write(lps.data(), lps.size() * 2);
    if (bar) bar->update(w0 + n);
  }
  if (bar) bar->finish();
  {
    // Append the log-probabilities from their temporary file (written unbuffered, so complete;
    // lp_tmp removes it, never committed).
    const auto lp = io::MappedFile::open(lp_tmp.temp_path());
    out.write(lp->data(), lp->size());
  }
  out.commit();
}

SoftLabelCache SoftLabelCache::open(const std::string& path) {
  SoftLabelCache c;
  c.path_ = path;
  c.file_ = io::MappedFile::open(path);
  const uint8_t* p = c.file_->data();
  const size_t size = c.file_->size();
  if (size < 16 || std::memcmp(p, kMagic, 8) != 0)
    fail<FormatError>(path, ": not a scholar soft-label cache (no SCHSLC01 magic)");
  uint64_t hl;
  std::memcpy(&hl, p + 8, 8);
  if (hl > size - 16) fail<FormatError>(path, ": header length ", hl, " exceeds the file");
  const std::string where = path + " header";
  const io::Json j =
      io::Json::parse(std::string_view(reinterpret_cast<const char*>(p + 16), hl), where);
  if (j.at("format", where).as_string(where) != kFormat)
    fail<FormatError>(path, ": format '", j.at("format", where).as_string(where), "', expected '",
                      kFormat, "'");
  SoftLabelInfo& i = c.info_;
  i.teacher = j.at("teacher", where).as_string(where);
  i.teacher_name = j.at("teacher_name", where).as_string(where);
  i.tokenizer = j.at("tokenizer", where).as_string(where);
  i.corpus = j.at("corpus", where).as_string(where);
  i.split = j.at("split", where).as_string(where);
  i.window = j.at("window", where).as_int(where);
  i.windows = j.at("windows", where).as_int(where);
  i.k = j.at("k", where).as_int(where);
  i.temperature = static_cast<float>(j.at("temperature", where).as_double(where));
  i.vocab = j.at("vocab", where).as_int(where);
  constexpr int64_t kMax = int64_t{1} << 40;
  if (i.window < 1 || i.windows < 1 || i.k < 1 || i.vocab < i.k || i.window > kMax ||
      i.windows > kMax || i.k > kMax || !(i.temperature > 0))
    fail<FormatError>(path, ": header values out of range (window ", i.window, ", windows ",
                      i.windows, ", k ", i.k, ", vocab ", i.vocab, ")");
  c.id_bytes_ = i.vocab <= 65536 ? 2 : 4;
  const size_t head = 16 + hl;
  const size_t data = head + (64 - head % 64) % 64;
  const auto n = static_cast<__uint128_t>(i.windows) * static_cast<__uint128_t>(i.window) *
                 static_cast<__uint128_t>(i.k);
  const __uint128_t want = data + n * static_cast<__uint128_t>(c.id_bytes_ + 2);
  if (want != size)
    fail<FormatError>(path, ": ", size, " bytes, but the header describes ",
                      static_cast<unsigned long long>(want), " (", i.windows, " windows of ",
                      i.window, " tokens, k ", i.k, "): truncated or damaged");
  c.ids_ = p + data;
  c.log_probs_ = reinterpret_cast<const uint16_t*>(p + data + static_cast<size_t>(n) * c.id_bytes_);
  return c;
}

void SoftLabelCache::check(const train::TokenDataset& data, train::Split split, int64_t window,
                           const train::Teacher* teacher) const {
  auto refuse = [&](const std::string& what, const std::string& cache, const std::string& now) {
    fail<ValueError>(path_, ": this soft-label cache was made for another ", what,
                     " (cache: ", cache, ", now: ", now, ")");
  };
  if (info_.split != split_name(split)) refuse("split", info_.split, split_name(split));
  if (info_.window != window)
    refuse("window length", std::to_string(info_.window), std::to_string(window));
  const std::string corpus = corpus_digest(data.tokens(split));
  if (info_.corpus != corpus) refuse("corpus", info_.corpus, corpus);
  if (teacher && teacher->fingerprint() != info_.teacher)
    refuse("teacher", info_.teacher_name + " " + info_.teacher,
           teacher->describe() + " " + teacher->fingerprint());
}

autograd::SoftTargets SoftLabelCache::lookup(const std::vector<int64_t>& windows) const {
  const int64_t B = static_cast<int64_t>(windows.size()), T = info_.window, K = info_.k;
  Tensor<int32_t> ids = Tensor<int32_t>::empty({B, T, K});
  Tensor<float> lps = Tensor<float>::empty({B, T, K});
  const size_t per = static_cast<size_t>(T * K);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t w = windows[static_cast<size_t>(b)];
    if (w < 0 || w >= info_.windows)
      fail<IndexError>(path_, ": window ", w, " is outside [0, ", info_.windows, ")");
    const size_t at = static_cast<size_t>(w) * per;
    int32_t* id = ids.data() + static_cast<size_t>(b) * per;
    float* lp = lps.data() + static_cast<size_t>(b) * per;
    if (id_bytes_ == 2) {
      for (size_t i = 0; i < per; ++i) {
        uint16_t v;
        std::memcpy(&v, ids_ + (at + i) * 2, 2);
        id[i] = v;
      }
    } else {
      std::memcpy(id, ids_ + at * 4, per * 4);
    }
    for (size_t i = 0; i < per; ++i) lp[i] = static_cast<float>(f16::from_bits(log_probs_[at + i]));
  }
  return autograd::SoftTargets::top_k(std::move(ids), std::move(lps));
}

CachedDistillation::CachedDistillation(const SoftLabelCache& cache, const train::TokenDataset& data,
                                       autograd::DistillOptions options)
    : cache_(cache), options_(options) {
  cache.check(data, train::Split::train, cache.info().window);
  options_.temperature = cache.info().temperature;
  options_.validate();
}

autograd::Var CachedDistillation::loss(nn::TransformerLM& model, const train::Batch& batch,
                                       Generator* dropout, train::LossParts& parts) {
  if (batch.windows.empty())
    fail<ValueError>("CachedDistillation: the batch has no window indices (draw it with ",
                     "TokenDataset::window_batch)");
  if (batch.inputs.size(1) != cache_.info().window)
    fail<ValueError>("CachedDistillation: windows of ", batch.inputs.size(1),
                     " tokens, but the cache ", cache_.path(), " holds windows of ",
                     cache_.info().window, " (set the trainer's context to it)");
  if (cache_.info().vocab > model.config().vocab_size)
    fail<ValueError>("CachedDistillation: the cache covers a vocabulary of ", cache_.info().vocab,
                     ", the student only ", model.config().vocab_size);
  const autograd::SoftTargets soft = cache_.lookup(batch.windows);
  const autograd::Var s = model.forward(batch.inputs, dropout);
  autograd::DistillTerms terms;
  autograd::Var l = autograd::distill_loss(s, soft, batch.targets, options_, &terms);
  parts = parts_of(terms);
  return l;
}

namespace {

std::string options_fingerprint(const autograd::DistillOptions& o) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "T=%.9g alpha=%.9g divergence=%d beta=%.9g ignore=%d",
                static_cast<double>(o.temperature), static_cast<double>(o.alpha),
                static_cast<int>(o.divergence), static_cast<double>(o.beta), o.ignore_index);
  return buf;
}

}  // namespace

std::string LogitDistillation::fingerprint() const {
  return name() + " teacher=" + teacher_.fingerprint() + " " + options_fingerprint(options_);
}

std::string CachedDistillation::fingerprint() const {
  return name() + " teacher=" + cache_.info().teacher + " corpus=" + cache_.info().corpus + " " +
         options_fingerprint(options_);
}

std::string OnPolicyDistillation::fingerprint() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, " lambda=%.9g prompt=%lld sample_T=%.9g seed=%llu",
                static_cast<double>(options_.lambda),
                static_cast<long long>(options_.prompt_tokens),
                static_cast<double>(options_.sample_temperature),
                static_cast<unsigned long long>(options_.seed));
  return name() + " teacher=" + teacher_.fingerprint() + " " + options_fingerprint(options_.loss) +
         buf;
}

}  // namespace scholar::distill
