// Okapi BM25 over an incremental inverted index (see scholar/rag/bm25.hpp).
//
// Layout: each term has a list of postings (document slot, term frequency) in no particular
// order; each document slot keeps its sorted term ids and where its posting sits in each term's
// list, so remove() swaps the last posting of each list into the hole and fixes one back-reference:
// no list is ever searched or rebuilt. A search adds each posting's share into a thread-local
// array indexed by slot (no allocation per posting), then partially sorts the documents touched.
//
// File (little-endian):
//   magic "SCHOLB25", u32 version (1), u32 zero
//   f32 k1, f32 b
//   u64 stopword count S, document count N, term count T, total length (sum of document lengths)
//   S x (u32 bytes, bytes)                               stopwords, sorted
//   N x u64 id (increasing), N x u32 length              documents; posting slots index these
//   T x (u32 bytes, bytes, u32 df, df x (u32 document, u32 tf))   terms sorted, postings by
//   document u64 digest (src/core/digest.hpp) of every byte before it
#include "scholar/rag/bm25.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/digest.hpp"
#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::rag {

namespace {

constexpr char kMagic[8] = {'S', 'C', 'H', 'O', 'L', 'B', '2', '5'};
constexpr uint32_t kVersion = 1;

bool is_mark(uint32_t cp) {
  const text::UnicodeCategory c = text::general_category(cp);
  return c == text::UnicodeCategory::Mn || c == text::UnicodeCategory::Mc ||
         c == text::UnicodeCategory::Me;
}

bool better(const Bm25Hit& a, const Bm25Hit& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

void check_params(const Bm25Params& p, const char* where) {
  if (!std::isfinite(p.k1) || p.k1 < 0)
    fail<ValueError>(where, ": k1 must be finite and >= 0, not ", p.k1);
  if (!std::isfinite(p.b) || p.b < 0 || p.b > 1)
    fail<ValueError>(where, ": b must be in [0, 1], not ", p.b);
}

// Reads a BM25 file's bytes in order; every read is bounds-checked and failures name the file.
class Reader {
 public:
  Reader(std::string_view data, const std::string& path) : data_(data), path_(path) {}
  template <class T>
  T get(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  const char* take(size_t n, const char* what) {
    if (n > data_.size() - pos_)
      bad(detail::str_cat(what, " needs ", n, " bytes at offset ", pos_, " but only ",
                          data_.size() - pos_, " remain"));
    const char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string_view string(const char* what) {
    const auto n = get<uint32_t>(what);
    return {take(n, what), n};
  }
  size_t remaining() const { return data_.size() - pos_; }
  [[noreturn]] void bad(const std::string& what) const {
    fail<FormatError>(path_, ": not a valid BM25 index: ", what);
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Scratch space of searches on this thread: scores by slot (zero between searches), the slots
// touched, and the candidates.
struct Scratch {
  std::vector<float> score;
  std::vector<uint32_t> touched;
  std::vector<Bm25Hit> hits;
};

}  // namespace

// --- Analyzer
// --------------------------------------------------------------------------------------

std::vector<std::string> english_stopwords() {
  return {"a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
          "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
          "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};
}

Analyzer::Analyzer(AnalyzerOptions options) : options_(std::move(options)) {
  for (std::string& w : options_.stopwords) w = text::to_lower(w);
  std::sort(options_.stopwords.begin(), options_.stopwords.end());
  options_.stopwords.erase(std::unique(options_.stopwords.begin(), options_.stopwords.end()),
                           options_.stopwords.end());
}

bool Analyzer::is_stopword(std::string_view term) const {
  const auto& sw = options_.stopwords;
  return !sw.empty() && std::binary_search(sw.begin(), sw.end(), term, std::less<>());
}

void Analyzer::for_each_term(std::string_view text,
                             const std::function<void(std::string_view)>& fn) const {
  const std::string lower = text::to_lower(text);
  const std::string_view s = lower;
  constexpr size_t kNone = std::string_view::npos;
  size_t start = kNone;  // where the current run of letters and numbers began
  auto emit = [&](size_t b, size_t e) {
    const std::string_view t = s.substr(b, e - b);
    if (!is_stopword(t)) fn(t);
  };
  auto flush = [&](size_t end) {
    if (start != kNone) emit(start, end);
    start = kNone;
  };
  for (size_t i = 0; i < s.size();) {
    const text::Utf8Char c = text::decode_utf8(s, i);
    if (c.cp == text::kInvalidCodePoint) {
      flush(i);
    } else if (text::is_cjk_ideograph(c.cp)) {
      flush(i);
      emit(i, i + c.len);
    } else if (text::is_alphanumeric(c.cp)) {
      if (start == kNone) start = i;
    } else if (!(start != kNone && is_mark(c.cp))) {
      flush(i);
    }
    i += c.len;
  }
  flush(s.size());
}

std::vector<std::string> Analyzer::terms(std::string_view text) const {
  std::vector<std::string> out;
  for_each_term(text, [&](std::string_view t) { out.emplace_back(t); });
  return out;
}

// --- Bm25Index
// -------------------------------------------------------------------------------------

Bm25Index::Bm25Index(Bm25Params params, AnalyzerOptions analyzer)
    : params_(params), analyzer_(std::move(analyzer)) {
  check_params(params_, "rag::Bm25Index");
}

size_t Bm25Index::size() const noexcept {
  return slot_of_.size();
}

size_t Bm25Index::term_count() const noexcept {
  return term_ids_.size();
}

bool Bm25Index::contains(uint64_t id) const {
  return slot_of_.count(id) != 0;
}

uint32_t Bm25Index::term_id(std::string_view term) {
  if (auto it = term_ids_.find(term); it != term_ids_.end()) return it->second;
  uint32_t id;
  if (!free_terms_.empty()) {
    id = free_terms_.back();
    free_terms_.pop_back();
    term_text_[id] = term;
  } else {
    if (term_text_.size() >= std::numeric_limits<uint32_t>::max())
      fail<ValueError>("rag::Bm25Index::add: more than 2^32 - 1 distinct terms");
    id = static_cast<uint32_t>(term_text_.size());
    term_text_.emplace_back(term);
    postings_.emplace_back();
  }
  term_ids_.emplace(std::string(term), id);
  return id;
}

void Bm25Index::add(uint64_t id, std::string_view text) {
  if (slot_of_.count(id))
    fail<ValueError>("rag::Bm25Index::add: id ", id, " is already in the index (remove it first)");
  if (free_slots_.empty() && slot_id_.size() >= std::numeric_limits<uint32_t>::max())
    fail<ValueError>("rag::Bm25Index::add: more than 2^32 - 1 documents");
  std::vector<uint32_t> ids;
  analyzer_.for_each_term(text, [&](std::string_view t) { ids.push_back(term_id(t)); });
  if (ids.size() > std::numeric_limits<uint32_t>::max())
    fail<ValueError>("rag::Bm25Index::add: document ", id, " has ", ids.size(),
                     " terms, more than 2^32 - 1");
  std::sort(ids.begin(), ids.end());

  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slot_id_.size());
    slot_id_.push_back(0);
    slot_length_.push_back(0);
    slot_terms_.emplace_back();
  }
  slot_id_[slot] = id;
  slot_length_[slot] = static_cast<uint32_t>(ids.size());
  DocTerms& dt = slot_terms_[slot];
  for (size_t i = 0; i < ids.size();) {
    size_t j = i + 1;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    std::vector<Posting>& list = postings_[ids[i]];
    dt.terms.push_back(ids[i]);
    dt.where.push_back(static_cast<uint32_t>(list.size()));
    list.push_back({slot, static_cast<uint32_t>(j - i)});
    i = j;
  }
  slot_of_.emplace(id, slot);
  total_length_ += ids.size();
}

void Bm25Index::drop_posting(uint32_t term, uint32_t pos) {
  std::vector<Posting>& list = postings_[term];
  const Posting last = list.back();
  list.pop_back();
  if (pos < list.size()) {
    list[pos] = last;
    DocTerms& other = slot_terms_[last.slot];
    const auto it = std::lower_bound(other.terms.begin(), other.terms.end(), term);
    SCHOLAR_ASSERT(it != other.terms.end() && *it == term, "posting without back-reference");
    other.where[static_cast<size_t>(it - other.terms.begin())] = pos;
  }
  if (list.empty()) {  // no document uses the term any more: free its id
    std::vector<Posting>().swap(list);
    term_ids_.erase(term_text_[term]);
    term_text_[term].clear();
    free_terms_.push_back(term);
  }
}

bool Bm25Index::remove(uint64_t id) {
  const auto it = slot_of_.find(id);
  if (it == slot_of_.end()) return false;
  const uint32_t slot = it->second;
  DocTerms& dt = slot_terms_[slot];
  for (size_t i = 0; i < dt.terms.size(); ++i) drop_posting(dt.terms[i], dt.where[i]);
  dt = DocTerms{};
  total_length_ -= slot_length_[slot];
  slot_length_[slot] = 0;
  free_slots_.push_back(slot);
  slot_of_.erase(it);
  return true;
}

std::vector<Bm25Hit> Bm25Index::search(std::string_view query, size_t k) const {
  if (k == 0) fail<ValueError>("rag::Bm25Index::search: k must be at least 1");
  // The query's known terms with their multiplicity, in order of first occurrence: the order in
  // which scores are summed, so results do not depend on term ids (which differ after removals).
  struct QueryTerm {
    uint32_t term, count;
  };
  std::vector<QueryTerm> qs;
  analyzer_.for_each_term(query, [&](std::string_view t) {
    const auto it = term_ids_.find(t);
    if (it == term_ids_.end()) return;
    for (QueryTerm& q : qs)
      if (q.term == it->second) {
        ++q.count;
        return;
      }
    qs.push_back({it->second, 1});
  });
  if (qs.empty()) return {};

  static thread_local Scratch scratch;
  std::vector<float>& acc = scratch.score;
  if (acc.size() < slot_id_.size()) acc.resize(slot_id_.size(), 0.0f);
  std::vector<uint32_t>& touched = scratch.touched;
  touched.clear();
  // Whatever happens (an allocation failing below), the scores go back to zero for the next search.
  struct Reset {
    Scratch& s;
    ~Reset() {
      for (const uint32_t slot : s.touched) s.score[slot] = 0.0f;
      s.touched.clear();
    }
  } reset{scratch};

  const double n_docs = static_cast<double>(slot_of_.size());
  const double avgdl = static_cast<double>(total_length_) / n_docs;
  const float k1 = params_.k1, b = params_.b;
  // tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)) = tf (k1 + 1) / (tf + c1 + c2 dl)
  const float c1 = k1 * (1 - b);
  const float c2 = avgdl > 0 ? static_cast<float>(k1 * b / avgdl) : 0.0f;
  for (const QueryTerm& q : qs) {
    const std::vector<Posting>& list = postings_[q.term];
    const double df = static_cast<double>(list.size());
    const double idf = std::log(1.0 + (n_docs - df + 0.5) / (df + 0.5));
    const float w = static_cast<float>(q.count * idf * (k1 + 1.0));
    for (const Posting& p : list) {
      const float tf = static_cast<float>(p.tf);
      const float s = w * tf / (tf + c1 + c2 * static_cast<float>(slot_length_[p.slot]));
      float& a = acc[p.slot];
      if (a == 0.0f) touched.push_back(p.slot);
      a += s;
    }
  }

  std::vector<Bm25Hit>& hits = scratch.hits;
  hits.clear();
  hits.reserve(touched.size());
  for (const uint32_t slot : touched) hits.push_back({slot_id_[slot], acc[slot]});
  const size_t m = std::min(k, hits.size());
  std::partial_sort(hits.begin(), hits.begin() + static_cast<ptrdiff_t>(m), hits.end(), better);
  return std::vector<Bm25Hit>(hits.begin(), hits.begin() + static_cast<ptrdiff_t>(m));
}

// --- Files
// -----------------------------------------------------------------------------------------

void Bm25Index::save(const std::string& path) const {
  std::string out;
  const auto& stopwords = analyzer_.options().stopwords;
  // Documents by id; a slot's place in that order is its number in the file.
  std::vector<uint32_t> slots;
  slots.reserve(slot_of_.size());
  for (const auto& [id, slot] : slot_of_) slots.push_back(slot);
  std::sort(slots.begin(), slots.end(),
            [&](uint32_t a, uint32_t b) { return slot_id_[a] < slot_id_[b]; });
  std::vector<uint32_t> number(slot_id_.size());
  for (size_t i = 0; i < slots.size(); ++i) number[slots[i]] = static_cast<uint32_t>(i);
  std::vector<std::pair<std::string_view, uint32_t>> terms(term_ids_.begin(), term_ids_.end());
  std::sort(terms.begin(), terms.end());

  out.append(kMagic, 8);
  io::append_bytes(out, kVersion);
  io::append_bytes(out, uint32_t{0});
  io::append_bytes(out, params_.k1);
  io::append_bytes(out, params_.b);
  io::append_bytes(out, uint64_t{stopwords.size()});
  io::append_bytes(out, uint64_t{slots.size()});
  io::append_bytes(out, uint64_t{terms.size()});
  io::append_bytes(out, total_length_);
  auto put_string = [&](std::string_view s) {
    io::append_bytes(out, static_cast<uint32_t>(s.size()));
    out.append(s);
  };
  for (const std::string& w : stopwords) put_string(w);
  for (const uint32_t slot : slots) io::append_bytes(out, slot_id_[slot]);
  for (const uint32_t slot : slots) io::append_bytes(out, slot_length_[slot]);
  std::vector<Posting> sorted;
  for (const auto& [term, id] : terms) {
    put_string(term);
    sorted.clear();
    for (const Posting& p : postings_[id]) sorted.push_back({number[p.slot], p.tf});
    std::sort(sorted.begin(), sorted.end(),
              [](const Posting& a, const Posting& b) { return a.slot < b.slot; });
    io::append_bytes(out, static_cast<uint32_t>(sorted.size()));
    for (const Posting& p : sorted) {
      io::append_bytes(out, p.slot);
      io::append_bytes(out, p.tf);
    }
  }
  detail::Digest digest;
  digest.bytes(out.data(), out.size());
  io::append_bytes(out, digest.value());
  io::write_file_atomic(path, out);
}

Bm25Index Bm25Index::load(const std::string& path) {
  const std::string data = io::read_file(path);
  Reader in(data, path);
  constexpr size_t kHeader = 8 + 4 + 4 + 4 + 4 + 8 * 4;
  if (data.size() < 8 || std::memcmp(data.data(), kMagic, 8) != 0)
    in.bad("bad magic (expected \"SCHOLB25\" at the start of the file)");
  in.take(8, "the magic");
  const auto version = in.get<uint32_t>("the version");
  if (version != kVersion)
    in.bad(detail::str_cat("format version ", version, " is not supported (this build reads ",
                           kVersion, ")"));
  if (data.size() < kHeader + 8)
    in.bad(detail::str_cat("truncated: ", data.size(), " bytes is shorter than the ", kHeader + 8,
                           " bytes of an empty index"));
  uint64_t stored;
  std::memcpy(&stored, data.data() + data.size() - 8, 8);
  detail::Digest digest;
  digest.bytes(data.data(), data.size() - 8);
  if (digest.value() != stored) in.bad("checksum mismatch: the file is truncated or corrupted");
  Reader body(std::string_view(data).substr(0, data.size() - 8), path);
  body.take(12, "the preamble");
  if (body.get<uint32_t>("the reserved word") != 0) body.bad("the reserved word is not zero");

  Bm25Params params;
  params.k1 = body.get<float>("k1");
  params.b = body.get<float>("b");
  try {
    check_params(params, "parameters");
  } catch (const ValueError& e) {
    body.bad(e.what());
  }
  const auto n_stop = body.get<uint64_t>("the stopword count");
  const auto n_docs = body.get<uint64_t>("the document count");
  const auto n_terms = body.get<uint64_t>("the term count");
  const auto total = body.get<uint64_t>("the total length");
  if (n_stop > body.remaining() / 4) body.bad("claims more stopwords than the file can hold");
  if (n_docs > body.remaining() / 12 || n_docs >= std::numeric_limits<uint32_t>::max())
    body.bad(detail::str_cat("claims ", n_docs, " documents, more than the file can hold"));
  if (n_terms > body.remaining() / 13 || n_terms >= std::numeric_limits<uint32_t>::max())
    body.bad(detail::str_cat("claims ", n_terms, " terms, more than the file can hold"));

  AnalyzerOptions aopt;
  for (uint64_t i = 0; i < n_stop; ++i) {
    const std::string_view w = body.string("a stopword");
    if (!aopt.stopwords.empty() && !(aopt.stopwords.back() < w))
      body.bad("the stopwords are not sorted and unique");
    aopt.stopwords.emplace_back(w);
  }
  Bm25Index index(params, std::move(aopt));
  static_assert(sizeof(Posting) == 8, "postings are read from the file as they are");
  const size_t n = static_cast<size_t>(n_docs);
  index.slot_id_.resize(n);
  index.slot_length_.resize(n);
  index.slot_terms_.resize(n);
  const char* ids = body.take(n * 8, "the document ids");
  const char* lengths = body.take(n * 4, "the document lengths");
  if (n > 0) {  // (memcpy's pointers must not be null, even for 0 bytes)
    std::memcpy(index.slot_id_.data(), ids, n * 8);
    std::memcpy(index.slot_length_.data(), lengths, n * 4);
  }
  uint64_t sum = 0;
  index.slot_of_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && index.slot_id_[i] <= index.slot_id_[i - 1])
      body.bad(detail::str_cat("document ids are not increasing at document ", i));
    index.slot_of_.emplace(index.slot_id_[i], static_cast<uint32_t>(i));
    sum += index.slot_length_[i];
  }
  if (sum != total)
    body.bad(detail::str_cat("the document lengths add up to ", sum, ", not ", total));
  index.total_length_ = total;

  std::vector<uint64_t> tf_sum(n, 0);
  index.term_ids_.reserve(static_cast<size_t>(n_terms));
  index.term_text_.reserve(static_cast<size_t>(n_terms));
  index.postings_.reserve(static_cast<size_t>(n_terms));
  for (uint64_t t = 0; t < n_terms; ++t) {
    const std::string_view term = body.string("a term");
    if (term.empty() || (t > 0 && !(std::string_view(index.term_text_.back()) < term)))
      body.bad(detail::str_cat("term ", t, " is empty or out of order"));
    const auto df = body.get<uint32_t>("a document frequency");
    if (df == 0 || df > n) body.bad(detail::str_cat("term ", t, " has document frequency ", df));
    const char* raw = body.take(size_t{df} * 8, "postings");
    const auto id = static_cast<uint32_t>(t);
    std::vector<Posting>& list = index.postings_.emplace_back(df);
    std::memcpy(list.data(), raw, size_t{df} * 8);
    for (uint32_t j = 0; j < df; ++j) {
      const Posting& p = list[j];
      if (p.slot >= n || (j > 0 && p.slot <= list[j - 1].slot) || p.tf == 0)
        body.bad(
            detail::str_cat("posting ", j, " of term ", t, " is out of order or out of range"));
      tf_sum[p.slot] += p.tf;
      index.slot_terms_[p.slot].terms.push_back(id);
      index.slot_terms_[p.slot].where.push_back(j);
    }
    index.term_text_.emplace_back(term);
    index.term_ids_.emplace(std::string(term), id);
  }
  if (body.remaining() != 0)
    body.bad(detail::str_cat(body.remaining(), " unexpected bytes after the postings"));
  for (size_t i = 0; i < n; ++i)
    if (tf_sum[i] != index.slot_length_[i])
      body.bad(detail::str_cat("document ", index.slot_id_[i], " has length ",
                               index.slot_length_[i], " but its terms occur ", tf_sum[i],
                               " times"));
  return index;
}

}  // namespace scholar::rag
