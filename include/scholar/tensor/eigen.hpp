// scholar/tensor/eigen.hpp: zero-copy views between tensors and Eigen matrices.
//
//   Tensor<float> t = Tensor<float>::zeros({3, 4});
//   auto m = as_eigen(t);          // Eigen::Map of a row-major 3 x 4 matrix over t's elements
//   m(1, 2) = 7.0f;                // t(1, 2) is now 7
//
//   Eigen::MatrixXf e = Eigen::MatrixXf::Random(5, 2);   // column-major
//   Tensor<float> v = from_eigen(e);                      // shape [5, 2], strides [1, 5]: no copy
//
// Neither direction copies or owns: the source must outlive the view.
#pragma once

#include <Eigen/Core>
#include <concepts>

#include "scholar/tensor/tensor.hpp"

namespace scholar {

/// Row-major dynamic float matrix, the storage order of a contiguous 2-D tensor.
using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// What as_eigen returns: a map of a row-major matrix whose rows are `outerStride()` apart.
using RowMatrixMap = Eigen::Map<RowMatrixXf, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Views a 2-D float tensor whose rows are contiguous (stride(1) == 1, as in any contiguous tensor
/// or row slice of one) as an Eigen row-major matrix. ShapeError for other ranks or layouts.
inline RowMatrixMap as_eigen(const Tensor<float>& t) {
  if (t.rank() != 2)
    fail<ShapeError>("as_eigen: expected a 2-D tensor, got shape ", t.shape().str());
  const int64_t rows = t.shape()[0], cols = t.shape()[1];
  const int64_t rs = t.strides()[0], cs = t.strides()[1];
  if ((cols > 1 && cs != 1) || (rows > 1 && rs < cols))
    fail<ShapeError>("as_eigen: a tensor of shape ", t.shape().str(), " and strides ",
                     t.strides().str(), " is not a row-major matrix; call contiguous() first");
  const int64_t outer = rows > 1 ? rs : std::max<int64_t>(cols, 1);
  return RowMatrixMap(t.data(), static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
                      Eigen::OuterStride<>(static_cast<Eigen::Index>(outer)));
}

/// Views an Eigen float matrix (Matrix, Map, Ref or Block with inner stride 1) as a 2-D tensor of
/// shape [rows, cols]. Row-major sources give strides [outer, 1]; column-major ones [1, outer],
/// a transposed view that matmul and contiguous() accept as is.
template <class M>
requires requires(M& m) {
  { m.data() } -> std::convertible_to<float*>;
  m.outerStride();
  m.innerStride();
}
Tensor<float> from_eigen(M& m) {
  if (m.innerStride() != 1)
    fail<ShapeError>("from_eigen: inner stride ", static_cast<int64_t>(m.innerStride()),
                     " is not supported (need 1)");
  const int64_t rows = m.rows(), cols = m.cols(), outer = m.outerStride();
  const Strides strides = M::IsRowMajor ? Strides{outer, 1} : Strides{1, outer};
  return Tensor<float>::wrap(m.data(), Shape{rows, cols}, strides);
}

}  // namespace scholar
