// safetensors: round trips, zero-copy loads, conversions, atomic saves, and every kind of damage.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "scholar/io/safetensors.hpp"
#include "scholar/tensor/ops.hpp"
#include "scholar/tensor/random.hpp"

using namespace scholar;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("scholar_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

// A file with the given header text (length prefix added) followed by `data` bytes.
std::string craft(const std::string& name, const std::string& header, size_t data_bytes,
                  int64_t declared = -1) {
  std::string bytes;
  const uint64_t n = declared >= 0 ? static_cast<uint64_t>(declared) : header.size();
  bytes.append(reinterpret_cast<const char*>(&n), 8);
  bytes += header;
  bytes.append(data_bytes, '\0');
  const std::string path = temp_path(name);
  io::write_file_atomic(path, bytes);
  return path;
}

}  // namespace

TEST_CASE("save and load round trip every dtype with metadata", "[safetensors]") {
  Generator g(1);
  const FloatTensor w = randn({3, 5}, g);
  const Tensor<int32_t> ids = Tensor<int32_t>::from({4}, {1, -2, 3, 50000});
  const auto h = w.to<f16>();
  const auto b = w.to<bf16>();
  io::SafetensorsWriter out;
  out.add("w", w);
  out.add("w_t", w.t());  // non-contiguous: stored as its contiguous copy
  out.add("ids", ids);
  out.add("half", h);
  out.add("brain", b);
  out.add("empty", FloatTensor::zeros({0, 4}));
  out.set_metadata("format", "pt");
  const std::string path = temp_path("round.safetensors");
  out.save(path);

  const auto f = io::SafetensorsFile::open(path);
  CHECK(f.tensors().size() == 6);
  CHECK(f.tensors()[0].name == "w");
  CHECK(f.metadata().at("format") == "pt");
  CHECK(max_abs_diff(f.load<float>("w"), w) == 0.0);
  CHECK(max_abs_diff(f.load<float>("w_t"), w.t()) == 0.0);
  CHECK(f.load<int32_t>("ids").to_vector() == ids.to_vector());
  CHECK(max_abs_diff(f.load<float>("half"), h.to<float>()) == 0.0);       // F16 -> float
  CHECK(max_abs_diff(f.load<float>("brain"), b.to<float>()) == 0.0);      // BF16 -> float
  CHECK(f.load<bf16>("w").to_vector()[0].bits == b.to_vector()[0].bits);  // F32 -> bf16
  CHECK(f.load<float>("empty").shape() == Shape{0, 4});
  CHECK(f.info("ids").dtype == io::StDType::I32);
  CHECK_THROWS_WITH(f.load<int32_t>("w"), Catch::Contains("'w'") && Catch::Contains("F32"));
  CHECK_THROWS_WITH(f.info("nope"), Catch::Contains("no tensor named 'nope'"));
  CHECK(out.serialize() == io::read_file(path));
  CHECK_THROWS_AS(out.add("w", w), ValueError);
}

TEST_CASE("float tensors load as copy-on-write views of the mapping", "[safetensors]") {
  Generator g(2);
  io::SafetensorsWriter out;
  out.add("a", randn({64}, g));
  const std::string path = temp_path("zero_copy.safetensors");
  out.save(path);
  const auto f = io::SafetensorsFile::open(path);
  FloatTensor a = f.load<float>("a");
  FloatTensor again = f.load<float>("a");
  CHECK(a.data() == again.data());  // the same mapped bytes, not two copies
  CHECK(reinterpret_cast<const uint8_t*>(a.data()) == f.bytes("a").data());
  const float before = a(0);
  a(0) = 1234.0f;  // private to this process: the file is unchanged
  CHECK(io::SafetensorsFile::open(path).load<float>("a")(0) == before);
}

