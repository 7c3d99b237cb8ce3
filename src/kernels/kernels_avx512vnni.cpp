// The kernels compiled for AVX-512 (see kernels_avx512.cpp) plus AVX512_VNNI, which the quantized
// products use (vpdpbusd); everything else is the same code as the AVX-512 table.
#define SCHOLAR_KERNEL_NS avx512vnni
#define SCHOLAR_KERNEL_ARCH xsimd::avx512bw
#define SCHOLAR_KERNEL_AVX512 1
#define SCHOLAR_KERNEL_VNNI 1
#define SCHOLAR_KERNEL_ENTRY scholar_kernel_table_avx512vnni
#include "kernels/simd_impl.hpp"
