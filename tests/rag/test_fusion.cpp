// Reciprocal rank fusion on lists small enough to check by hand.
#include <catch2/catch.hpp>

#include "scholar/error.hpp"
#include "scholar/rag/fusion.hpp"

using namespace scholar;

namespace {

void check_hits(const std::vector<rag::FusedHit>& got,
                const std::vector<std::pair<uint64_t, double>>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("rank " << i << ": got " << got[i].id << " " << got[i].score << ", want " << want[i].first
                 << " " << want[i].second);
    CHECK(got[i].id == want[i].first);
    CHECK(got[i].score == Approx(want[i].second).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("reciprocal rank fusion sums 1 / (k + rank) over the lists", "[rag][fusion]") {
  // a: 1 2 3, b: 3 1 4 (k = 60)
  //   1: 1/61 + 1/62    3: 1/63 + 1/61    2: 1/62    4: 1/63
  const std::vector<uint64_t> a = {1, 2, 3}, b = {3, 1, 4};
  check_hits(rag::reciprocal_rank_fusion({a, b}),
             {{1, 1.0 / 61 + 1.0 / 62}, {3, 1.0 / 63 + 1.0 / 61}, {2, 1.0 / 62}, {4, 1.0 / 63}});
  // k = 0: 1/rank. 1: 1 + 1/2 = 1.5, 3: 1/3 + 1 = 1.333, 2: 0.5, 4: 0.333 (equal to 3's share in
  // a, but 4 has nothing else).
  check_hits(rag::reciprocal_rank_fusion({a, b}, {.k = 0}),
             {{1, 1.5}, {3, 1.0 / 3 + 1}, {2, 0.5}, {4, 1.0 / 3}});
  // top_k keeps the best.
  check_hits(rag::reciprocal_rank_fusion({a, b}, {.k = 0, .top_k = 2}), {{1, 1.5}, {3, 4.0 / 3}});
}

TEST_CASE("fusion weights, duplicates, ties and empty lists", "[rag][fusion]") {
  const std::vector<uint64_t> a = {10, 20}, b = {20, 10};
  // Equal weights: 10 and 20 tie at 1/61 + 1/62; the smaller id comes first.
  check_hits(rag::reciprocal_rank_fusion({a, b}),
             {{10, 1.0 / 61 + 1.0 / 62}, {20, 1.0 / 61 + 1.0 / 62}});
  // Weight 3 on b: 20 = 3/61 + 1/62 beats 10 = 1/61 + 3/62.
  check_hits(rag::reciprocal_rank_fusion({a, b}, {.weights = {1, 3}}),
             {{20, 1.0 / 62 + 3.0 / 61}, {10, 1.0 / 61 + 3.0 / 62}});
  // Weight 0 silences a list (its ids still appear, with score 0 from it).
  check_hits(rag::reciprocal_rank_fusion({a, b}, {.weights = {0, 1}}),
             {{20, 1.0 / 61}, {10, 1.0 / 62}});
  // A duplicate within one list counts once, at its best rank: 7 at ranks 1 and 3 -> 1/61.
  const std::vector<uint64_t> dup = {7, 8, 7, 9};
  check_hits(rag::reciprocal_rank_fusion({dup}), {{7, 1.0 / 61}, {8, 1.0 / 62}, {9, 1.0 / 64}});
  // The same id in two lists still adds up.
  check_hits(rag::reciprocal_rank_fusion({dup, std::vector<uint64_t>{9}}),
             {{9, 1.0 / 64 + 1.0 / 61}, {7, 1.0 / 61}, {8, 1.0 / 62}});
  // Empty lists and no lists.
  const std::vector<uint64_t> none;
  check_hits(rag::reciprocal_rank_fusion({none, a}), {{10, 1.0 / 61}, {20, 1.0 / 62}});
  CHECK(rag::reciprocal_rank_fusion(std::span<const std::vector<uint64_t>>()).empty());
  // Large ids pass through untouched.
  const std::vector<uint64_t> big = {~uint64_t{0}, uint64_t{1} << 40};
  check_hits(rag::reciprocal_rank_fusion({big}),
             {{~uint64_t{0}, 1.0 / 61}, {uint64_t{1} << 40, 1.0 / 62}});
}

TEST_CASE("fusion options are checked", "[rag][fusion]") {
  const std::vector<uint64_t> a = {1}, b = {2};
  CHECK_THROWS_AS(rag::reciprocal_rank_fusion({a, b}, {.weights = {1}}), ValueError);
  CHECK_THROWS_AS(rag::reciprocal_rank_fusion({a, b}, {.weights = {1, -1}}), ValueError);
  CHECK_THROWS_AS(rag::reciprocal_rank_fusion({a}, {.k = -1}), ValueError);
  CHECK_THROWS_AS(rag::reciprocal_rank_fusion({a}, {.k = INFINITY}), ValueError);
}
