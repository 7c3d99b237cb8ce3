// GGUF: every value type and storage type against gguf-py's file, byte-identical rewrite, and
// every kind of damage (truncation at each length, bad magic/version/counts/types/offsets).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <random>

#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/io/safetensors.hpp"
#include "scholar/kernels/kernels.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(SCHOLAR_TEST_DATA) + "/gguf/tiny_types.gguf";

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("scholar_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  const std::string p = temp_path(name);
  io::write_file_atomic(p, bytes);
  return p;
}

std::vector<float> to_float(const io::GgufFile& f, const std::string& name) {
  const auto& t = f.info(name);
  const auto raw = f.bytes(name);
  const size_t n = static_cast<size_t>(t.shape.numel());
  std::vector<float> out(n);
  const auto& k = kernels::active();
  switch (t.type) {
    case WeightType::f32:
      std::memcpy(out.data(), raw.data(), 4 * n);
      break;
    case WeightType::f16:
      k.f16_to_f32(out.data(), reinterpret_cast<const uint16_t*>(raw.data()), n);
      break;
    case WeightType::bf16:
      k.bf16_to_f32(out.data(), reinterpret_cast<const uint16_t*>(raw.data()), n);
      break;
    case WeightType::q8_0:
      k.dequantize_q8_0(out.data(), reinterpret_cast<const BlockQ8_0*>(raw.data()), n);
      break;
    case WeightType::q4_0:
      k.dequantize_q4_0(out.data(), reinterpret_cast<const BlockQ4_0*>(raw.data()), n);
      break;
  }
  return out;
}

// Offset of the first byte after the key-value section and tensor infos (recomputed by scanning
// for a tensor name, which is enough for crafting damage below).
size_t find(const std::string& bytes, const std::string& what) {
  const size_t p = bytes.find(what);
  REQUIRE(p != std::string::npos);
  return p;
}

}  // namespace

TEST_CASE("GGUF metadata of every type reads as gguf-py wrote it", "[io][gguf]") {
  const auto f = io::GgufFile::open(kTiny);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.get("general.architecture").as_string() == "llama");
  CHECK(f.get("test.u8").as_int() == 200);
  CHECK(f.get("test.u8").type() == io::GgufType::u8);
  CHECK(f.get("test.i8").as_int() == -100);
  CHECK(f.get("test.u16").as_int() == 60000);
  CHECK(f.get("test.i16").as_int() == -30000);
  CHECK(f.get("test.u32").as_int() == 4000000000);
  CHECK(f.get("test.i32").as_int() == -2000000000);
  CHECK(f.get("test.f32").as_double() == static_cast<double>(0.1f));
  CHECK(f.get("test.u64").as_int() == (int64_t{1} << 40));
  CHECK(f.get("test.i64").as_int() == -(int64_t{1} << 40));
  CHECK(f.get("test.f64").as_double() == 0.1);
  CHECK(f.get("test.bool").as_bool());
  CHECK(f.get("test.string").as_string() == "h\xc3\xa9llo");
  CHECK(f.get("test.strings").as_strings() == std::vector<std::string>{"a", "", "\xe2\x98\x83"});
  CHECK(f.get("test.ints").as_ints() == std::vector<int64_t>{1, -2, 3});
  CHECK(f.get("test.floats").as_floats() == std::vector<float>{0.5f, -1.5f});
  // Arrays element by element, in place, and as stored.
  const auto& strings = f.get("test.strings");
  CHECK(strings.is_array());
  CHECK(strings.array_size() == 3);
  CHECK(strings.string_at(2) == "\xe2\x98\x83");
  CHECK(strings.at(0).as_string() == "a");
  CHECK(strings.to_string() == "string[3] [\"a\", \"\", \"\xe2\x98\x83\"]");
  CHECK_THROWS_AS(strings.string_at(3, "test.strings"), IndexError);
  CHECK_THROWS_WITH(strings.as_ints("test.strings"), Catch::Contains("test.strings"));
  const auto& ints = f.get("test.ints");
  CHECK(ints.at(1).as_int() == -2);
  CHECK(ints.array_bytes().size() == 3 * 4);  // gguf-py wrote int32 elements
  CHECK_THROWS_AS(ints.string_at(0), FormatError);
  CHECK_THROWS_AS(f.get("test.u8").array_size("test.u8"), FormatError);
  CHECK(f.get("test.floats").at(1).as_double() == -1.5);
  CHECK_THROWS_AS(f.get("test.string").as_int("test.string"), FormatError);
  CHECK_THROWS_WITH(f.get("no.such.key"), Catch::Contains("no.such.key"));
  CHECK(f.find("no.such.key") == nullptr);
}

