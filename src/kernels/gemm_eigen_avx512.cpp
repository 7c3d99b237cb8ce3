// Eigen's GEMM for the avx512 path (see gemm_eigen_impl.hpp).
#define SCHOLAR_EIGEN_GEMM_ENTRY scholar_eigen_gemm_avx512
#include "kernels/gemm_eigen_impl.hpp"
