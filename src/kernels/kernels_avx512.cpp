// The kernels compiled for AVX-512 (F, BW, DQ, VL, CD) + FMA + F16C (see simd_impl.hpp).
#define SCHOLAR_KERNEL_NS avx512
#define SCHOLAR_KERNEL_ARCH xsimd::avx512bw
#define SCHOLAR_KERNEL_AVX512 1
#define SCHOLAR_KERNEL_ENTRY scholar_kernel_table_avx512
#include "kernels/simd_impl.hpp"
