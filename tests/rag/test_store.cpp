// rag::Store: search in three modes, incremental updates, persistence, refusal of a foreign
// embedder or damaged files, and crash safety (a child process killed at each step of a commit).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/rag/store.hpp"
#include "support.hpp"

extern char** environ;

using namespace scholar;
namespace fs = std::filesystem;

namespace {

const std::string kModel = SCHOLAR_TEST_DATA "/bert/minilm_tiny";

std::shared_ptr<const rag::Embedder> encoder() {
  static const std::shared_ptr<const rag::Embedder> e = rag::SentenceEncoder::load(kModel);
  return e;
}

std::vector<rag::Document> docs() {
  return {
      {"kludge",
       "kludge.txt",
       "A kludge is a clumsy but working fix.\n\nHackers build kludges under deadline pressure.",
       {{"headword", "kludge"}}},
      {"cruft", "cruft.txt", "Cruft is excess software that accumulates over time.", {}},
      {"daemon",
       "daemon.txt",
       "A daemon is a program that runs in the background and serves requests.",
       {}},
      {"grok", "grok.txt", "To grok something is to understand it deeply and intuitively.", {}},
      {"empty", "empty.txt", "   ", {}},
  };
}

rag::StoreOptions small_chunks() {
  rag::StoreOptions o;
  o.splitter.chunk_size = 60;
  o.splitter.chunk_overlap = 10;
  return o;
}

// Every chunk's text and document, sorted: what a store holds.
std::vector<std::string> contents(const rag::Store& s) {
  std::vector<std::string> v;
  for (const auto& id : s.document_ids())
    for (uint64_t c : s.document(id).chunk_ids) v.push_back(id + ": " + s.chunk(c).text);
  return v;
}

}  // namespace

TEST_CASE("a store finds chunks by keywords, by vectors and by both", "[store]") {
  const std::string dir = test::temp_dir("test_rag", "store_search");
  auto store = rag::Store::create(dir + "/s", encoder(), small_chunks());
  const auto d = docs();
  const auto report = store.add(d);
  CHECK(report.documents_added == 5);
  CHECK(report.documents_without_chunks == 1);
  CHECK(report.chunks_added == store.chunk_count());
  CHECK(store.chunk_count() >= 5);  // the kludge entry is two chunks
  CHECK(store.document("kludge").chunk_ids.size() == 2);
  CHECK(store.document("kludge").metadata.at("headword") == "kludge");
  // BM25: a distinctive word.
  auto hits = store.search("background requests", {.k = 3, .mode = rag::SearchMode::bm25});
  REQUIRE(!hits.empty());
  CHECK(store.chunk(hits[0].chunk_id).document_id == "daemon");
  CHECK(hits[0].bm25_rank == 1);
  // Dense: a chunk's own text is its nearest vector (cosine 1).
  const auto& grok = store.chunk(store.document("grok").chunk_ids[0]);
  hits = store.search(grok.text, {.k = 2, .mode = rag::SearchMode::dense});
  REQUIRE(!hits.empty());
  CHECK(hits[0].chunk_id == grok.id);
  CHECK(hits[0].score == Approx(1.0).margin(1e-5));
  // Hybrid: fused ranks; a chunk both rankings put first comes first.
  hits = store.search(grok.text, {.k = 4});
  REQUIRE(hits.size() == 4);
  CHECK(hits[0].chunk_id == grok.id);
  CHECK(hits[0].dense_rank == 1);
  CHECK(hits[0].bm25_rank == 1);
  CHECK(hits[0].score == Approx(2.0 / 61));
  // Weights: BM25 alone decides with a zero dense weight.
  hits = store.search("background requests", {.k = 1, .dense_weight = 0});
  CHECK(store.chunk(hits[0].chunk_id).document_id == "daemon");
  CHECK_THROWS_AS(store.search("x", {.k = 0}), ValueError);
  CHECK_THROWS_AS(store.search("x", {.dense_weight = -1}), ValueError);
  CHECK_THROWS_AS(rag::search_mode_from_name("fuzzy"), ValueError);
  CHECK(rag::search_mode_from_name("bm25") == rag::SearchMode::bm25);
}

