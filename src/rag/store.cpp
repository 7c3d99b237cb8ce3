// rag::Store: chunks + HNSW + BM25 in one directory, committed by generations.
#include "scholar/rag/store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>

#include "core/digest.hpp"
#include "io/bytes.hpp"
#include "scholar/error.hpp"
#include "scholar/index/hnsw.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/progress.hpp"
#include "scholar/rag/fusion.hpp"
#include "scholar/text/tokenizer.hpp"

namespace scholar::rag {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kVersion = 1;
constexpr const char* kFormat = "scholar-rag-store";
constexpr const char* kChunksMagic = "SCHRAGC1";

std::string gen_file(const char* stem, int64_t gen, const char* ext) {
  return std::string(stem) + "." + std::to_string(gen) + ext;
}

std::string text_digest(std::string_view s) {
  scholar::detail::Digest d;
  d.text(s);
  return d.hex();
}

// Makes a rename in `dir` durable.
void sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string_view search_mode_name(SearchMode m) {
  switch (m) {
    case SearchMode::dense:
      return "dense";
    case SearchMode::bm25:
      return "bm25";
    case SearchMode::hybrid:
      return "hybrid";
  }
  return "?";
}

SearchMode search_mode_from_name(std::string_view name) {
  for (SearchMode m : {SearchMode::dense, SearchMode::bm25, SearchMode::hybrid})
    if (search_mode_name(m) == name) return m;
  fail<ValueError>("search mode '", name, "' is not one of dense, bm25, hybrid");
}

// --- the store -----------------------------------------------------------------------------------

struct Store::Impl {
  std::string dir;
  std::shared_ptr<const Embedder> embedder;
  StoreOptions options;
  std::unique_ptr<Splitter> splitter;
  std::unique_ptr<index::Hnsw> dense;
  Bm25Index bm25;
  std::unordered_map<uint64_t, StoredChunk> chunks;
  std::map<std::string, StoredDocument> docs;
  uint64_t next_chunk_id = 1;
  int64_t generation = 0;

  Impl(std::string d, std::shared_ptr<const Embedder> e, StoreOptions o)
      : dir(std::move(d)), embedder(std::move(e)), options(std::move(o)), bm25(options.bm25) {
    if (!embedder) fail<ValueError>("rag::Store: no embedder");
    if (options.split_by_tokens) {
      const auto* enc = dynamic_cast<const SentenceEncoder*>(embedder.get());
      if (!enc)
        fail<ValueError>("rag::Store: split_by_tokens needs a SentenceEncoder (its tokenizer)");
      splitter = std::make_unique<Splitter>(options.splitter, enc->model().tokenizer());
    } else {
      splitter = std::make_unique<Splitter>(options.splitter);
    }
    if (options.embed_batch < 1) fail<ValueError>("rag::Store: embed_batch must be >= 1");
  }

  index::HnswParams hnsw_params() const {
    index::HnswParams p;
    p.M = options.hnsw_m;
    p.ef_construction = options.hnsw_ef_construction;
    p.replace_deleted = true;  // replaced documents reuse the slots of their old chunks
    return p;
  }

  void new_index() {
    dense = std::make_unique<index::Hnsw>(embedder->dim(), index::Space::cosine, hnsw_params());
  }

  std::function<void(std::string_view)> commit_hook;
  void step(std::string_view name) const {
    if (commit_hook) commit_hook(name);
  }

