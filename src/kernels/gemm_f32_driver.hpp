// The BLIS loop nest of scholar's own f32 GEMMs (gemm_f32_avx512.cpp, gemm_f32_avx2.cpp), and the
// per-thread packing buffers that every own GEMM keeps. ISA-neutral: each engine's translation unit
// includes it and instantiates the driver with its own packers and micro-kernel, compiled with its
// own flags (anonymous namespace: one private copy per isolated object).
//
// The structure is BLIS's (Van Zee and van de Geijn, "BLIS: A Framework for Rapidly Instantiating
// BLAS Functionality", 2015): op(B) is packed one KC x NC block at a time into NR-column
// micro-panels that stay in L2, op(A) into MR-row micro-panels, and the loop over B's micro-panels
// runs innermost, so one A micro-panel stays in L1 while B streams from L2 past it. Unlike BLIS,
// op(A) is packed for up to kF32MaxPackedA values at once (all of a 1,024-row product's rows for
// one K block) and reused by every column block. Packing it again for each block of NC columns
// read its unpacked rows from memory once per block: 1,024-row products with N = 3,072 ran 1-6%
// slower that way on the Sapphire Rapids host.
//   A panel: [p * MR + i] = op(A)(i, p)
//   B panel: [p * NR + j] = op(B)(p, j)
// Every element of C is the sum, over K in equal blocks of at most kOwnGemmDepth, of each block's
// products accumulated in order with fused multiply-adds from zero, then scaled by alpha and added
// to C (ref::gemm_f32 is the same arithmetic in scalar code).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "core/memory.hpp"
#include "scholar/kernels/reference.hpp"

namespace {

// n values of T and 64 bytes of slack past their end, for whole-vector stores that overrun a
// panel's last row (gemm_f32_avx2.cpp): from scholar's large-block allocator, so that buffers of
// 2 MiB and more sit in huge pages wherever the OS offers them (src/core/memory.cpp). They are
// allocated once per thread and used by every product, so their first touch costs little.
template <class T>
T* allocate_pack(int64_t n) {
  return static_cast<T*>(
      scholar::detail::allocate_large(sizeof(T) * static_cast<size_t>(n) + 64, true));
}
template <class T>
void free_pack(T* p, int64_t n) {
  scholar::detail::free_large(p, sizeof(T) * static_cast<size_t>(n) + 64, true);
}

// The packing buffers of one thread: a_count and b_count values of T (allocate_pack), allocated
// once (each GEMM keeps one set per thread, thread_local).
template <class T, int64_t a_count, int64_t b_count>
struct PackBuffers {
  T* a = allocate_pack<T>(a_count);
  T* b = allocate_pack<T>(b_count);
  PackBuffers() = default;
  ~PackBuffers() {
    free_pack(a, a_count);
    free_pack(b, b_count);
  }
  PackBuffers(const PackBuffers&) = delete;
  PackBuffers& operator=(const PackBuffers&) = delete;
};

// A buffer of T (allocate_pack) that grows on demand and keeps its largest size (one per thread:
// thread_local).
template <class T>
class GrowBuffer {
 public:
  GrowBuffer() = default;
  ~GrowBuffer() { release(); }
  GrowBuffer(const GrowBuffer&) = delete;
  GrowBuffer& operator=(const GrowBuffer&) = delete;
  // At least n values; earlier contents are not kept.
  T* get(int64_t n) {
    if (n > size_) {
      release();
      data_ = allocate_pack<T>(n);
      size_ = n;
    }
    return data_;
  }

 private:
  void release() {
    if (data_ != nullptr) free_pack(data_, size_);
    data_ = nullptr, size_ = 0;
  }
  T* data_ = nullptr;
  int64_t size_ = 0;
};

constexpr int64_t kF32KC = scholar::kernels::ref::kOwnGemmDepth;  // depth of a packed block
// Values of op(A) packed at once, at most (4 MiB per thread, kept for the thread's life).
constexpr int64_t kF32MaxPackedA = int64_t{1} << 20;
constexpr int64_t kF32MaxNC = 1536;  // columns of op(B) per packed block, at most (2.25 MiB)
constexpr int64_t kF32MinNC = 256;   // ... and at least

// Columns of op(B) per packed block, a multiple of nr: the KC x NC block fills about 55% of this
// core's L2, leaving room for C and the A block's stream (2 MiB L2: 736 columns).
inline int64_t f32_block_columns(int64_t nr) {
  static const int64_t bytes = [] {
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l2 <= 0) l2 = 1 << 20;  // unknown (some virtual machines): assume 1 MiB
    return static_cast<int64_t>(0.55 * static_cast<double>(l2));
  }();
  const int64_t cols = bytes / (kF32KC * static_cast<int64_t>(sizeof(float)));
  return std::clamp<int64_t>(cols / nr * nr, kF32MinNC, kF32MaxNC);
}

// The packing buffers of one thread, shared by every engine of the translation unit: a block of
// op(B) and op(A)'s packed rows (which grow to at most kF32MaxPackedA values).
struct F32PackState {
  PackBuffers<float, 0, kF32MaxNC * kF32KC> buf;
  GrowBuffer<float> packed_a;
};
inline F32PackState& f32_pack_state() {
  static thread_local F32PackState state;
  return state;
}