TEST_CASE("a store updates in place and reopens as it was", "[store]") {
  const std::string dir = test::temp_dir("test_rag", "store_update") + "/s";
  {
    auto store = rag::Store::create(dir, encoder(), small_chunks());
    store.add(docs());
    CHECK(store.generation() == 0);
    store.commit();
    CHECK(store.generation() == 1);
    CHECK_THROWS_AS(rag::Store::create(dir, encoder()), ValueError);
  }
  auto store = rag::Store::open(dir, encoder());
  CHECK(store.generation() == 1);
  CHECK(store.document_count() == 5);
  const auto before = contents(store);
  const auto hits = store.search("deadline pressure", {.k = 3});
  {
    auto again = rag::Store::open(dir, encoder());
    const auto hits2 = again.search("deadline pressure", {.k = 3});
    REQUIRE(hits2.size() == hits.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      CHECK(hits2[i].chunk_id == hits[i].chunk_id);
      CHECK(hits2[i].score == hits[i].score);
    }
  }
  // Unchanged documents are skipped; a changed one is replaced; one is removed.
  auto d = docs();
  auto r = store.add(d);
  CHECK(r.documents_unchanged == 5);
  CHECK(r.chunks_added == 0);
  d[1].text = "Cruft is what piles up in old code bases.";
  const uint64_t old_cruft = store.document("cruft").chunk_ids[0];
  r = store.add(std::span(d).subspan(1, 1));
  CHECK(r.documents_replaced == 1);
  CHECK(store.document("cruft").chunk_ids[0] != old_cruft);
  CHECK_THROWS_AS(store.chunk(old_cruft), IndexError);
  CHECK(store.remove("grok"));
  CHECK_FALSE(store.remove("grok"));
  CHECK_FALSE(store.contains("grok"));
  for (const auto& h : store.search("understand deeply intuitively", {.k = 10}))
    CHECK(store.chunk(h.chunk_id).document_id != "grok");
  store.commit();
  const auto after = contents(store);
  CHECK(after != before);
  auto reopened = rag::Store::open(dir, encoder());
  CHECK(contents(reopened) == after);
  CHECK(reopened.generation() == 2);
  // Only the current generation's files remain.
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  CHECK(files ==
        std::vector<std::string>{"bm25.2.bm25", "chunks.2.bin", "dense.2.hnsw", "manifest.json"});
  // Opening removes an older generation's leftovers, not a newer one's (a commit in progress in
  // another process); the next commit removes those.
  io::write_file_atomic(dir + "/chunks.1.bin", "old");
  io::write_file_atomic(dir + "/dense.4.hnsw", "in progress");
  (void)rag::Store::open(dir, encoder());
  CHECK_FALSE(fs::exists(dir + "/chunks.1.bin"));
  CHECK(fs::exists(dir + "/dense.4.hnsw"));
  reopened.commit();
  CHECK_FALSE(fs::exists(dir + "/dense.4.hnsw"));
  CHECK(reopened.generation() == 3);
  const auto info = rag::StoreInfo::read(dir);
  CHECK(info.documents == 4);
  CHECK(info.chunks == reopened.chunk_count());
  CHECK(info.embedder_fingerprint == encoder()->fingerprint());
  CHECK(info.embedder_location == std::filesystem::absolute(kModel).lexically_normal().string());
  CHECK(info.splitter == "60 characters, overlap 10");
}

