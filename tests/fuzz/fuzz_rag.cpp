// libFuzzer target for the retrieval side: the input as a BM25 index file (Bm25Index::load, then a
// search), and as text for everything that reads text: WordPiece (normalization, NFD, lowercase,
// greedy matching, special tokens), the splitter (by characters), the BM25 analyzer, gzip, and
// dictd's index numbers. Seeds: small BM25 indexes written by LLVMFuzzerInitialize into
// SCHOLAR_FUZZ_SEEDS (scripts/fuzz.sh sets it), plus tests/data's WordPiece and BM25 fixtures.
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "scholar/error.hpp"
#include "scholar/rag/bm25.hpp"
#include "scholar/rag/loader.hpp"
#include "scholar/rag/splitter.hpp"
#include "scholar/text/wordpiece.hpp"

using namespace scholar;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("SCHOLAR_FUZZ_SEEDS");
  if (!dir) return 0;
  rag::Bm25Index idx;
  idx.add(1, "A kludge is a clumsy but working fix.");
  idx.add(2, "Cruft: excess code. 東京の天気。");
  idx.add(7, "daemon daemon daemon");
  idx.remove(2);
  idx.save(std::string(dir) + "/seed.bm25");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::input_file(data, size, ".bm25");
  try {
    const rag::Bm25Index idx = rag::Bm25Index::load(path);
    (void)idx.search("kludge daemon", 3);
  } catch (const Error&) {
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const text::WordPieceTokenizer tok(
      {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b", "kl", "##udge", "東", "##京", "e",
       "##\xCC\x81"},
      {});
  (void)tok.encode(text);
  (void)tok.encode_with_special(text);
  (void)tok.encode_for_model(text, 16);
  static const rag::Splitter splitter({.chunk_size = 7, .chunk_overlap = 3});
  const std::vector<rag::Chunk> chunks = splitter.split(std::string(text), "fuzz");
  for (const rag::Chunk& c : chunks)
    if (c.end > size || c.begin > c.end || text.substr(c.begin, c.end - c.begin) != c.text)
      std::abort();  // a chunk must be its exact range of the text
  static const rag::Analyzer analyzer;
  (void)analyzer.terms(text);
  try {
    (void)rag::gunzip(text, 1 << 20, "fuzz");
  } catch (const Error&) {
  }
  try {
    (void)rag::decode_dictd_number(text.substr(0, 16));
  } catch (const Error&) {
  }
  return 0;
}