  io::Json manifest_json() const {
    using io::Json;
    Json j = Json::object();
    j.set("format", Json(kFormat));
    j.set("version", Json(kVersion));
    j.set("generation", Json(generation));
    Json e = Json::object();
    e.set("name", Json(embedder->name()));
    e.set("location", Json(embedder->location()));
    e.set("fingerprint", Json(embedder->fingerprint()));
    e.set("dim", Json(static_cast<int64_t>(embedder->dim())));
    e.set("normalized", Json(embedder->normalized()));
    j.set("embedder", std::move(e));
    Json s = Json::object();
    s.set("chunk_size", Json(static_cast<int64_t>(options.splitter.chunk_size)));
    s.set("chunk_overlap", Json(static_cast<int64_t>(options.splitter.chunk_overlap)));
    s.set("unit", Json(options.split_by_tokens ? "tokens" : "characters"));
    Json seps = Json::array();
    for (const auto& x : options.splitter.separators) seps.push_back(Json(x));
    s.set("separators", std::move(seps));
    s.set("keep_separator", Json(options.splitter.keep_separator));
    s.set("strip_whitespace", Json(options.splitter.strip_whitespace));
    j.set("splitter", std::move(s));
    Json b = Json::object();
    b.set("k1", Json(options.bm25.k1));
    b.set("b", Json(options.bm25.b));
    j.set("bm25", std::move(b));
    Json h = Json::object();
    h.set("M", Json(static_cast<int64_t>(options.hnsw_m)));
    h.set("ef_construction", Json(static_cast<int64_t>(options.hnsw_ef_construction)));
    j.set("hnsw", std::move(h));
    Json f = Json::object();
    f.set("chunks", Json(gen_file("chunks", generation, ".bin")));
    f.set("dense", Json(gen_file("dense", generation, ".hnsw")));
    f.set("bm25", Json(gen_file("bm25", generation, ".bm25")));
    j.set("files", std::move(f));
    j.set("documents", Json(static_cast<int64_t>(docs.size())));
    j.set("chunks", Json(static_cast<int64_t>(chunks.size())));
    return j;
  }

  std::string chunks_bytes() const {
    io::detail::ByteWriter w;
    w.put_bytes(kChunksMagic);
    w.put<uint64_t>(next_chunk_id);
    w.put<uint64_t>(docs.size());
    for (const auto& [id, d] : docs) {
      w.put_string(d.id);
      w.put_string(d.source);
      w.put_string(d.digest);
      w.put<uint64_t>(d.metadata.size());
      for (const auto& [k, v] : d.metadata) w.put_string(k), w.put_string(v);
      w.put<uint64_t>(d.chunk_ids.size());
      for (uint64_t cid : d.chunk_ids) {
        const StoredChunk& c = chunks.at(cid);
        w.put<uint64_t>(c.id);
        w.put<uint64_t>(c.begin);
        w.put<uint64_t>(c.end);
        w.put<uint64_t>(c.index);
        w.put_string(c.text);
      }
    }
    return w.finish();
  }

  void read_chunks(const std::string& path) {
    const std::string data = io::read_file(path);
    io::detail::ByteReader r(data, path);
    if (std::string_view(r.take(8, "magic"), 8) != kChunksMagic)
      r.bad("not a scholar chunk file (bad magic)");
    next_chunk_id = r.get<uint64_t>("next chunk id");
    const auto n_docs = r.get<uint64_t>("document count");
    for (uint64_t i = 0; i < n_docs; ++i) {
      StoredDocument d;
      d.id = r.get_string("document id");
      d.source = r.get_string("source");
      d.digest = r.get_string("digest");
      const auto n_meta = r.get<uint64_t>("metadata count");
      if (n_meta > r.remaining()) r.bad("metadata count ", n_meta, " does not fit the file");
      for (uint64_t k = 0; k < n_meta; ++k) {
        std::string key = r.get_string("metadata key");
        d.metadata[key] = r.get_string("metadata value");
      }
      const auto n_chunks = r.get<uint64_t>("chunk count");
      if (n_chunks > r.remaining()) r.bad("chunk count ", n_chunks, " does not fit the file");
      for (uint64_t k = 0; k < n_chunks; ++k) {
        StoredChunk c;
        c.id = r.get<uint64_t>("chunk id");
        c.begin = r.get<uint64_t>("chunk begin");
        c.end = r.get<uint64_t>("chunk end");
        c.index = r.get<uint64_t>("chunk index");
        c.text = r.get_string("chunk text");
        c.document_id = d.id;
        if (c.id >= next_chunk_id || chunks.contains(c.id))
          r.bad("chunk id ", c.id, " is repeated or not below the next id ", next_chunk_id);
        d.chunk_ids.push_back(c.id);
        chunks.emplace(c.id, std::move(c));
      }
      if (!docs.emplace(d.id, std::move(d)).second) r.bad("a document id appears twice");
    }
    if (!r.done()) r.bad(r.remaining(), " bytes after the last document");
  }

