// Eigen's matrix product on row-major operands, compiled once per instruction set: a translation
// unit defines SCHOLAR_EIGEN_GEMM_ENTRY and includes this file.
#include <Eigen/Core>
#include <cstdint>

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutMap = Eigen::Map<RowMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class OpA, class OpB>
void product(MutMap& c, const OpA& a, const OpB& b, float alpha, float beta) {
  if (beta == 0.0f) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

}  // namespace

extern "C" void SCHOLAR_EIGEN_GEMM_ENTRY(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                         float alpha, const float* A, int64_t lda, const float* B,
                                         int64_t ldb, float beta, float* C, int64_t ldc) {
  MutMap c(C, M, N, Eigen::OuterStride<>(ldc));
  const ConstMap a(A, ta ? K : M, ta ? M : K, Eigen::OuterStride<>(lda));
  const ConstMap b(B, tb ? N : K, tb ? K : N, Eigen::OuterStride<>(ldb));
  if (!ta && !tb)
    product(c, a, b, alpha, beta);
  else if (ta && !tb)
    product(c, a.transpose(), b, alpha, beta);
  else if (!ta && tb)
    product(c, a, b.transpose(), alpha, beta);
  else
    product(c, a.transpose(), b.transpose(), alpha, beta);
}
