// BM25: the analyzer and the scores against a plain-Python reference of the textbook formula
// (tests/reference/make_bm25_fixtures.py), in-place add/remove against indexes built fresh,
// save/load round trips, and files that are not what they claim.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"
#include "scholar/rag/bm25.hpp"
#include "support.hpp"

using namespace scholar;

namespace {

struct Doc {
  uint64_t id;
  std::string text;
};

struct Fixture {
  std::vector<Doc> docs;
  io::Json json;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    const std::string path = std::string(SCHOLAR_TEST_DATA) + "/rag/bm25_fixture.json";
    f.json = io::Json::parse(io::read_file(path), path);
    for (const io::Json& d : f.json.at("documents").as_array())
      f.docs.push_back({static_cast<uint64_t>(d.at("id").as_int()), d.at("text").as_string()});
    return f;
  }();
  return f;
}

rag::Bm25Index build(const std::vector<Doc>& docs, rag::Bm25Params p = {},
                     rag::AnalyzerOptions a = {}) {
  rag::Bm25Index index(p, std::move(a));
  for (const Doc& d : docs) index.add(d.id, d.text);
  return index;
}

std::vector<std::string> queries() {
  std::vector<std::string> q;
  for (const io::Json& e : fixture().json.at("scenarios").as_array()[0].at("queries").as_array())
    q.push_back(e.at("query").as_string());
  q.push_back("memory bread café 内存 the and");
  return q;
}

std::string temp_path(const std::string& name) {
  return test::temp_dir("rag_bm25", name) + "/index.bm25";
}

void check_same_results(const rag::Bm25Index& a, const rag::Bm25Index& b) {
  for (const std::string& q : queries()) {
    INFO("query: " << q);
    CHECK(a.search(q, 100) == b.search(q, 100));
    CHECK(a.search(q, 3) == b.search(q, 3));
  }
}

}  // namespace

TEST_CASE("the analyzer cuts text into terms as the Python reference does", "[rag][bm25]") {
  const rag::Analyzer analyzer;
  for (const io::Json& e : fixture().json.at("analyzer").as_array()) {
    std::vector<std::string> want;
    for (const io::Json& t : e.at("terms").as_array()) want.push_back(t.as_string());
    INFO("text: " << e.at("text").as_string());
    CHECK(analyzer.terms(e.at("text").as_string()) == want);
  }
  // Stopwords are matched after lowercasing, whatever case the list uses.
  const rag::Analyzer stop({.stopwords = {"The", "OF"}});
  CHECK(stop.terms("The Art of THE Deal") == std::vector<std::string>{"art", "deal"});
  CHECK(rag::english_stopwords().size() == 33);
  CHECK(analyzer.terms("").empty());
  CHECK(analyzer.terms("!!! ... \xff\xfe").empty());  // invalid bytes separate terms
  CHECK(analyzer.terms("ab\xff"
                       "cd") == std::vector<std::string>{"ab", "cd"});
}

TEST_CASE("BM25 scores match the textbook formula computed in Python", "[rag][bm25]") {
  const Fixture& f = fixture();
  for (const io::Json& sc : f.json.at("scenarios").as_array()) {
    const std::string name = sc.at("name").as_string();
    rag::Bm25Params p;
    p.k1 = static_cast<float>(sc.at("k1").as_double());
    p.b = static_cast<float>(sc.at("b").as_double());
    rag::AnalyzerOptions a;
    for (const io::Json& w : sc.at("stopwords").as_array()) a.stopwords.push_back(w.as_string());
    const rag::Bm25Index index = build(f.docs, p, a);
    REQUIRE(index.size() == f.docs.size());
    for (const io::Json& q : sc.at("queries").as_array()) {
      const std::string query = q.at("query").as_string();
      INFO(name << ", query '" << query << "'");
      const auto& want = q.at("hits").as_array();
      const auto got = index.search(query, 1000);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        const double want_score = want[i].as_array()[1].as_double();
        const auto want_id = static_cast<uint64_t>(want[i].as_array()[0].as_int());
        INFO("rank " << i << ": got id " << got[i].id << " score " << got[i].score << ", want id "
                     << want_id << " score " << want_score);
        // The score at each rank matches; so does the id wherever the reference's scores are
        // not within rounding of a neighbour's (near-ties may swap in float).
        CHECK(std::fabs(got[i].score - want_score) <= 1e-5 * std::fabs(want_score));
        const bool tie_before = i > 0 && std::fabs(want[i - 1].as_array()[1].as_double() -
                                                   want_score) <= 1e-5 * want_score;
        const bool tie_after =
            i + 1 < want.size() &&
            std::fabs(want[i + 1].as_array()[1].as_double() - want_score) <= 1e-5 * want_score;
        if (!tie_before && !tie_after) CHECK(got[i].id == want_id);
        if (i > 0)
          CHECK((got[i - 1].score > got[i].score ||
                 (got[i - 1].score == got[i].score && got[i - 1].id < got[i].id)));
      }
      // A smaller k returns the first k of the full list.
      if (got.size() > 2)
        CHECK(index.search(query, 2) == std::vector(got.begin(), got.begin() + 2));
    }
  }
}

