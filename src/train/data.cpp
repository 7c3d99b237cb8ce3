// Corpus files, documents, and token datasets.
#include "scholar/train/data.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/digest.hpp"
#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/parallel.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::train {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const std::string_view x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

std::string gunzip(const std::string& path) {
  if (path.find('\'') != std::string::npos)
    fail<IoError>(path, ": cannot decompress a path containing a single quote");
  if (::access(path.c_str(), R_OK) != 0)
    fail<IoError>(path, ": cannot open: ", std::strerror(errno));
  const std::string cmd = "gzip -dc -- '" + path + "' 2>/dev/null";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) fail<IoError>(path, ": cannot run gzip to decompress it");
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != 0)
    fail<FormatError>(path, ": not a valid gzip file (gzip exit status ", status, ")");
  return out;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::string text =
      ends_with(path, ".gz") || ends_with(path, ".dz") ? gunzip(path) : io::read_file(path);
  if (text.empty()) fail<FormatError>(path, ": the file is empty");
  if (const size_t bad = text::invalid_utf8_offset(text); bad != std::string::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[bad]));
    fail<FormatError>(path, ": not UTF-8 text (invalid byte ", hex, " at offset ", bad, ")");
  }
  return text;
}

std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  size_t pos = 0;
  bool blank_run = false;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string_view line(text.data() + pos, eol - pos);
    const bool blank = line.find_first_not_of(" \t\r") == std::string_view::npos;
    if (blank) {
      if (!cur.empty() && !blank_run) {
        docs.push_back(std::move(cur));
        cur.clear();
      }
      blank_run = true;
    } else {
      blank_run = false;
      cur.append(line);
      cur.push_back('\n');
    }
    pos = eol + 1;
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

std::vector<std::string> read_documents(const std::vector<std::string>& paths) {
  if (paths.empty()) fail<ValueError>("read_documents: no files given");
  std::vector<std::string> docs;
  for (const std::string& p : paths) {
    auto d = split_documents(read_text_file(p));
    if (d.empty()) fail<FormatError>(p, ": no text (only blank lines)");
    for (auto& x : d) docs.push_back(std::move(x));
  }
  return docs;
}

TokenDataset::TokenDataset(std::vector<int32_t> train_tokens,
                           std::vector<int32_t> validation_tokens)
    : train_(std::move(train_tokens)), validation_(std::move(validation_tokens)) {
  for (const auto* v : {&train_, &validation_})
    for (const int32_t t : *v) {
      if (t < 0) fail<ValueError>("TokenDataset: negative token id ", t);
      max_token_ = std::max(max_token_, t + 1);
    }
}

TokenDataset TokenDataset::build(const std::vector<std::string>& docs,
                                 const text::Tokenizer& tokenizer, const Options& o) {
  if (!(o.validation_fraction >= 0 && o.validation_fraction < 1))
    fail<ValueError>("TokenDataset: validation_fraction must be in [0, 1), got ",
                     o.validation_fraction);
  std::vector<std::vector<int32_t>> tokens(docs.size());
  parallel_for(0, static_cast<int64_t>(docs.size()), 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      tokens[static_cast<size_t>(i)] = tokenizer.encode(docs[static_cast<size_t>(i)]);
  });
  // Seeded Fisher-Yates shuffle of document order; the first share goes to validation.
  std::vector<size_t> order(docs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Generator gen(o.seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
  size_t n_val =
      static_cast<size_t>(o.validation_fraction * static_cast<double>(docs.size()) + 0.5);
  if (o.validation_fraction > 0) {
    if (docs.size() < 2)
      fail<ValueError>("TokenDataset: a validation split needs at least 2 documents, got ",
                       docs.size(), " (split the text with split_documents, or set ",
                       "validation_fraction to 0)");
    n_val = std::clamp<size_t>(n_val, 1, docs.size() - 1);  // both splits keep a document
  }
  std::vector<int32_t> train, val;
  for (size_t k = 0; k < order.size(); ++k) {
    auto& dst = k < n_val ? val : train;
    const auto& src = tokens[order[k]];
    dst.insert(dst.end(), src.begin(), src.end());
    if (o.eos_id >= 0) dst.push_back(o.eos_id);
  }
  if (train.empty()) fail<ValueError>("TokenDataset: the documents hold no tokens");
  return TokenDataset(std::move(train), std::move(val));
}

namespace {
std::pair<Tensor<int32_t>, Tensor<int32_t>> windows(const std::vector<int32_t>& src, int64_t B,
                                                    int64_t T, const std::vector<int64_t>& starts) {
  Tensor<int32_t> x = Tensor<int32_t>::empty({B, T}), y = Tensor<int32_t>::empty({B, T});
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* p = src.data() + starts[static_cast<size_t>(b)];
    std::copy(p, p + T, x.data() + b * T);
    std::copy(p + 1, p + T + 1, y.data() + b * T);
  }
  return {std::move(x), std::move(y)};
}

void check_split(const std::vector<int32_t>& src, Split split, int64_t B, int64_t T) {
  if (B < 1 || T < 1)
    fail<ValueError>("TokenDataset: batch sizes must be positive, got B = ", B, ", T = ", T);
  if (static_cast<int64_t>(src.size()) < T + 1)
    fail<ValueError>("TokenDataset: the ", split == Split::train ? "training" : "validation",
                     " split has ", src.size(), " tokens, fewer than one window of ", T + 1);
}
}  // namespace

