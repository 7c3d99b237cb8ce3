// libFuzzer target: index files through Hnsw::load (copied and memory-mapped, with the checksum
// check off so that mutations reach the structural checks) and FlatIndex::load, then a search on
// whatever loads. Seeds: small indexes of every storage, written by LLVMFuzzerInitialize into the
// directory named by SCHOLAR_FUZZ_SEEDS (scripts/fuzz.sh sets it), so they always match the format.
#include <cstdlib>
#include <vector>

#include "fuzz_common.hpp"
#include "scholar/error.hpp"
#include "scholar/index/hnsw.hpp"

using namespace scholar;
using namespace scholar::index;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("SCHOLAR_FUZZ_SEEDS");
  if (!dir) return 0;
  const std::string d = dir;
  int i = 0;
  for (Storage st : {Storage::f32, Storage::bf16, Storage::int8}) {
    for (Space sp : {Space::l2, Space::cosine}) {
      Hnsw h(4, sp, {.M = 3, .ef_construction = 8, .storage = st, .keep_f32 = st == Storage::int8});
      FlatIndex f(4, sp);
      for (uint64_t l = 1; l <= 24; ++l) {
        std::vector<float> v{float(l % 5) + 1, float(l % 3), float(l % 7) - 2, 0.5f};
        h.add(l, v);
        if (l <= 6) f.add(l, v);
      }
      h.remove(5);
      h.save(d + "/seed" + std::to_string(i) + ".hnsw");
      f.save(d + "/seed" + std::to_string(i) + ".flat");
      ++i;
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::input_file(data, size, ".idx");
  for (bool mm : {false, true}) {
    try {
      const Hnsw h = Hnsw::load(path, {.mmap = mm, .verify_checksum = false});
      std::vector<float> q(h.dim(), 0.25f);
      (void)h.search(q, 3, 8);
      (void)h.search(q, 2, 4, [](uint64_t l) { return l % 2 == 0; });
    } catch (const Error&) {
    }
  }
  try {
    const FlatIndex f = FlatIndex::load(path);
    std::vector<float> q(f.dim(), 0.25f);
    (void)f.search(q, 3);
  } catch (const Error&) {
  }
  return 0;
}