TEST_CASE("removing and adding documents in place equals building fresh", "[rag][bm25]") {
  const auto& docs = fixture().docs;
  const rag::Bm25Index fresh = build(docs);

  SECTION("remove then re-add in another order gives bit-identical results") {
    rag::Bm25Index index = build(docs);
    for (size_t i = 0; i < docs.size(); i += 3) CHECK(index.remove(docs[i].id));
    CHECK(index.size() == docs.size() - (docs.size() + 2) / 3);
    for (size_t i = docs.size(); i-- > 0;)
      if (i % 3 == 0) index.add(docs[i].id, docs[i].text);
    CHECK(index.size() == fresh.size());
    CHECK(index.term_count() == fresh.term_count());
    check_same_results(index, fresh);
  }
  SECTION("removing documents equals never having added them") {
    rag::Bm25Index index = build(docs);
    std::vector<Doc> kept;
    for (size_t i = 0; i < docs.size(); ++i)
      if (i % 4 == 1)
        CHECK(index.remove(docs[i].id));
      else
        kept.push_back(docs[i]);
    const rag::Bm25Index smaller = build(kept);
    CHECK(index.term_count() == smaller.term_count());  // unused terms were dropped
    check_same_results(index, smaller);
    CHECK_FALSE(index.contains(docs[1].id));
    CHECK(index.contains(docs[0].id));
    CHECK_FALSE(index.remove(docs[1].id));
    CHECK_FALSE(index.remove(123456789));
  }
  SECTION("an id already present is refused") {
    rag::Bm25Index index = build(docs);
    CHECK_THROWS_AS(index.add(docs[0].id, "again"), ValueError);
    CHECK(index.size() == docs.size());
    check_same_results(index, fresh);
  }
  SECTION("removing everything leaves an empty index that works") {
    rag::Bm25Index index = build(docs);
    for (const Doc& d : docs) CHECK(index.remove(d.id));
    CHECK(index.size() == 0);
    CHECK(index.term_count() == 0);
    CHECK(index.search("memory", 10).empty());
    for (const Doc& d : docs) index.add(d.id, d.text);
    check_same_results(index, fresh);
  }
}

TEST_CASE("random churn of adds and removes matches a fresh build", "[rag][bm25]") {
  std::mt19937_64 rng(7);
  const std::vector<std::string> words = {"alpha", "beta", "gamma", "delta", "épsilon", "ζήτα",
                                          "内",    "存",   "eta",   "theta", "iota",    "kappa"};
  auto random_text = [&] {
    std::string t;
    const size_t n = rng() % 12;
    for (size_t i = 0; i < n; ++i) t += words[rng() % words.size()] + (i % 3 ? " " : ", ");
    return t;
  };
  rag::Bm25Index index;
  std::map<uint64_t, std::string> live;
  for (int step = 0; step < 3000; ++step) {
    const uint64_t id = rng() % 200;
    if (live.count(id)) {
      CHECK(index.remove(id));
      live.erase(id);
    } else {
      const std::string t = random_text();
      index.add(id, t);
      live[id] = t;
    }
  }
  rag::Bm25Index fresh;
  for (const auto& [id, t] : live) fresh.add(id, t);
  REQUIRE(index.size() == live.size());
  CHECK(index.term_count() == fresh.term_count());
  for (int q = 0; q < 50; ++q) {
    const std::string query = random_text();
    INFO("query: " << query);
    CHECK(index.search(query + " alpha", 20) == fresh.search(query + " alpha", 20));
  }
  // The file does not depend on the history either.
  const std::string a = temp_path("churn_a"), b = temp_path("churn_b");
  index.save(a);
  fresh.save(b);
  CHECK(io::read_file(a) == io::read_file(b));
}