std::pair<Tensor<int32_t>, Tensor<int32_t>> TokenDataset::batch(Split split, int64_t B, int64_t T,
                                                                Generator& gen) const {
  const auto& src = tokens(split);
  check_split(src, split, B, T);
  std::vector<int64_t> starts(static_cast<size_t>(B));
  const auto range = static_cast<uint64_t>(static_cast<int64_t>(src.size()) - T);
  for (auto& s : starts) s = static_cast<int64_t>(gen.below(range));
  return windows(src, B, T, starts);
}

std::pair<Tensor<int32_t>, Tensor<int32_t>> TokenDataset::sequential_batch(Split split, int64_t B,
                                                                           int64_t T,
                                                                           int64_t index) const {
  if (index < 0) fail<ValueError>("TokenDataset: batch index must be >= 0, got ", index);
  const auto& src = tokens(split);
  check_split(src, split, B, T);
  const int64_t n_windows = (static_cast<int64_t>(src.size()) - 1) / T;
  std::vector<int64_t> starts(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    starts[static_cast<size_t>(b)] = ((index * B + b) % n_windows) * T;
  return windows(src, B, T, starts);
}

Batch TokenDataset::sample(Split split, int64_t B, int64_t T, Generator& gen) const {
  auto [x, y] = batch(split, B, T, gen);
  return {std::move(x), std::move(y), {}, {}};
}

Batch TokenDataset::eval_batch(Split split, int64_t B, int64_t T, int64_t index) const {
  auto [x, y] = sequential_batch(split, B, T, index);
  return {std::move(x), std::move(y), {}, {}};
}

int64_t TokenDataset::window_count(Split split, int64_t T) const {
  if (T < 1) fail<ValueError>("TokenDataset: window length must be positive, got ", T);
  const auto n = static_cast<int64_t>(tokens(split).size());
  return n < T + 1 ? 0 : (n - 1) / T;
}

Batch TokenDataset::windows_at(Split split, int64_t T, const std::vector<int64_t>& which) const {
  const int64_t n = window_count(split, T);
  std::vector<int64_t> starts(which.size());
  for (size_t b = 0; b < which.size(); ++b) {
    if (which[b] < 0 || which[b] >= n)
      fail<IndexError>("TokenDataset: window ", which[b], " is outside [0, ", n, ") (windows of ",
                       T, " tokens)");
    starts[b] = which[b] * T;
  }
  auto [x, y] = windows(tokens(split), static_cast<int64_t>(which.size()), T, starts);
  return {std::move(x), std::move(y), which, {}};
}

Batch TokenDataset::window_batch(Split split, int64_t B, int64_t T, Generator& gen) const {
  check_split(tokens(split), split, B, T);
  const int64_t n = window_count(split, T);
  std::vector<int64_t> which(static_cast<size_t>(B));
  for (auto& w : which) w = static_cast<int64_t>(gen.below(static_cast<uint64_t>(n)));
  return windows_at(split, T, which);
}

std::string Dataset::fingerprint() const {
  detail::Digest d;
  d.word(static_cast<uint64_t>(max_token()));
  for (const Split split : {Split::train, Split::validation}) {
    const int64_t T = 16;
    if (!can_batch(split, T)) continue;
    for (int64_t i = 0; i < 4; ++i) {
      const Batch b = eval_batch(split, 4, T, i);
      for (const Tensor<int32_t>* t : {&b.inputs, &b.targets}) {
        const Tensor<int32_t> c = t->contiguous();
        d.bytes(c.data(), static_cast<size_t>(c.numel()) * sizeof(int32_t));
      }
    }
  }
  return d.hex();
}

std::string TokenDataset::fingerprint() const {
  detail::Digest d;
  for (const auto* v : {&train_, &validation_}) d.bytes(v->data(), v->size() * sizeof(int32_t));
  return d.hex();
}

}  // namespace scholar::train