  void drop_document(const std::string& id) {
    auto it = docs.find(id);
    if (it == docs.end()) return;
    for (uint64_t cid : it->second.chunk_ids) {
      dense->remove(cid);
      bm25.remove(cid);
      chunks.erase(cid);
    }
    docs.erase(it);
  }

  // Files of other generations. The writer (after a commit) removes all of them, temporary files
  // included; a reader (opening) removes only older generations' files, since newer ones may be a
  // commit in progress in another process (they are overwritten by the next commit anyway).
  void remove_stray_files(bool writer) const {
    const std::set<std::string> keep = {"manifest.json", gen_file("chunks", generation, ".bin"),
                                        gen_file("dense", generation, ".hnsw"),
                                        gen_file("bm25", generation, ".bm25")};
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const bool ours = name.starts_with("chunks.") || name.starts_with("dense.") ||
                        name.starts_with("bm25.") || name.starts_with("manifest.json.");
      if (!ours || keep.contains(name)) continue;
      if (!writer) {
        // "<stem>.<generation>.<ext>" exactly: older generations only.
        const size_t a = name.find('.'), b = name.find('.', a + 1);
        if (b == std::string::npos || name.find('.', b + 1) != std::string::npos) continue;
        const std::string g = name.substr(a + 1, b - a - 1);
        if (g.empty() || g.find_first_not_of("0123456789") != std::string::npos || g.size() > 18 ||
            std::stoll(g) >= generation)
          continue;
      }
      fs::remove(e.path(), ec);
    }
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::create(const std::string& dir, std::shared_ptr<const Embedder> embedder,
                    StoreOptions options) {
  if (fs::exists(fs::path(dir) / "manifest.json"))
    fail<ValueError>(dir, ": already holds a store (open it, or remove the directory first)");
  fs::create_directories(dir);
  auto impl = std::make_unique<Impl>(dir, std::move(embedder), std::move(options));
  impl->new_index();
  return Store(std::move(impl));
}

namespace {

io::Json read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / "manifest.json").string();
  if (!fs::exists(path)) fail<FormatError>(dir, ": not a scholar store (no manifest.json)");
  io::Json j = io::Json::parse(io::read_file(path), path);
  const io::Json* f = j.find("format");
  if (!f || !f->is_string() || f->as_string() != kFormat)
    fail<FormatError>(path, ": not a scholar store manifest (format is not '", kFormat, "')");
  const int64_t v = j.at("version", path).as_int(path + ": version");
  if (v != kVersion)
    fail<FormatError>(path, ": store format version ", v, "; this scholar reads version ",
                      kVersion);
  return j;
}

}  // namespace

StoreInfo StoreInfo::read(const std::string& dir) {
  const io::Json j = read_manifest(dir);
  const std::string path = dir + "/manifest.json";
  StoreInfo s;
  s.version = j.at("version").as_int();
  s.generation = j.at("generation", path).as_int(path + ": generation");
  const io::Json& e = j.at("embedder", path);
  s.embedder_name = e.at("name", path).as_string(path + ": embedder.name");
  s.embedder_fingerprint = e.at("fingerprint", path).as_string(path + ": embedder.fingerprint");
  s.dim = static_cast<size_t>(e.at("dim", path).as_int(path + ": embedder.dim"));
  if (const io::Json* l = e.find("location"); l && l->is_string())
    s.embedder_location = l->as_string();
  s.documents = static_cast<size_t>(j.at("documents", path).as_int(path + ": documents"));
  s.chunks = static_cast<size_t>(j.at("chunks", path).as_int(path + ": chunks"));
  const io::Json& sp = j.at("splitter", path);
  s.splitter = std::to_string(sp.at("chunk_size", path).as_int()) + " " +
               sp.at("unit", path).as_string() + ", overlap " +
               std::to_string(sp.at("chunk_overlap", path).as_int());
  return s;
}

