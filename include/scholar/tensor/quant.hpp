// scholar/tensor/quant.hpp: how weight matrices are stored, including ggml's quantized blocks.
//
// Inference keeps each weight matrix in one of five storage types, the ones GGUF files use for
// small models: f32, f16, bf16, and the block formats Q8_0 and Q4_0 of ggml/llama.cpp. A quantized
// row of n values (n a multiple of 32) is n / 32 blocks; each block holds an f16 scale d and 32
// small integers q, and stands for the values d * q. The layouts below are ggml's byte for byte, so
// weights in a GGUF file are used where they lie.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace scholar {

/// Values per quantized block.
inline constexpr int64_t kQuantBlock = 32;

/// ggml's Q8_0: 32 values q[i] * d with q in [-127, 127]; 34 bytes (8.5 bits per value).
struct BlockQ8_0 {
  uint16_t d;  ///< scale, as f16 bits
  int8_t qs[kQuantBlock];
};
static_assert(sizeof(BlockQ8_0) == 34);

/// ggml's Q4_0: 32 values (q[i] - 8) * d with q in [0, 15]; 18 bytes (4.5 bits per value). Byte j
/// holds value j in its low nibble and value j + 16 in its high nibble.
struct BlockQ4_0 {
  uint16_t d;  ///< scale, as f16 bits
  uint8_t qs[kQuantBlock / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

/// Eight rows' Q8_0 blocks at the same position, interleaved for the products (kernels
/// gemm_q8_0_x8): d[r] is row r's scale and qs[32 c + 4 r + j] its value 4 c + j, so one 32-byte
/// load holds four consecutive values of each of the eight rows. Same size as eight BlockQ8_0.
struct BlockQ8_0x8 {
  uint16_t d[8];
  int8_t qs[8 * kQuantBlock];
};
static_assert(sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0));

/// Eight rows' Q4_0 blocks interleaved the same way: qs[32 c + 4 r + j] is byte 4 c + j of row r's
/// block, whose low nibble is value 4 c + j and high nibble value 16 + 4 c + j.
struct BlockQ4_0x8 {
  uint16_t d[8];
  uint8_t qs[4 * kQuantBlock];
};
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0));

/// Interleaves a matrix of `rows` (a multiple of 8) rows of n values into groups of eight rows:
/// out[g * (n / 32) + b] holds block b of rows 8 g .. 8 g + 7.
inline void repack_x8(BlockQ8_0x8* out, const BlockQ8_0* in, size_t rows, size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < nb; ++b) {
      BlockQ8_0x8& o = out[g * nb + b];
      for (size_t r = 0; r < 8; ++r) {
        const BlockQ8_0& x = in[(8 * g + r) * nb + b];
        o.d[r] = x.d;
        for (size_t c = 0; c < 8; ++c)
          for (size_t j = 0; j < 4; ++j) o.qs[32 * c + 4 * r + j] = x.qs[4 * c + j];
      }
    }
}
inline void repack_x8(BlockQ4_0x8* out, const BlockQ4_0* in, size_t rows, size_t n) {
  const size_t nb = n / kQuantBlock;
  for (size_t g = 0; g < rows / 8; ++g)
    for (size_t b = 0; b < nb; ++b) {
      BlockQ4_0x8& o = out[g * nb + b];
      for (size_t r = 0; r < 8; ++r) {
        const BlockQ4_0& x = in[(8 * g + r) * nb + b];
        o.d[r] = x.d;
        for (size_t c = 0; c < 4; ++c)
          for (size_t j = 0; j < 4; ++j) o.qs[32 * c + 4 * r + j] = x.qs[4 * c + j];
      }
    }
}

/// How a weight matrix stores its values. The numbers are ggml's type ids (as written in GGUF).
enum class WeightType : uint8_t { f32 = 0, f16 = 1, q4_0 = 2, q8_0 = 8, bf16 = 30 };

/// "f32", "f16", "bf16", "q8_0" or "q4_0".
constexpr std::string_view weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::f32:
      return "f32";
    case WeightType::f16:
      return "f16";
    case WeightType::bf16:
      return "bf16";
    case WeightType::q8_0:
      return "q8_0";
    case WeightType::q4_0:
      return "q4_0";
  }
  return "?";
}

/// True for the block formats (rows must be a multiple of kQuantBlock values long).
constexpr bool is_quantized(WeightType t) {
  return t == WeightType::q8_0 || t == WeightType::q4_0;
}

/// Bytes of one row of n values (n a multiple of kQuantBlock for the block formats).
constexpr size_t row_bytes(WeightType t, int64_t n) {
  const auto u = static_cast<size_t>(n);
  switch (t) {
    case WeightType::f32:
      return 4 * u;
    case WeightType::f16:
    case WeightType::bf16:
      return 2 * u;
    case WeightType::q8_0:
      return u / kQuantBlock * sizeof(BlockQ8_0);
    case WeightType::q4_0:
      return u / kQuantBlock * sizeof(BlockQ4_0);
  }
  return 0;
}

}  // namespace scholar
