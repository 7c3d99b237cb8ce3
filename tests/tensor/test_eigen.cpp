// Zero-copy views between Tensor<float> and Eigen matrices.
#include <catch2/catch.hpp>

#include "scholar/tensor/eigen.hpp"
#include "scholar/tensor/ops.hpp"

using namespace scholar;

TEST_CASE("a contiguous tensor is a row-major Eigen map over the same memory", "[eigen]") {
  FloatTensor t = FloatTensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  auto m = as_eigen(t);
  CHECK(m.rows() == 2);
  CHECK(m(1, 0) == 4.0f);
  CHECK(m.data() == t.data());
  m(0, 2) = 30.0f;
  CHECK(t(0, 2) == 30.0f);
  // A column slice keeps contiguous rows: still a map, with an outer stride.
  FloatTensor wide = FloatTensor::zeros({3, 8});
  auto sub = as_eigen(wide.slice(1, 2, 5));
  CHECK(sub.outerStride() == 8);
  sub.setConstant(1.0f);
  CHECK(sum_all(wide) == 9.0);
  CHECK_THROWS_AS(as_eigen(t.t()), ShapeError);
  CHECK_THROWS_AS(as_eigen(FloatTensor::zeros({2, 2, 2})), ShapeError);
}

TEST_CASE("Eigen matrices wrap as tensors in either storage order", "[eigen]") {
  Eigen::MatrixXf col(3, 2);  // column-major
  col << 1, 2, 3, 4, 5, 6;
  const FloatTensor t = from_eigen(col);
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.strides() == Strides{1, 3});
  CHECK(t(2, 1) == 6.0f);
  t(0, 0) = -1.0f;
  CHECK(col(0, 0) == -1.0f);
  RowMatrixXf row(2, 3);
  row << 1, 2, 3, 4, 5, 6;
  const FloatTensor r = from_eigen(row);
  CHECK(r.strides() == Strides{3, 1});
  // Products through either side agree.
  const RowMatrixXf want = row * col;
  const FloatTensor got = matmul(r, t);
  CHECK((as_eigen(got) - want).cwiseAbs().maxCoeff() < 1e-5f);
}
