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
#include <iterator>
#include <optional>
#include <string_view>

#include "scholar/tensor/dtype.hpp"

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

/// Everything scholar knows about one weight type that is not a kernel: one row per type, as ggml's
/// type_traits. Readers and writers of every format take their facts from here, so adding a type
/// (Q4_K, say) is one row below, one row of kernels (kernels::WeightKernels) and its kernels.
struct WeightTypeInfo {
  WeightType type;
  std::string_view name;              ///< scholar's name: "q8_0"
  std::string_view ggml_name;         ///< ggml's name: "Q8_0"
  int64_t block_values;               ///< values per block (1 for the plain types)
  size_t block_bytes;                 ///< bytes per block
  bool quantized;                     ///< a block format (rows a multiple of block_values)
  bool plain;                         ///< one element per value: `element` says which
  DType element;                      ///< the element type of a plain type
  std::string_view safetensors_name;  ///< the safetensors dtype ("F16"), empty if it has none
  int32_t gguf_file_type;             ///< llama.cpp's general.file_type when all weights are this
};

/// The table, one row per WeightType (their order is the dense index weight_type_index gives).
inline constexpr WeightTypeInfo kWeightTypes[] = {
    {WeightType::f32, "f32", "F32", 1, 4, false, true, DType::f32, "F32", 0},
    {WeightType::f16, "f16", "F16", 1, 2, false, true, DType::f16, "F16", 1},
    {WeightType::bf16, "bf16", "BF16", 1, 2, false, true, DType::bf16, "BF16", 32},
    {WeightType::q8_0, "q8_0", "Q8_0", kQuantBlock, sizeof(BlockQ8_0), true, false, DType::f32, "",
     7},
    {WeightType::q4_0, "q4_0", "Q4_0", kQuantBlock, sizeof(BlockQ4_0), true, false, DType::f32, "",
     2},
};
/// Number of weight types.
inline constexpr int kWeightTypeCount = static_cast<int>(std::size(kWeightTypes));

/// The row of kWeightTypes that describes t (its dense index, 0 .. kWeightTypeCount - 1).
constexpr int weight_type_index(WeightType t) {
  int i = 0;  // (every WeightType has a row: the search always ends on its own)
  while (i + 1 < kWeightTypeCount && kWeightTypes[i].type != t) ++i;
  return i;
}

/// The facts about t.
constexpr const WeightTypeInfo& weight_type_info(WeightType t) {
  return kWeightTypes[weight_type_index(t)];
}

/// The weight type with ggml type id `id`, or nullopt if scholar cannot use it.
constexpr std::optional<WeightType> weight_type_from_ggml(uint32_t id) {
  for (const auto& row : kWeightTypes)
    if (static_cast<uint32_t>(row.type) == id) return row.type;
  return std::nullopt;
}

/// The weight type scholar calls `name` ("q8_0"; ggml's upper-case names are accepted too), or
/// nullopt.
std::optional<WeightType> parse_weight_type(std::string_view name);

/// The plain weight type of a safetensors dtype name ("F32", "F16", "BF16"), or nullopt.
constexpr std::optional<WeightType> weight_type_from_safetensors(std::string_view dtype) {
  for (const auto& row : kWeightTypes)
    if (!row.safetensors_name.empty() && row.safetensors_name == dtype) return row.type;
  return std::nullopt;
}

/// "f32", "f16", "bf16", "q8_0" or "q4_0".
constexpr std::string_view weight_type_name(WeightType t) {
  return weight_type_info(t).name;
}

/// True for the block formats (rows must be a multiple of their block length).
constexpr bool is_quantized(WeightType t) {
  return weight_type_info(t).quantized;
}

/// Bytes of one row of n values (n a multiple of the block length for the block formats).
constexpr size_t row_bytes(WeightType t, int64_t n) {
  const WeightTypeInfo& i = weight_type_info(t);
  return static_cast<size_t>(n / i.block_values) * i.block_bytes;
}

}  // namespace scholar
