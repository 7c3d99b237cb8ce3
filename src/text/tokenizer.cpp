// The Tokenizer interface's shared parts: special tokens, saving, loading any kind from JSON.
#include <climits>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/text/wordpiece.hpp"
#include "text/fingerprint.hpp"

namespace scholar::text {

void Tokenizer::save(const std::string& path) const {
  io::write_file_atomic(path, to_json().dump(1) + "\n");
}

void Tokenizer::set_special_tokens(const SpecialTokens& s) {
  for (const auto& [name, id] : {std::pair{"bos", s.bos}, std::pair{"eos", s.eos},
                                 std::pair{"pad", s.pad}, std::pair{"unk", s.unk}})
    if (id < -1 || id >= vocab_size())
      fail<IndexError>("Tokenizer::set_special_tokens: ", name, " id ", id,
                       " is outside the vocabulary [0, ", vocab_size(), ")");
  special_tokens_ = s;
}

void Tokenizer::guess_special_tokens() {
  // The names the common vocabularies use, most specific first.
  auto first = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (const auto id = find(n); id && is_special(*id)) return *id;
    return int32_t{-1};
  };
  SpecialTokens s;
  s.eos = first({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[SEP]"});
  s.bos = first({"<s>", "<|begin_of_text|>", "<bos>", "[CLS]", "<|endoftext|>"});
  s.pad = first({"<pad>", "[PAD]", "<|pad|>", "<|finetune_right_pad_id|>"});
  s.unk = first({"<unk>", "[UNK]"});
  special_tokens_ = s;
}

io::Json special_tokens_to_json(const SpecialTokens& s) {
  io::Json j = io::Json::object();
  j.set("bos", io::Json(int64_t{s.bos}));
  j.set("eos", io::Json(int64_t{s.eos}));
  j.set("pad", io::Json(int64_t{s.pad}));
  j.set("unk", io::Json(int64_t{s.unk}));
  return j;
}

SpecialTokens special_tokens_from_json(const io::Json& j, std::string_view source) {
  SpecialTokens s;
  const std::string where(source);
  for (auto [key, id] : {std::pair{"bos", &s.bos}, std::pair{"eos", &s.eos},
                         std::pair{"pad", &s.pad}, std::pair{"unk", &s.unk}})
    if (const io::Json* v = j.find(key)) {
      const int64_t x = v->as_int(where + ": special token " + key);
      if (x < -1 || x > INT32_MAX)
        fail<FormatError>(where, ": special token ", key, " id ", x, " is out of range");
      *id = static_cast<int32_t>(x);
    }
  return s;
}

void set_special_tokens_from_file(Tokenizer& tok, const SpecialTokens& s, std::string_view source) {
  try {
    tok.set_special_tokens(s);
  } catch (const IndexError& e) {
    fail<FormatError>(source, ": ", e.what());
  }
}

std::shared_ptr<Tokenizer> tokenizer_from_json(const io::Json& j, std::string_view source) {
  if (const io::Json* type = j.find("type"); type && type->is_string()) {
    if (type->as_string() == "scholar-spm")
      return std::make_shared<SpmTokenizer>(SpmTokenizer::from_json(j, source));
    fail<FormatError>(source, ": tokenizer type '", type->as_string(), "' is not known");
  }
  if (const io::Json* model = j.find("model"); model && model->is_object())
    if (const io::Json* t = model->find("type");
        t && t->is_string() && t->as_string() == "WordPiece")
      return std::make_shared<WordPieceTokenizer>(WordPieceTokenizer::from_json(j, source));
  return std::make_shared<BpeTokenizer>(BpeTokenizer::from_json(j, source));
}

std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  return tokenizer_from_json(io::Json::parse(io::read_file(path), path), path);
}

}  // namespace scholar::text