Store Store::open(const std::string& dir, std::shared_ptr<const Embedder> embedder) {
  if (!embedder) fail<ValueError>("rag::Store::open: no embedder");
  const io::Json j = read_manifest(dir);
  const std::string path = (fs::path(dir) / "manifest.json").string();
  const StoreInfo info = StoreInfo::read(dir);
  if (info.embedder_fingerprint != embedder->fingerprint())
    fail<FormatError>(dir, ": the store was built by embedder '", info.embedder_name,
                      "' (fingerprint ", info.embedder_fingerprint, "), not by '", embedder->name(),
                      "' (fingerprint ", embedder->fingerprint(),
                      "); vectors of two embedders cannot be mixed");
  if (info.dim != embedder->dim())
    fail<FormatError>(path, ": vectors of ", info.dim, " values, the embedder makes ",
                      embedder->dim());
  StoreOptions o;
  const io::Json& sp = j.at("splitter", path);
  o.splitter.chunk_size = static_cast<size_t>(sp.at("chunk_size", path).as_int());
  o.splitter.chunk_overlap = static_cast<size_t>(sp.at("chunk_overlap", path).as_int());
  o.split_by_tokens = sp.at("unit", path).as_string() == "tokens";
  o.splitter.separators.clear();
  for (const io::Json& s : sp.at("separators", path).as_array(path + ": separators"))
    o.splitter.separators.push_back(s.as_string(path + ": separator"));
  o.splitter.keep_separator = sp.at("keep_separator", path).as_bool();
  o.splitter.strip_whitespace = sp.at("strip_whitespace", path).as_bool();
  o.bm25.k1 = j.at("bm25", path).at("k1", path).as_double();
  o.bm25.b = j.at("bm25", path).at("b", path).as_double();
  o.hnsw_m = static_cast<size_t>(j.at("hnsw", path).at("M", path).as_int());
  o.hnsw_ef_construction =
      static_cast<size_t>(j.at("hnsw", path).at("ef_construction", path).as_int());
  auto impl = std::make_unique<Impl>(dir, std::move(embedder), std::move(o));
  impl->generation = info.generation;
  const io::Json& files = j.at("files", path);
  auto file = [&](const char* key) {
    const std::string& name = files.at(key, path).as_string(path + ": files");
    if (name.find('/') != std::string::npos || name.find("..") != std::string::npos)
      fail<FormatError>(path, ": file name '", name, "' is not a plain name in the store");
    const std::string full = (fs::path(dir) / name).string();
    if (!fs::exists(full)) fail<FormatError>(path, ": names ", name, ", which is missing");
    return full;
  };
  impl->read_chunks(file("chunks"));
  impl->dense = std::make_unique<index::Hnsw>(index::Hnsw::load(file("dense")));
  impl->bm25 = Bm25Index::load(file("bm25"));
  const size_t n = impl->chunks.size();
  if (impl->dense->size() != n || impl->bm25.size() != n || info.chunks != n ||
      info.documents != impl->docs.size())
    fail<FormatError>(dir, ": the store's files disagree: ", n, " chunks in the chunk file, ",
                      impl->dense->size(), " vectors, ", impl->bm25.size(),
                      " BM25 documents, manifest says ", info.chunks);
  impl->remove_stray_files(false);
  return Store(std::move(impl));
}