TEST_CASE("a store refuses another embedder and damaged files", "[store]") {
  const std::string dir = test::temp_dir("test_rag", "store_bad") + "/s";
  {
    auto store = rag::Store::create(dir, encoder(), small_chunks());
    store.add(docs());
    store.commit();
  }
  // Another embedder: the same model pooled differently makes other vectors.
  auto other = std::make_shared<rag::SentenceEncoder>(
      std::dynamic_pointer_cast<const rag::SentenceEncoder>(encoder())->model_ptr(),
      rag::Pooling::cls, true);
  CHECK_THROWS_WITH(rag::Store::open(dir, other), Catch::Contains(encoder()->fingerprint()) &&
                                                      Catch::Contains(other->fingerprint()) &&
                                                      Catch::Contains("cannot be mixed"));
  CHECK_THROWS_WITH(rag::Store::open(dir + "/nowhere", encoder()),
                    Catch::Contains("no manifest.json"));
  // Damage each file in turn (a copy of the store each time).
  auto damaged = [&](const std::string& file, auto&& damage) {
    const std::string copy = dir + "_copy";
    fs::remove_all(copy);
    fs::copy(dir, copy);
    damage(copy + "/" + file);
    return copy;
  };
  auto flip = [](const std::string& path) {
    std::string bytes = io::read_file(path);
    bytes[bytes.size() / 2] ^= 0x20;
    io::write_file_atomic(path, bytes);
  };
  auto truncate = [](const std::string& path) {
    const std::string bytes = io::read_file(path);
    io::write_file_atomic(path, std::string_view(bytes).substr(0, bytes.size() - 9));
  };
  for (const char* f : {"chunks.1.bin", "dense.1.hnsw", "bm25.1.bm25"}) {
    INFO(f);
    CHECK_THROWS_WITH(rag::Store::open(damaged(f, flip), encoder()), Catch::Contains(f));
    CHECK_THROWS_WITH(rag::Store::open(damaged(f, truncate), encoder()), Catch::Contains(f));
    CHECK_THROWS_WITH(
        rag::Store::open(damaged(f, [](const std::string& p) { fs::remove(p); }), encoder()),
        Catch::Contains(f) && Catch::Contains("missing"));
  }
  const std::string v2 = damaged("manifest.json", [](const std::string& p) {
    io::Json j = io::Json::parse(io::read_file(p));
    j.set("version", io::Json(2));
    io::write_file_atomic(p, j.dump());
  });
  CHECK_THROWS_WITH(rag::Store::open(v2, encoder()), Catch::Contains("version 2"));
  const std::string half = damaged("manifest.json", [](const std::string& p) {
    const std::string bytes = io::read_file(p);
    io::write_file_atomic(p, std::string_view(bytes).substr(0, bytes.size() / 2));
  });
  CHECK_THROWS_WITH(rag::Store::open(half, encoder()), Catch::Contains("manifest.json"));
}

// The writer that the crash test kills: opens the store named by SCHOLAR_STORE_DIR, adds a
// document, and commits, raising SIGKILL at step SCHOLAR_STORE_KILL_AT. Hidden: run only by name.
TEST_CASE("store child writer", "[.][store_child]") {
  const char* dir = std::getenv("SCHOLAR_STORE_DIR");
  const char* at = std::getenv("SCHOLAR_STORE_KILL_AT");
  REQUIRE(dir);
  REQUIRE(at);
  auto store = rag::Store::open(dir, encoder());
  store.add(std::vector<rag::Document>{
      {"new", "new.txt", "A brand new entry about frobnicating widgets.", {}}});
  store.remove("cruft");
  const std::string kill_at = at;
  store.set_commit_hook([&](std::string_view step) {
    if (step == kill_at) ::raise(SIGKILL);
  });
  store.commit();
}

TEST_CASE("a commit killed at any step leaves the store as before or as after", "[store]") {
  const std::string dir = test::temp_dir("test_rag", "store_crash") + "/s";
  {
    auto store = rag::Store::create(dir, encoder(), small_chunks());
    store.add(docs());
    store.commit();
  }
  const auto before = contents(rag::Store::open(dir, encoder()));
  std::vector<std::string> after;
  for (const char* step : {"chunks", "dense", "bm25", "manifest", "cleanup"}) {
    INFO("killed before step " << step);
    // The child: this test program, running the hidden writer.
    setenv("SCHOLAR_STORE_DIR", dir.c_str(), 1);
    setenv("SCHOLAR_STORE_KILL_AT", step, 1);
    char self[] = "/proc/self/exe";
    char filter[] = "[store_child]";
    char* argv[] = {self, filter, nullptr};
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    auto store = rag::Store::open(dir, encoder());  // also clears the leftovers
    const auto now = contents(store);
    if (std::string(step) == "cleanup") {
      CHECK(now != before);  // the manifest was replaced: the commit happened
      CHECK(store.contains("new"));
      CHECK_FALSE(store.contains("cruft"));
    } else {
      CHECK(now == before);
    }
    // The store's own four files are there; the killed commit's may be too (a reader leaves them
    // for the next commit, which replaces them and removes the rest).
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
    CHECK(files >= 4);
    if (std::string(step) == "cleanup") break;
  }
  auto store = rag::Store::open(dir, encoder());
  store.commit();
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 4);
  CHECK(contents(rag::Store::open(dir, encoder())) == contents(store));
}