TEST_CASE("files read into memory (FileAccess::copy) hold the same bytes as mapped ones",
          "[safetensors]") {
  Generator g(3);
  io::SafetensorsWriter out;
  out.add("a", randn({3000}, g));  // a file of a few pages, not a multiple of the page size
  out.add("b", randn({7}, g));
  const std::string path = temp_path("copy.safetensors");
  out.save(path);
  const auto mapped = io::MappedFile::open(path);
  const auto copied = io::MappedFile::open(path, io::FileAccess::copy);
  CHECK(copied->access() == io::FileAccess::copy);
  REQUIRE(copied->size() == mapped->size());
  CHECK(std::memcmp(copied->data(), mapped->data(), mapped->size()) == 0);
  CHECK(reinterpret_cast<uintptr_t>(copied->data()) % (2u << 20) == 0);  // huge-page aligned
  const auto f = io::SafetensorsFile::open(path, io::FileAccess::copy);
  CHECK(max_abs_diff(f.load<float>("a"), io::SafetensorsFile::open(path).load<float>("a")) == 0);
  CHECK(f.load<float>("b").numel() == 7);
  // An empty file reads as empty; a missing one is an IoError naming it.
  const std::string empty = temp_path("empty.bin");
  io::write_file_atomic(empty, "");
  CHECK(io::MappedFile::open(empty, io::FileAccess::copy)->size() == 0);
  CHECK_THROWS_WITH(io::MappedFile::open(temp_path("missing.bin"), io::FileAccess::copy),
                    Catch::Contains("missing.bin"));
}

TEST_CASE("an interrupted save leaves the old file intact", "[safetensors]") {
  const std::string path = temp_path("atomic.bin");
  io::write_file_atomic(path, "old contents");
  {
    io::AtomicFile f(path);
    f.write("new, but never committed");
    CHECK(fs::exists(f.temp_path()));
  }  // destroyed without commit, as if an exception had unwound it
  CHECK(io::read_file(path) == "old contents");
  CHECK(fs::directory_iterator(fs::path(path).parent_path()) != fs::directory_iterator());
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    CHECK(e.path().string().find(".tmp-") == std::string::npos);
  CHECK_THROWS_AS(io::write_file_atomic("/nonexistent-dir/x.safetensors", "x"), IoError);
  CHECK_THROWS_AS(io::SafetensorsFile::open("/nonexistent-dir/x.safetensors"), IoError);
}

TEST_CASE("damaged files give FormatErrors that name the problem", "[safetensors]") {
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  struct Case {
    const char* name;
    std::string header;
    size_t data;
    int64_t declared;
    const char* message;
  } cases[] = {
      {"huge_len", "{}", 0, int64_t{1} << 40, "exceeds"},
      {"past_end", "{" + ok_entry + "}", 8, 5000, "past the end"},
      {"not_json", "nope", 0, -1, "JSON object"},
      {"bad_json", "{\"t\":", 0, -1, "JSON error"},
      {"unknown_dtype", R"({"t":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", 8, -1,
       "unknown dtype 'F7'"},
      {"size_mismatch", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, -1,
       "needs 12 bytes"},
      {"out_of_range", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, -1,
       "runs past the end"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, -1, "overlaps"},
      {"hole", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, -1,
       "belong to no tensor"},
      {"trailing", "{" + ok_entry + "}", 12, -1, "cover 8"},
      {"negative", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, -1, "negative"},
      {"reversed", R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, -1,
       "invalid data_offsets"},
      {"no_shape", R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8, -1, "shape"},
      {"dup", "{" + ok_entry + "," + ok_entry + "}", 8, -1, "twice"},
      {"shape_type", R"({"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8, -1,
       "expected an array"},
  };
  const std::string tiny = temp_path("tiny.safetensors");
  io::write_file_atomic(tiny, "abc");
  CHECK_THROWS_WITH(io::SafetensorsFile::open(tiny), Catch::Contains("too short"));
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string path =
        craft(std::string(c.name) + ".safetensors", c.header, c.data, c.declared);
    CHECK_THROWS_AS(io::SafetensorsFile::open(path), FormatError);
    CHECK_THROWS_WITH(io::SafetensorsFile::open(path),
                      Catch::Contains(c.message) && Catch::Contains(path));
  }
}

TEST_CASE("every truncation of a valid file is rejected cleanly", "[safetensors]") {
  Generator g(3);
  io::SafetensorsWriter out;
  out.add("a", randn({5}, g));
  out.add("b", Tensor<int32_t>::from({2}, {1, 2}));
  const std::string bytes = out.serialize();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    const std::string path = temp_path("cut.safetensors");
    io::write_file_atomic(path, bytes.substr(0, cut));
    INFO("cut at " << cut);
    CHECK_THROWS_AS(io::SafetensorsFile::open(path), FormatError);
  }
}
