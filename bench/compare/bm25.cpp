// BM25 search speed: scholar's Bm25Index over FOLDOC's entries cut into chunks, one thread.
// bench/compare/bm25.py runs it beside SQLite FTS5 and Xapian on the same chunks and queries.
//
//   bm25_bench --dict FILE [--index FILE] [--chunks-out FILE] [--queries FILE] [--k 10]
//              [--chunk-size 1000] [--overlap 100] [--passes 1] [--limit N]
//
// Loads the dictionary with rag::load_documents (or --index, if that file exists: the index saved
// by an earlier run, whose build time is then not measured), splits every entry with rag::Splitter
// (characters), adds the chunks under ids 0, 1, 2, ... and, with --index, saves the index there.
// --chunks-out writes the chunks as JSON lines {"id", "doc", "headword", "text"} for the other
// engines. With --queries (one query per line), runs one untimed pass over them, then --passes
// timed passes, and prints one JSON object: sizes, build seconds, queries/s of each pass, and each
// query's top-k ids (best first).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "scholar/io/json.hpp"
#include "scholar/rag/bm25.hpp"
#include "scholar/rag/loader.hpp"
#include "scholar/rag/splitter.hpp"

using namespace scholar;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --dict FILE [--index FILE] [--chunks-out FILE] [--queries FILE] "
               "[--k 10] [--chunk-size 1000] [--overlap 100] [--passes 1] [--limit N]\n",
               argv0);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dict, index_path, chunks_out, queries_path;
  size_t k = 10, chunk_size = 1000, overlap = 100, passes = 1, limit = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const char* v = argv[++i];
    if (a == "--dict")
      dict = v;
    else if (a == "--index")
      index_path = v;
    else if (a == "--chunks-out")
      chunks_out = v;
    else if (a == "--queries")
      queries_path = v;
    else if (a == "--k")
      k = std::strtoul(v, nullptr, 10);
    else if (a == "--chunk-size")
      chunk_size = std::strtoul(v, nullptr, 10);
    else if (a == "--overlap")
      overlap = std::strtoul(v, nullptr, 10);
    else if (a == "--passes")
      passes = std::strtoul(v, nullptr, 10);
    else if (a == "--limit")
      limit = std::strtoul(v, nullptr, 10);
    else
      usage(argv[0]);
  }
  if (dict.empty() && index_path.empty()) usage(argv[0]);

  io::Json out = io::Json::object();
  rag::Bm25Index index;
  const bool reuse =
      !index_path.empty() && std::filesystem::exists(index_path) && chunks_out.empty();
  if (reuse) {
    const auto t0 = std::chrono::steady_clock::now();
    index = rag::Bm25Index::load(index_path);
    out.set("load_s", seconds_since(t0));
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    rag::LoadResult loaded = rag::load_documents(dict);
    if (limit && loaded.documents.size() > limit) loaded.documents.resize(limit);
    const rag::Splitter splitter({.chunk_size = chunk_size, .chunk_overlap = overlap});
    const std::vector<rag::Chunk> chunks = splitter.split(loaded.documents);
    const double prepare_s = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < chunks.size(); ++i) index.add(i, chunks[i].text);
    out.set("build_s", seconds_since(t1));
    out.set("load_split_s", prepare_s);
    out.set("documents", static_cast<int64_t>(loaded.documents.size()));
    if (!chunks_out.empty()) {
      std::ofstream f(chunks_out, std::ios::binary);
      size_t d = 0;  // chunks come document after document
      for (size_t i = 0; i < chunks.size(); ++i) {
        while (loaded.documents[d].id != chunks[i].document_id) ++d;
        const auto& meta = loaded.documents[d].metadata;
        const auto hw = meta.find("headword");
        io::Json line = io::Json::object();
        line.set("id", static_cast<int64_t>(i));
        line.set("doc", chunks[i].document_id);
        line.set("headword", hw == meta.end() ? std::string() : hw->second);
        line.set("text", chunks[i].text);
        f << line.dump() << '\n';
      }
    }
    if (!index_path.empty()) index.save(index_path);
  }
  out.set("engine", "scholar");
  out.set("chunks", static_cast<int64_t>(index.size()));
  out.set("terms", static_cast<int64_t>(index.term_count()));

  if (!queries_path.empty()) {
    std::vector<std::string> queries;
    std::ifstream f(queries_path);
    for (std::string line; std::getline(f, line);) queries.push_back(line);
    std::vector<std::vector<rag::Bm25Hit>> results(queries.size());
    for (size_t i = 0; i < queries.size(); ++i) results[i] = index.search(queries[i], k);  // warm
    io::Json qps = io::Json::array();
    for (size_t p = 0; p < passes; ++p) {
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < queries.size(); ++i) results[i] = index.search(queries[i], k);
      qps.push_back(static_cast<double>(queries.size()) / seconds_since(t0));
    }
    out.set("qps", std::move(qps));
    io::Json top = io::Json::array();
    for (const auto& r : results) {
      io::Json ids = io::Json::array();
      for (const rag::Bm25Hit& h : r) ids.push_back(h.id);
      top.push_back(std::move(ids));
    }
    out.set("top", std::move(top));
  }
  std::puts(out.dump().c_str());
  return 0;
}