TEST_CASE("a saved BM25 index loads back with bit-identical results", "[rag][bm25]") {
  const auto& docs = fixture().docs;
  const rag::Bm25Index index = build(docs, {.k1 = 1.2f, .b = 0.5f}, {.stopwords = {"the", "a"}});
  const std::string path = temp_path("roundtrip");
  index.save(path);
  const rag::Bm25Index back = rag::Bm25Index::load(path);
  CHECK(back.size() == index.size());
  CHECK(back.term_count() == index.term_count());
  CHECK(back.params().k1 == 1.2f);
  CHECK(back.params().b == 0.5f);
  CHECK(back.analyzer().options().stopwords == std::vector<std::string>{"a", "the"});
  check_same_results(back, index);
  // The loaded index stays updatable, and saving it again writes the same bytes.
  const std::string again = temp_path("roundtrip_again");
  back.save(again);
  CHECK(io::read_file(again) == io::read_file(path));
  rag::Bm25Index edited = rag::Bm25Index::load(path);
  CHECK(edited.remove(docs[0].id));
  edited.add(docs[0].id, docs[0].text);
  check_same_results(edited, index);
  // An empty index round-trips too.
  rag::Bm25Index().save(again);
  CHECK(rag::Bm25Index::load(again).size() == 0);
}

TEST_CASE("truncated, corrupted and foreign BM25 files are FormatErrors naming the file",
          "[rag][bm25]") {
  const rag::Bm25Index index = build(fixture().docs);
  const std::string path = temp_path("corrupt");
  index.save(path);
  const std::string good = io::read_file(path);
  const std::string bad = test::temp_dir("rag_bm25", "corrupt_out") + "/bad.bm25";
  auto expect_format_error = [&](const std::string& bytes, const std::string& needle) {
    io::write_file_atomic(bad, bytes);
    try {
      (void)rag::Bm25Index::load(bad);
      FAIL("no FormatError for " << needle);
    } catch (const FormatError& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find(bad) != std::string::npos);
      CHECK(what.find(needle) != std::string::npos);
    }
  };
  for (const size_t cut :
       {size_t{0}, size_t{5}, size_t{10}, size_t{12}, size_t{40}, good.size() / 2, good.size() - 1})
    expect_format_error(good.substr(0, cut), cut < 8    ? "magic"
                                             : cut < 12 ? "version"
                                                        : "truncated");
  for (const size_t at : {size_t{20}, size_t{64}, good.size() / 2, good.size() - 3}) {
    std::string flipped = good;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    expect_format_error(flipped, "checksum");
  }
  std::string other = good;
  other[0] = 'X';
  expect_format_error(other, "magic");
  std::string newer = good;
  newer[8] = 9;
  expect_format_error(newer, "version 9");
  expect_format_error(good + "x", "checksum");
  CHECK_THROWS_AS(rag::Bm25Index::load(bad + ".missing"), IoError);
}

TEST_CASE("BM25 parameters and arguments are checked", "[rag][bm25]") {
  CHECK_THROWS_AS(rag::Bm25Index({.k1 = -1.0f}), ValueError);
  CHECK_THROWS_AS(rag::Bm25Index({.k1 = 1.5f, .b = 1.5f}), ValueError);
  CHECK_THROWS_AS(rag::Bm25Index({.k1 = NAN}), ValueError);
  rag::Bm25Index index;
  CHECK(index.search("anything", 5).empty());
  index.add(1, "");
  index.add(2, "...");
  CHECK(index.size() == 2);
  CHECK(index.search("anything", 5).empty());
  index.add(3, "anything goes");
  CHECK(index.search("ANYTHING", 5).size() == 1);
  CHECK_THROWS_AS(index.search("anything", 0), ValueError);
}

TEST_CASE("BM25 searches run concurrently", "[rag][bm25]") {
  const rag::Bm25Index index = build(fixture().docs);
  const auto qs = queries();
  std::vector<std::vector<rag::Bm25Hit>> want;
  for (const auto& q : qs) want.push_back(index.search(q, 10));
  std::vector<int> ok(2, 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 50; ++rep)
        for (size_t i = 0; i < qs.size(); ++i)
          if (index.search(qs[i], 10) != want[i]) ok[t] = 0;
    });
  for (auto& th : threads) th.join();
  CHECK(ok == std::vector<int>{1, 1});
}
