// Eigen's GEMM for the avx2 path (see gemm_eigen_impl.hpp).
#define SCHOLAR_EIGEN_GEMM_ENTRY scholar_eigen_gemm_avx2
#include "kernels/gemm_eigen_impl.hpp"
