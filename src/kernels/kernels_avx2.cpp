// The kernels compiled for AVX2 + FMA + F16C (see simd_impl.hpp).
#define SCHOLAR_KERNEL_NS avx2
#define SCHOLAR_KERNEL_ARCH xsimd::fma3<xsimd::avx2>
#define SCHOLAR_KERNEL_AVX512 0
#define SCHOLAR_KERNEL_ENTRY scholar_kernel_table_avx2
#include "kernels/simd_impl.hpp"
