// Eigen's GEMM for the scalar path (see gemm_eigen_impl.hpp).
#define SCHOLAR_EIGEN_GEMM_ENTRY scholar_eigen_gemm_scalar
#include "kernels/gemm_eigen_impl.hpp"