AddReport Store::add(std::span<const Document> documents) {
  Impl& s = *impl_;
  const auto start = std::chrono::steady_clock::now();
  AddReport report;
  // Plan first (split, embed): nothing changes until every vector is in hand.
  struct Pending {
    const Document* doc;
    std::string digest;
    std::vector<Chunk> chunks;
    size_t first_vector = 0;
  };
  std::vector<Pending> pending;
  std::map<std::string, size_t> seen;  // a later duplicate id in the same call wins
  size_t total_chunks = 0;
  for (const Document& d : documents) {
    Pending p{&d, text_digest(d.text), {}, 0};
    auto it = s.docs.find(d.id);
    if (it != s.docs.end() && it->second.digest == p.digest && it->second.source == d.source &&
        it->second.metadata == d.metadata) {
      ++report.documents_unchanged;
      continue;
    }
    p.chunks = s.splitter->split(d);
    if (auto prev = seen.find(d.id); prev != seen.end()) {
      total_chunks -= pending[prev->second].chunks.size();
      pending[prev->second].chunks.clear();
      pending[prev->second].doc = nullptr;
    }
    seen[d.id] = pending.size();
    total_chunks += p.chunks.size();
    pending.push_back(std::move(p));
  }
  std::vector<float> vectors;
  vectors.reserve(total_chunks * s.embedder->dim());
  {
    std::optional<ProgressBar> bar;  // none when there is nothing to embed
    if (total_chunks > 0) bar.emplace("index", static_cast<int64_t>(total_chunks), "chunk");
    std::vector<std::string> batch;
    size_t done = 0;
    auto flush = [&] {
      if (batch.empty()) return;
      const std::vector<float> v = s.embedder->embed(batch);
      vectors.insert(vectors.end(), v.begin(), v.end());
      done += batch.size();
      batch.clear();
      if (bar) bar->update(static_cast<int64_t>(done));
    };
    for (Pending& p : pending) {
      p.first_vector = done + batch.size();
      for (const Chunk& c : p.chunks) {
        batch.push_back(c.text);
        if (batch.size() >= s.options.embed_batch) flush();
      }
    }
    flush();
    if (bar) bar->finish();
  }
  const size_t C = s.embedder->dim();
  for (size_t i = 0; i < vectors.size() / C; ++i) {
    double n = 0;
    for (size_t c = 0; c < C; ++c) n += double{vectors[i * C + c]} * vectors[i * C + c];
    if (!std::isfinite(n) || n == 0)
      fail<ValueError>("rag::Store::add: the embedder gave chunk ", i,
                       " a zero or non-finite vector");
  }
  // Apply.
  for (Pending& p : pending) {
    if (!p.doc) continue;
    const Document& d = *p.doc;
    if (s.docs.contains(d.id)) {
      report.chunks_removed += s.docs.at(d.id).chunk_ids.size();
      s.drop_document(d.id);
      ++report.documents_replaced;
    } else {
      ++report.documents_added;
    }
    StoredDocument sd{d.id, d.source, d.metadata, {}, p.digest};
    if (p.chunks.empty()) ++report.documents_without_chunks;
    for (size_t k = 0; k < p.chunks.size(); ++k) {
      const Chunk& c = p.chunks[k];
      const uint64_t id = s.next_chunk_id++;
      s.dense->add(id, std::span(vectors).subspan((p.first_vector + k) * C, C));
      s.bm25.add(id, c.text);
      s.chunks.emplace(id, StoredChunk{id, d.id, c.begin, c.end, c.index, c.text});
      sd.chunk_ids.push_back(id);
      ++report.chunks_added;
    }
    s.docs[d.id] = std::move(sd);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.chunks_per_second =
      report.seconds > 0 ? static_cast<double>(report.chunks_added) / report.seconds : 0;
  return report;
}

bool Store::remove(const std::string& document_id) {
  if (!impl_->docs.contains(document_id)) return false;
  impl_->drop_document(document_id);
  return true;
}

void Store::commit() {
  Impl& s = *impl_;
  const int64_t old_gen = s.generation;
  s.generation = old_gen + 1;
  try {
    const fs::path d(s.dir);
    s.step("chunks");
    io::write_file_atomic((d / gen_file("chunks", s.generation, ".bin")).string(),
                          s.chunks_bytes());
    s.step("dense");
    s.dense->save((d / gen_file("dense", s.generation, ".hnsw")).string());
    s.step("bm25");
    s.bm25.save((d / gen_file("bm25", s.generation, ".bm25")).string());
    sync_dir(s.dir);
    s.step("manifest");
    io::write_file_atomic((d / "manifest.json").string(), s.manifest_json().dump(1) + "\n");
    sync_dir(s.dir);
  } catch (...) {
    s.generation = old_gen;  // the manifest on disk still names the old generation
    throw;
  }
  s.step("cleanup");
  s.remove_stray_files(true);
}

std::vector<SearchHit> Store::search(std::string_view query, const SearchOptions& o) const {
  const Impl& s = *impl_;
  if (o.k == 0) fail<ValueError>("rag::Store::search: k must be >= 1");
  if (!(o.dense_weight >= 0) || !(o.bm25_weight >= 0) || !std::isfinite(o.dense_weight) ||
      !std::isfinite(o.bm25_weight))
    fail<ValueError>("rag::Store::search: weights must be finite and >= 0");
  if (s.chunks.empty()) return {};
  const size_t want = o.mode == SearchMode::hybrid
                          ? std::max<size_t>(o.candidates ? o.candidates : 4 * o.k, 20)
                          : o.k;
  std::vector<uint64_t> dense_ids, bm25_ids;
  std::vector<double> dense_scores, bm25_scores;
  if (o.mode != SearchMode::bm25) {
    const std::vector<float> q = s.embedder->embed(query);
    const size_t k = std::min(want, s.chunks.size());
    const size_t ef = std::max(o.ef_search ? o.ef_search : std::max<size_t>(64, want), k);
    for (const auto& n : s.dense->search(q, k, ef)) {
      dense_ids.push_back(n.label);
      dense_scores.push_back(1.0 - n.distance);  // cosine similarity
    }
  }
  if (o.mode != SearchMode::dense)
    for (const Bm25Hit& h : s.bm25.search(query, want)) {
      bm25_ids.push_back(h.id);
      bm25_scores.push_back(h.score);
    }
  auto rank_in = [](const std::vector<uint64_t>& ids, uint64_t id) -> size_t {
    const auto it = std::find(ids.begin(), ids.end(), id);
    return it == ids.end() ? 0 : static_cast<size_t>(it - ids.begin()) + 1;
  };
  std::vector<SearchHit> hits;
  if (o.mode == SearchMode::dense) {
    for (size_t i = 0; i < dense_ids.size() && i < o.k; ++i)
      hits.push_back({dense_ids[i], dense_scores[i], i + 1, 0});
  } else if (o.mode == SearchMode::bm25) {
    for (size_t i = 0; i < bm25_ids.size() && i < o.k; ++i)
      hits.push_back({bm25_ids[i], bm25_scores[i], 0, i + 1});
  } else {
    const std::vector<std::vector<uint64_t>> lists = {dense_ids, bm25_ids};
    const auto fused = reciprocal_rank_fusion(
        lists, {.k = o.rrf_k, .weights = {o.dense_weight, o.bm25_weight}, .top_k = o.k});
    for (const FusedHit& f : fused)
      hits.push_back({f.id, f.score, rank_in(dense_ids, f.id), rank_in(bm25_ids, f.id)});
  }
  return hits;
}

const StoredChunk& Store::chunk(uint64_t id) const {
  const auto it = impl_->chunks.find(id);
  if (it == impl_->chunks.end()) fail<IndexError>("rag::Store: no chunk ", id);
  return it->second;
}

const StoredDocument& Store::document(const std::string& id) const {
  const auto it = impl_->docs.find(id);
  if (it == impl_->docs.end()) fail<IndexError>("rag::Store: no document '", id, "'");
  return it->second;
}

bool Store::contains(const std::string& document_id) const {
  return impl_->docs.contains(document_id);
}
size_t Store::document_count() const noexcept {
  return impl_->docs.size();
}
size_t Store::chunk_count() const noexcept {
  return impl_->chunks.size();
}
std::vector<std::string> Store::document_ids() const {
  std::vector<std::string> v;
  for (const auto& [id, d] : impl_->docs) v.push_back(id);
  return v;
}
const Embedder& Store::embedder() const noexcept {
  return *impl_->embedder;
}
const StoreOptions& Store::options() const noexcept {
  return impl_->options;
}
const std::string& Store::dir() const noexcept {
  return impl_->dir;
}
int64_t Store::generation() const noexcept {
  return impl_->generation;
}
void Store::set_commit_hook(std::function<void(std::string_view)> hook) {
  impl_->commit_hook = std::move(hook);
}

}  // namespace scholar::rag