TEST_CASE("GGUF tensors of every storage type hold gguf-py's values", "[io][gguf]") {
  const auto f = io::GgufFile::open(kTiny);
  const auto want =
      io::SafetensorsFile::open(std::string(SCHOLAR_TEST_DATA) + "/gguf/tiny_types.safetensors");
  CHECK(f.tensors().size() == 6);
  CHECK(f.info("t.f32").shape == Shape{3, 5});
  CHECK(f.info("t.q4_0").shape == Shape{3, 64});
  CHECK(f.info("t.q4_0").type == WeightType::q4_0);
  CHECK(f.info("t.bf16").type == WeightType::bf16);
  CHECK(f.info("t.vec").shape == Shape{9});
  for (const auto& t : f.tensors()) {
    INFO(t.name);
    const auto w = want.load<float>(t.name);
    const auto got = to_float(f, t.name);
    REQUIRE(static_cast<int64_t>(got.size()) == w.numel());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == w.data()[i]);
  }
  CHECK_THROWS_WITH(f.info("t.nope"), Catch::Contains("t.nope") && Catch::Contains("missing"));
}

TEST_CASE("GgufWriter rewrites gguf-py's file byte for byte", "[io][gguf]") {
  const auto f = io::GgufFile::open(kTiny);
  io::GgufWriter w;
  for (const auto& k : f.keys()) w.set(k, f.get(k));
  for (const auto& t : f.tensors()) {
    const auto b = f.bytes(t.name);
    w.add_tensor(t.name, t.type, t.shape, b.data(), b.size());
  }
  const std::string out = temp_path("rewrite.gguf");
  w.save(out);
  CHECK(io::read_file(out) == io::read_file(kTiny));
  const auto g = io::GgufFile::open(out);
  CHECK(g.get("test.u64").as_int() == (int64_t{1} << 40));

  io::GgufWriter bad;
  std::vector<uint8_t> data(34);
  CHECK_THROWS_AS(bad.add_tensor("x", WeightType::q8_0, Shape{1, 31}, data.data(), 34), ValueError);
  CHECK_THROWS_AS(bad.add_tensor("x", WeightType::q8_0, Shape{1, 32}, data.data(), 33), ValueError);
  bad.add_tensor("x", WeightType::q8_0, Shape{1, 32}, data.data(), 34);
  CHECK_THROWS_AS(bad.add_tensor("x", WeightType::q8_0, Shape{1, 32}, data.data(), 34), ValueError);
  CHECK_THROWS_AS(io::GgufValue::integer(io::GgufType::u8, 256), ValueError);
}

TEST_CASE("GGUF truncated at every length is a FormatError", "[io][gguf]") {
  const std::string bytes = io::read_file(kTiny);
  // The file ends with padding after the last tensor; cutting only padding is harmless.
  const auto f = io::GgufFile::open(kTiny);
  size_t end = 0;
  for (const auto& t : f.tensors()) {
    const auto b = f.bytes(t.name);
    end = std::max(end, static_cast<size_t>(b.data() + b.size() - f.mapping()->data()));
  }
  REQUIRE(end > bytes.size() - 32);
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("truncated to " << n << " bytes");
    const std::string p = write_bytes("trunc.gguf", bytes.substr(0, n));
    if (n < end)
      CHECK_THROWS_AS(io::GgufFile::open(p), FormatError);
    else
      CHECK_NOTHROW(io::GgufFile::open(p));
  }
}

