// libFuzzer target: safetensors files through the reader (every tensor loaded as float) and the
// checkpoint loader. Seeds: the .safetensors files under tests/data.
#include "fuzz_common.hpp"
#include "scholar/error.hpp"
#include "scholar/infer/model.hpp"
#include "scholar/io/safetensors.hpp"

using namespace scholar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::input_file(data, size, ".safetensors");
  try {
    const auto f = io::SafetensorsFile::open(path);
    for (const auto& t : f.tensors()) {
      try {
        (void)f.load<float>(t.name);
      } catch (const FormatError&) {  // e.g. an integer tensor read as float
      }
    }
  } catch (const Error&) {
    return 0;
  }
  try {
    (void)infer::Model::from_checkpoint(path);
  } catch (const Error&) {
  }
  return 0;
}
