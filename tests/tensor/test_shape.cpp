// Shapes, strides and the view arithmetic behind every Tensor<T>.
#include <catch2/catch.hpp>

#include "scholar/error.hpp"
#include "scholar/tensor/shape.hpp"

using namespace scholar;

TEST_CASE("shapes count elements and reject bad sizes", "[shape]") {
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{2, 3, 4}.numel() == 24);
  CHECK(Shape{2, 0, 4}.numel() == 0);
  CHECK(Shape{2, 3}.str() == "[2, 3]");
  CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5, 6, 7, 8, 9}), ShapeError);
  CHECK_THROWS_WITH((Shape{2, -1}.numel("zeros")),
                    Catch::Contains("zeros") && Catch::Contains("negative"));
  CHECK_THROWS_WITH((Shape{int64_t{1} << 40, int64_t{1} << 40}.numel()),
                    Catch::Contains("more elements"));
  Shape s{2, 3};
  s.insert(0, 7);
  s.erase(2);
  CHECK(s == Shape{7, 2});
  CHECK_THROWS_AS(s.erase(5), IndexError);
}

TEST_CASE("contiguous layouts and the contiguity test", "[shape]") {
  const Layout l = Layout::contiguous({2, 3, 4});
  CHECK(l.strides == Strides{12, 4, 1});
  CHECK(l.is_contiguous());
  CHECK(!layout::transpose(l, 0, 2).is_contiguous());
  // Size-1 dimensions may carry any stride.
  Layout odd = Layout::contiguous({3, 1, 4});
  odd.strides[1] = 999;
  CHECK(odd.is_contiguous());
  CHECK(l.extent() == std::pair<int64_t, int64_t>{0, 24});
}

TEST_CASE("broadcast follows NumPy and names both shapes on failure", "[shape]") {
  CHECK(layout::broadcast_shapes({2, 1, 4}, {3, 1}, "add") == Shape{2, 3, 4});
  CHECK(layout::broadcast_shapes({}, {5}, "add") == Shape{5});
  CHECK(layout::broadcast_shapes({0, 1}, {1, 3}, "add") == Shape{0, 3});
  CHECK_THROWS_WITH(layout::broadcast_shapes({2, 3}, {4}, "add"),
                    Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
}

TEST_CASE("reshape gives a view exactly when strides allow", "[shape]") {
  const Layout c = Layout::contiguous({4, 6});
  auto r = layout::reshape(c, {2, 2, -1});
  REQUIRE(r);
  CHECK(r->shape == Shape{2, 2, 6});
  // A transposed matrix cannot be flattened without a copy...
  const Layout t = layout::transpose(c, 0, 1);
  CHECK(!layout::reshape(t, {24}));
  // ...but splitting or merging dimensions that are still evenly spaced works.
  auto split = layout::reshape(t, {3, 2, 4});
  REQUIRE(split);
  CHECK(split->strides == Strides{2, 1, 6});
  // A row slice (stride 2 on rows) can merge nothing across rows but can add unit dimensions.
  const Layout rows = layout::slice(c, 0, 0, 4, 2);
  auto u = layout::reshape(rows, {2, 1, 6});
  REQUIRE(u);
  CHECK(u->strides[0] == 12);
  CHECK(!layout::reshape(rows, {12}));
  CHECK_THROWS_AS(layout::reshape(c, {5, 5}), ShapeError);
  CHECK_THROWS_AS(layout::reshape(c, {-1, -1}), ShapeError);
  CHECK_THROWS_AS(layout::reshape(c, {7, -1}), ShapeError);
}

TEST_CASE("slice, select, permute, squeeze, unsqueeze and expand layouts", "[shape]") {
  const Layout c = Layout::contiguous({4, 5});
  const Layout s = layout::slice(c, 1, 1, 5, 2);
  CHECK(s.shape == Shape{4, 2});
  CHECK(s.strides == Strides{5, 2});
  CHECK(s.offset == 1);
  CHECK(layout::slice(c, 0, -2, 4, 1).offset == 10);  // negative start counts from the end
  CHECK_THROWS_AS(layout::slice(c, 0, 0, 5, 1), IndexError);
  CHECK_THROWS_AS(layout::slice(c, 0, 3, 1, 1), IndexError);
  CHECK_THROWS_AS(layout::slice(c, 0, 0, 4, 0), ValueError);
  CHECK_THROWS_AS(layout::slice(c, 2, 0, 1, 1), IndexError);
  const Layout sel = layout::select(c, 1, -1);
  CHECK(sel.shape == Shape{4});
  CHECK(sel.offset == 4);
  CHECK_THROWS_AS(layout::select(c, 0, 4), IndexError);
  const int order[] = {1, 0};
  CHECK(layout::permute(c, order).strides == Strides{1, 5});
  const int dup[] = {0, 0};
  CHECK_THROWS_AS(layout::permute(c, dup), ShapeError);
  const Layout u = layout::unsqueeze(c, -1);
  CHECK(u.shape == Shape{4, 5, 1});
  CHECK(layout::squeeze(u, 2).shape == Shape{4, 5});
  CHECK_THROWS_AS(layout::squeeze(u, 0), ShapeError);
  CHECK(layout::squeeze_all(Layout::contiguous({1, 3, 1})).shape == Shape{3});
  const Layout e = layout::expand(Layout::contiguous({1, 5}), {3, 4, -1});
  CHECK(e.shape == Shape{3, 4, 5});
  CHECK(e.strides == Strides{0, 0, 1});
  CHECK_THROWS_WITH(layout::expand(c, {4, 6}),
                    Catch::Contains("[4, 5]") && Catch::Contains("[4, 6]"));
}