TEST_CASE("GGUF damage: magic, version, counts, types, offsets", "[io][gguf]") {
  const std::string good = io::read_file(kTiny);
  auto open_with = [&](std::string bytes) {
    return io::GgufFile::open(write_bytes("bad.gguf", bytes));
  };
  auto put32 = [](std::string& s, size_t at, uint32_t v) { std::memcpy(&s[at], &v, 4); };
  auto put64 = [](std::string& s, size_t at, uint64_t v) { std::memcpy(&s[at], &v, 8); };
  {
    std::string s = good;
    s[0] = 'X';
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("bad magic"));
  }
  {
    std::string s = good;
    put32(s, 4, 4);
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("version 4"));
  }
  {
    std::string s = good;
    put64(s, 8, uint64_t{1} << 60);  // tensor count
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("tensor count"));
  }
  {
    std::string s = good;
    put64(s, 16, uint64_t{1} << 60);  // metadata count
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("metadata count"));
  }
  {
    // A string length far past the end.
    std::string s = good;
    put64(s, 24, uint64_t{1} << 40);
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("implausible"));
  }
  {
    // The strings array claims 2^40 elements.
    std::string s = good;
    const size_t at = find(s, "test.strings") + 12 + 4 + 4;
    put64(s, at, uint64_t{1} << 40);
    CHECK_THROWS_WITH(open_with(s),
                      Catch::Contains("test.strings") && Catch::Contains("past the end"));
  }
  // Tensor infos: name (8 + len), n_dims 4, dims 8 each, type 4, offset 8.
  const size_t q8 = find(good, "t.q8_0") + 6;  // after the name
  {
    std::string s = good;
    put32(s, q8 + 4 + 16, 12);  // Q4_K
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("t.q8_0") && Catch::Contains("Q4_K"));
  }
  {
    std::string s = good;
    put32(s, q8 + 4 + 16, 99);
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("unknown type 99"));
  }
  {
    std::string s = good;
    put32(s, q8, 7);  // seven dimensions
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("7 dimensions"));
  }
  {
    std::string s = good;
    put64(s, q8 + 4, 33);  // rows of 33 values in Q8_0
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("whole number"));
  }
  {
    std::string s = good;
    put64(s, q8 + 4, uint64_t{1} << 62);  // overflowing size
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("out of range"));
  }
  {
    std::string s = good;
    uint64_t off;
    std::memcpy(&off, &s[q8 + 4 + 16 + 4], 8);
    put64(s, q8 + 4 + 16 + 4, off + 1);
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("alignment"));
    put64(s, q8 + 4 + 16 + 4, off + 32 * 1000);
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("t.q8_0") && Catch::Contains("past the end"));
    put64(s, q8 + 4 + 16 + 4, 0);  // on top of t.f32
    CHECK_THROWS_WITH(open_with(s), Catch::Contains("overlap"));
  }
}

TEST_CASE("GGUF with random byte damage never crashes", "[io][gguf]") {
  const std::string good = io::read_file(kTiny);
  std::mt19937 rng(5);
  int rejected = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string s = good;
    const int flips = 1 + trial % 4;
    for (int i = 0; i < flips; ++i) {
      // Bias damage towards the header, where the structure is.
      const size_t at = rng() % (trial % 2 ? s.size() : 700);
      s[at] = static_cast<char>(rng());
    }
    try {
      const auto f = io::GgufFile::open(write_bytes("fuzz.gguf", s));
      for (const auto& t : f.tensors()) (void)to_float(f, t.name);
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  CHECK(rejected > 50);
}
