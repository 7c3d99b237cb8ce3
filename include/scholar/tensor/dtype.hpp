// scholar/tensor/dtype.hpp: element types.
//
// float is the compute type. bf16 and f16 are storage types: 16-bit patterns with exact conversion
// to float, and round-to-nearest-even (ties to even, NaN stays NaN, overflow goes to infinity) from
// float. int32_t holds token ids. DType names them at run time (file formats, printing).
#pragma once

#include <bit>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace scholar {

/// bfloat16: the top 16 bits of an IEEE-754 binary32 (8 exponent bits, 7 mantissa bits).
struct bf16 {
  uint16_t bits = 0;

  constexpr bf16() = default;
  /// Rounds to nearest, ties to even; NaN becomes a quiet NaN with the same sign.
  constexpr explicit bf16(float f) : bits(from_float(f)) {}
  /// Exact.
  constexpr explicit operator float() const { return std::bit_cast<float>(uint32_t{bits} << 16); }

  static constexpr bf16 from_bits(uint16_t b) {
    bf16 r;
    r.bits = b;
    return r;
  }
  static constexpr uint16_t from_float(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
    // Adding 0x7fff plus the lowest kept bit rounds to nearest and breaks ties towards even.
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  friend constexpr bool operator==(bf16 a, bf16 b) { return a.bits == b.bits; }
};

/// IEEE-754 binary16 (5 exponent bits, 10 mantissa bits), including subnormals.
struct f16 {
  uint16_t bits = 0;

  constexpr f16() = default;
  /// Rounds to nearest, ties to even; values beyond 65504 (after rounding) become infinity.
  constexpr explicit f16(float f) : bits(from_float(f)) {}
  /// Exact.
  constexpr explicit operator float() const { return to_float(bits); }

  static constexpr f16 from_bits(uint16_t b) {
    f16 r;
    r.bits = b;
    return r;
  }
  static constexpr uint16_t from_float(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
      return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
    if (a >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);     // >= 65536 or inf
    if (a < 0x38800000u) {
      // Subnormal half (or zero): the result is round(|f| / 2^-24) ulps of 2^-24.
      const int shift = 126 - static_cast<int>(a >> 23);   // 14 + (113 - exponent)
      if (shift > 24) return static_cast<uint16_t>(sign);  // below half of the smallest subnormal
      const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
      const uint32_t q = mant >> shift;
      const uint32_t rem = mant & ((1u << shift) - 1u);
      const uint32_t half = 1u << (shift - 1);
      const uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
      return static_cast<uint16_t>(sign | r);
    }
    // Normal: rebias the exponent (127 -> 15) and round 23 mantissa bits to 10. A carry out of the
    // mantissa correctly bumps the exponent, up to infinity.
    const uint32_t rebased = a - (112u << 23);
    const uint32_t r = (rebased + 0x0fffu + ((rebased >> 13) & 1u)) >> 13;
    return static_cast<uint16_t>(sign | r);
  }
  static constexpr float to_float(uint16_t h) {
    const uint32_t sign = uint32_t{h & 0x8000u} << 16;
    const uint32_t e = (h >> 10) & 0x1fu;
    const uint32_t m = h & 0x3ffu;
    if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));  // inf / NaN
    if (e != 0) return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
    if (m == 0) return std::bit_cast<float>(sign);
    // Subnormal: value m * 2^-24, exact in float.
    const float v = static_cast<float>(m) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  friend constexpr bool operator==(f16 a, f16 b) { return a.bits == b.bits; }
};

/// Run-time element type tags (file formats use these names).
enum class DType : uint8_t { f32, bf16, f16, i32 };

/// "f32", "bf16", "f16" or "i32".
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::bf16:
      return "bf16";
    case DType::f16:
      return "f16";
    case DType::i32:
      return "i32";
  }
  return "?";
}

/// Size of one element in bytes.
constexpr int dtype_size(DType t) {
  return t == DType::bf16 || t == DType::f16 ? 2 : 4;
}

/// The element types a Tensor<T> may hold.
template <class T>
concept Element = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16> ||
    std::is_same_v<T, int32_t>;

/// DType of a C++ element type.
template <Element T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, bf16>)
    return DType::bf16;
  else if constexpr (std::is_same_v<T, f16>)
    return DType::f16;
  else
    return DType::i32;
}

}  // namespace scholar