// Packs `rows` rows whose k runs contiguously (element (r, k) = src[r * ld + k]) into consecutive
// R-row micro-panels of kc * R values, the last zero-padded: the engine's pack_k_panels where it
// has one, else its pack_k_contiguous a panel at a time.
template <class Engine>
void pack_k_panels(float* dst, const float* src, int64_t ld, int64_t R, int64_t rows, int64_t kc) {
  if constexpr (requires { Engine::pack_k_panels(dst, src, ld, R, rows, kc); }) {
    Engine::pack_k_panels(dst, src, ld, R, rows, kc);
  } else {
    for (int64_t r = 0; r < rows; r += R)
      Engine::pack_k_contiguous(dst + (r / R) * kc * R, src + r * ld, ld, R, std::min(R, rows - r),
                                kc);
  }
}

// C = alpha op(A) op(B) + beta C (M, N >= 1; K = 0 handled by the caller). Engine provides:
//   MR, NR, MC (a multiple of MR): the micro-tile and the rows of op(A) packed in one pass;
//   pack_k_contiguous(dst, src, ld, R, rows, kc): R-row micro-panel, element (r, k) = src[r * ld
//     + k] (rows beyond `rows` zero) into dst[k * R + r]; or pack_k_panels (see above), which packs
//     several;
//   pack_rows(dst, src, ld, R, cols, kc): element (k, c) = src[k * ld + c] into R-column
//     micro-panels dst[(c / R) * kc * R + k * R + c % R] (the last one zero-padded);
//   micro_kernel(kc, a, b, C, ldc, m, n, alpha, beta, first): the m x n tile (m <= MR, n <= NR)
//     = alpha * a . b + (first ? beta * C : C).
template <class Engine>
void f32_gemm_driver(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr int64_t MR = Engine::MR, NR = Engine::NR, MC = Engine::MC;
  static_assert(MC % MR == 0 && kF32MaxNC % NR == 0);
  F32PackState& state = f32_pack_state();
  auto& buf = state.buf;
  auto& packed_a = state.packed_a;
  // N in blocks of about f32_block_columns(), as equal as whole panels allow (N = 768 would
  // otherwise be 736 + 32).
  const int64_t bc = f32_block_columns(NR);
  const int64_t nblocks = std::max<int64_t>(1, (N + bc / 2) / bc);
  const int64_t NC = std::min(kF32MaxNC, ((N + nblocks - 1) / nblocks + NR - 1) / NR * NR);
  // K in equal blocks of at most KC.
  const int64_t kblocks = (K + kF32KC - 1) / kF32KC;
  const int64_t kstep = (K + kblocks - 1) / kblocks;
  // M in chunks of whole micro-panels whose packed K block holds at most kF32MaxPackedA values.
  const int64_t MH = std::max(MC, kF32MaxPackedA / kstep / MR * MR);
  float* const pa = packed_a.get(((std::min(MH, M) + MR - 1) / MR) * MR * kstep);
  for (int64_t i0 = 0; i0 < M; i0 += MH) {
    const int64_t mh = std::min(MH, M - i0);
    for (int64_t pc = 0; pc < K; pc += kstep) {
      const int64_t kc = std::min(kstep, K - pc);
      const bool first = pc == 0;
      // op(A)(i, k) is A[i * lda + k], or A[k * lda + i] when transposed; MC rows per pass.
      for (int64_t ic = 0; ic < mh; ic += MC) {
        const int64_t mc = std::min(MC, mh - ic);
        float* dst = pa + (ic / MR) * kc * MR;
        if (ta) {
          Engine::pack_rows(dst, A + pc * lda + i0 + ic, lda, MR, mc, kc);
        } else {
          pack_k_panels<Engine>(dst, A + (i0 + ic) * lda + pc, lda, MR, mc, kc);
        }
      }
      for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min(NC, N - jc);
        // op(B)(k, j) is B[k * ldb + j], or B[j * ldb + k] when transposed.
        if (tb) {
          pack_k_panels<Engine>(buf.b, B + jc * ldb + pc, ldb, NR, nc, kc);
        } else {
          Engine::pack_rows(buf.b, B + pc * ldb + jc, ldb, NR, nc, kc);
        }
        // Each A micro-panel is prefetched while the one before it runs, its lines spread over
        // that row of tiles (1-3% on 1,024-row products; prefetching into L2 only gained less).
        const int64_t panel_lines = (kc * MR * 4 + 63) / 64;
        const int64_t calls = (nc + NR - 1) / NR;
        const int64_t per_call = (panel_lines + calls - 1) / calls;
        for (int64_t ir = 0; ir < mh; ir += MR) {
          const char* next = reinterpret_cast<const char*>(pa + (ir / MR + 1) * kc * MR);
          int64_t line = 0;
          for (int64_t jr = 0; jr < nc; jr += NR) {
            if (ir + MR < mh)
              for (int64_t e = std::min(panel_lines, line + per_call); line < e; ++line)
                __builtin_prefetch(next + line * 64, 0, 3);
            Engine::micro_kernel(kc, pa + (ir / MR) * kc * MR, buf.b + (jr / NR) * kc * NR,
                                 C + (i0 + ir) * ldc + jc + jr, ldc, std::min(MR, mh - ir),
                                 std::min(NR, nc - jr), alpha, beta, first);
          }
        }
      }
    }
  }
}

// C = beta C for a product with K = 0 (beta = 0 ignores C's contents, as everywhere).
inline void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
}

}  // namespace
