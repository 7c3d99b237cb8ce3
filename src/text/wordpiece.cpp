// WordPiece (BERT): normalizer, pre-tokenizer, greedy longest-match model, file formats.
#include "scholar/text/wordpiece.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_set>

#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/text/unicode.hpp"
#include "scholar/text/utf8.hpp"
#include "text/fingerprint.hpp"
#include "text/merges.hpp"

namespace scholar::text {
namespace {

// BertNormalizer's notion of whitespace and of control characters (tokenizers' bert.rs): \t, \n
// and \r count as whitespace, not control; every other C* character is control.
bool is_bert_whitespace(uint32_t cp) {
  return cp == '\t' || cp == '\n' || cp == '\r' || is_white_space(cp);
}
bool is_bert_control(uint32_t cp) {
  return cp != '\t' && cp != '\n' && cp != '\r' && is_other(cp);
}
// BertPreTokenizer splits around ASCII punctuation (which includes symbols such as $ + < = > ^ `
// | ~) and every Unicode P* character.
bool is_bert_punctuation(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
           (cp >= 123 && cp <= 126);
  return is_punctuation(cp);
}

}  // namespace

std::vector<std::string> WordPieceTokenizer::bert_special_tokens() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, Options options,
                                       const std::vector<std::string>& special,
                                       std::string_view source)
    : options_(std::move(options)), vocab_(std::move(vocab)) {
  if (vocab_.empty()) fail<FormatError>(source, ": the vocabulary is empty");
  if (vocab_.size() > static_cast<size_t>(INT32_MAX))
    fail<FormatError>(source, ": ", vocab_.size(), " tokens are more than an int32 id can hold");
  if (options_.max_input_chars_per_word <= 0)
    fail<ValueError>(source, ": max_input_chars_per_word must be positive, not ",
                     options_.max_input_chars_per_word);
  ids_.reserve(vocab_.size());
  const std::string& prefix = options_.continuing_subword_prefix;
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const std::string& t = vocab_[i];
    if (t.empty()) fail<FormatError>(source, ": token ", i, " is empty");
    if (!ids_.emplace(t, static_cast<int32_t>(i)).second)
      fail<FormatError>(source, ": token '", t, "' appears twice (ids ", ids_.at(t), " and ", i,
                        ")");
    const size_t bytes =
        !prefix.empty() && t.starts_with(prefix) ? t.size() - prefix.size() : t.size();
    longest_ = std::max(longest_, bytes);
  }
  for (const std::string& s : special)
    if (auto it = ids_.find(s); it != ids_.end()) special_.push_back(it->second);
  std::sort(special_.begin(), special_.end());
  special_.erase(std::unique(special_.begin(), special_.end()), special_.end());
  const auto unk = find(options_.unk_token);
  if (!unk)
    fail<FormatError>(source, ": the unknown token '", options_.unk_token,
                      "' is not in the vocabulary");
  unk_ = *unk;
  cls_ = find(options_.cls_token).value_or(-1);
  sep_ = find(options_.sep_token).value_or(-1);
  guess_special_tokens();
  special_tokens_.unk = unk_;
  if (cls_ >= 0) special_tokens_.bos = cls_;
  if (sep_ >= 0) special_tokens_.eos = sep_;
}

std::optional<int32_t> WordPieceTokenizer::find(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& WordPieceTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail<IndexError>("WordPiece: token id ", id, " is outside the vocabulary [0, ", vocab_size(),
                     ")");
  return vocab_[static_cast<size_t>(id)];
}

bool WordPieceTokenizer::is_special(int32_t id) const {
  return std::binary_search(special_.begin(), special_.end(), id);
}

// --- Normalizer and pre-tokenizer --------------------------------------------------------------

std::string WordPieceTokenizer::normalize(std::string_view text) const {
  // Clean and space out CJK, character by character; invalid UTF-8 counts as U+FFFD (which
  // cleaning drops, as Hugging Face's lossy decoding followed by BertNormalizer would).
  std::string s;
  s.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    const Utf8Char c = decode_utf8(text, i);
    i += c.len;
    const uint32_t cp = c.cp == kInvalidCodePoint ? 0xFFFD : c.cp;
    if (options_.clean_text) {
      if (cp == 0 || cp == 0xFFFD || is_bert_control(cp)) continue;
      if (is_bert_whitespace(cp)) {
        s.push_back(' ');
        continue;
      }
    }
    if (options_.handle_chinese_chars && is_cjk_ideograph(cp)) {
      s.push_back(' ');
      append_utf8(s, cp);
      s.push_back(' ');
      continue;
    }
    append_utf8(s, cp);
  }
  if (options_.strip_accents.value_or(options_.lowercase)) {
    const std::string d = nfd(s);
    s.clear();
    for (size_t i = 0; i < d.size();) {
      const Utf8Char c = decode_utf8(d, i);
      if (!is_nonspacing_mark(c.cp)) s.append(d, i, c.len);
      i += c.len;
    }
  }
  if (options_.lowercase) s = to_lower(s);
  return s;
}

std::vector<std::string_view> WordPieceTokenizer::pre_tokenize(std::string_view s) const {
  std::vector<std::string_view> words;
  size_t start = 0, i = 0;
  auto cut = [&](size_t end) {
    if (end > start) words.push_back(s.substr(start, end - start));
  };
  while (i < s.size()) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp != kInvalidCodePoint && is_white_space(c.cp)) {
      cut(i);
      start = i + c.len;
    } else if (c.cp != kInvalidCodePoint && is_bert_punctuation(c.cp)) {
      cut(i);
      words.push_back(s.substr(i, c.len));
      start = i + c.len;
    }
    i += c.len;
  }
  cut(s.size());
  return words;
}

// --- Model ---------------------------------------------------------------------------------------

std::optional<int32_t> WordPieceTokenizer::lookup(std::string_view piece, bool continuation) const {
  thread_local std::string key;
  key.clear();
  if (continuation) key = options_.continuing_subword_prefix;
  key.append(piece);
  const auto it = ids_.find(key);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void WordPieceTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (static_cast<int64_t>(utf8_length(word)) > options_.max_input_chars_per_word) {
    out.push_back(unk_);
    return;
  }
  const size_t mark = out.size();
  for (size_t start = 0; start < word.size();) {
    // The longest piece from `start` that the vocabulary has, shortening by whole characters.
    size_t end = std::min(word.size(), start + longest_);
    while (end < word.size() && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) --end;
    std::optional<int32_t> id;
    while (end > start) {
      if ((id = lookup(word.substr(start, end - start), start > 0))) break;
      do --end;
      while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (!id) {  // no cut of the word works: all of it is unknown
      out.resize(mark);
      out.push_back(unk_);
      return;
    }
    out.push_back(*id);
    start = end;
  }
}

void WordPieceTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  const std::string norm = normalize(text);
  for (std::string_view w : pre_tokenize(norm)) encode_word(w, out);
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  encode_plain(text, out);
  return out;
}

std::vector<int32_t> WordPieceTokenizer::encode_with_special(std::string_view text) const {
  // Special tokens are found in the raw text, before normalization (Hugging Face's added tokens
  // with normalized = false), longest first where two start at one place.
  std::vector<int32_t> out;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t hit = -1;
    size_t len = 0;
    for (int32_t id : special_) {
      const std::string& t = vocab_[static_cast<size_t>(id)];
      if (t.size() > len && text.substr(i).starts_with(t)) hit = id, len = t.size();
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    encode_plain(text.substr(start, i - start), out);
    out.push_back(hit);
    i += len;
    start = i;
  }
  encode_plain(text.substr(start), out);
  return out;
}

std::vector<int32_t> WordPieceTokenizer::encode_for_model(std::string_view text,
                                                          size_t max_length) const {
  if (cls_ < 0 || sep_ < 0)
    fail<ValueError>("WordPiece: the vocabulary has no '",
                     cls_ < 0 ? options_.cls_token : options_.sep_token,
                     "' token to frame a model's input with");
  if (max_length == 1 || max_length == 2)
    fail<ValueError>("WordPiece: max_length ", max_length,
                     " leaves no room for text between [CLS] and [SEP]");
  std::vector<int32_t> out{cls_};
  encode_plain(text, out);
  if (max_length && out.size() + 1 > max_length) out.resize(max_length - 1);
  out.push_back(sep_);
  return out;
}

std::string WordPieceTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  const std::string& prefix = options_.continuing_subword_prefix;
  for (int32_t id : ids) {
    const std::string& t = token_bytes(id);
    if (is_special(id)) continue;
    if (!prefix.empty() && t.starts_with(prefix) && !out.empty()) {
      out.append(t, prefix.size());
    } else {
      if (!out.empty()) out.push_back(' ');
      out += t;
    }
  }
  // Hugging Face's clean_up_tokenization_spaces.
  static const std::pair<std::string_view, std::string_view> kCleanup[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kCleanup)
    for (size_t p = out.find(from); p != std::string::npos; p = out.find(from, p + to.size()))
      out.replace(p, from.size(), to);
  return out;
}

std::string WordPieceTokenizer::fingerprint() const {
  detail::Fingerprint f;
  f.bytes("wordpiece");
  f.number(options_.clean_text);
  f.number(options_.handle_chinese_chars);
  f.number(options_.strip_accents.value_or(options_.lowercase));
  f.number(options_.lowercase);
  f.bytes(options_.unk_token);
  f.bytes(options_.continuing_subword_prefix);
  f.number(static_cast<uint64_t>(options_.max_input_chars_per_word));
  f.bytes(options_.cls_token);
  f.bytes(options_.sep_token);
  f.number(vocab_.size());
  for (const std::string& t : vocab_) f.bytes(t);
  for (int32_t id : special_) f.number(static_cast<uint32_t>(id));
  return f.hex();
}

// --- Training ----------------------------------------------------------------------------------

WordPieceTokenizer WordPieceTokenizer::train(std::span<const std::string_view> texts,
                                             const TrainOptions& o, Options options) {
  const std::vector<std::string> specials = bert_special_tokens();
  if (o.vocab_size < static_cast<int32_t>(specials.size()) + 1)
    fail<ValueError>("WordPiece train: vocab_size ", o.vocab_size, " leaves no room beside the ",
                     specials.size(), " special tokens");
  if (o.min_frequency < 1)
    fail<ValueError>("WordPiece train: min_frequency must be >= 1, got ", o.min_frequency);
  const std::string prefix = options.continuing_subword_prefix;
  // Distinct words (after normalization and pre-tokenization) and their counts. A normalizer-only
  // tokenizer does the splitting; its vocabulary just needs [UNK].
  const WordPieceTokenizer splitter({options.unk_token}, options, {});
  std::unordered_map<std::string, int64_t> word_count;
  for (std::string_view t : texts) {
    const std::string norm = splitter.normalize(t);
    for (std::string_view w : splitter.pre_tokenize(norm)) ++word_count[std::string(w)];
  }
  // Pieces by id; a word is a sequence of piece ids, the first word-initial, the rest "##".
  std::vector<std::string> pieces;
  std::unordered_map<std::string, int32_t> piece_id;
  auto intern = [&](const std::string& p) {
    auto [it, fresh] = piece_id.emplace(p, static_cast<int32_t>(pieces.size()));
    if (fresh) pieces.push_back(p);
    return it->second;
  };
  std::vector<std::pair<std::string, int64_t>> sorted(word_count.begin(), word_count.end());
  std::sort(sorted.begin(), sorted.end());  // deterministic whatever the hashing
  std::vector<detail::MergeWord> words;
  words.reserve(sorted.size());
  std::map<std::string, int64_t> alphabet;  // every piece of one character, with its count
  for (const auto& [w, c] : sorted) {
    detail::MergeWord word{{}, c};
    for (size_t i = 0; i < w.size();) {
      const size_t len = decode_utf8(w, i).len;
      const std::string piece = (i == 0 ? std::string() : prefix) + w.substr(i, len);
      alphabet[piece] += c;
      word.sym.push_back(intern(piece));
      i += len;
    }
    words.push_back(std::move(word));
  }
  std::vector<std::string> vocab = specials;
  for (const auto& [p, c] : alphabet) vocab.push_back(p);
  std::unordered_set<std::string> in_vocab(vocab.begin(), vocab.end());
  const int64_t wanted = std::max<int64_t>(0, o.vocab_size - static_cast<int64_t>(vocab.size()));
  detail::learn_merges(
      words, wanted, o.min_frequency,
      [&](int32_t left, int32_t right) {
        // "ab" + "##c" -> "abc"; "##ab" + "##c" -> "##abc".
        const std::string merged = pieces[static_cast<size_t>(left)] +
                                   pieces[static_cast<size_t>(right)].substr(prefix.size());
        const bool fresh = in_vocab.insert(merged).second;
        if (fresh) vocab.push_back(merged);
        return detail::Merged{intern(merged), fresh};
      },
      o.progress);
  return WordPieceTokenizer(std::move(vocab), std::move(options), specials, "WordPiece train");
}

// --- Files ---------------------------------------------------------------------------------------

io::Json WordPieceTokenizer::to_json() const {
  using io::Json;
  Json added = Json::array();
  for (int32_t id : special_) {
    Json t = Json::object();
    t.set("id", Json(int64_t{id}));
    t.set("content", Json(vocab_[static_cast<size_t>(id)]));
    t.set("single_word", Json(false));
    t.set("lstrip", Json(false));
    t.set("rstrip", Json(false));
    t.set("normalized", Json(false));
    t.set("special", Json(true));
    added.push_back(std::move(t));
  }
  Json norm = Json::object();
  norm.set("type", Json("BertNormalizer"));
  norm.set("clean_text", Json(options_.clean_text));
  norm.set("handle_chinese_chars", Json(options_.handle_chinese_chars));
  norm.set("strip_accents", options_.strip_accents ? Json(*options_.strip_accents) : Json());
  norm.set("lowercase", Json(options_.lowercase));
  Json pre = Json::object();
  pre.set("type", Json("BertPreTokenizer"));
  Json post = Json::object();
  if (cls_ >= 0 && sep_ >= 0) {
    post.set("type", Json("BertProcessing"));
    post.set("sep", Json::array({Json(options_.sep_token), Json(int64_t{sep_})}));
    post.set("cls", Json::array({Json(options_.cls_token), Json(int64_t{cls_})}));
  }
  Json decoder = Json::object();
  decoder.set("type", Json("WordPiece"));
  decoder.set("prefix", Json(options_.continuing_subword_prefix));
  decoder.set("cleanup", Json(true));
  Json vocab = Json::object();
  for (size_t i = 0; i < vocab_.size(); ++i) vocab.set(vocab_[i], Json(static_cast<int64_t>(i)));
  Json model = Json::object();
  model.set("type", Json("WordPiece"));
  model.set("unk_token", Json(options_.unk_token));
  model.set("continuing_subword_prefix", Json(options_.continuing_subword_prefix));
  model.set("max_input_chars_per_word", Json(options_.max_input_chars_per_word));
  model.set("vocab", std::move(vocab));
  Json j = Json::object();
  j.set("version", Json("1.0"));
  j.set("truncation", Json());
  j.set("padding", Json());
  j.set("added_tokens", std::move(added));
  j.set("normalizer", std::move(norm));
  j.set("pre_tokenizer", std::move(pre));
  j.set("post_processor", cls_ >= 0 && sep_ >= 0 ? std::move(post) : Json());
  j.set("decoder", std::move(decoder));
  j.set("model", std::move(model));
  return j;
}

WordPieceTokenizer WordPieceTokenizer::load(const std::string& path) {
  return from_json(io::Json::parse(io::read_file(path), path), path);
}

WordPieceTokenizer WordPieceTokenizer::from_json(const io::Json& j, std::string_view source) {
  const std::string src(source);
  const io::Json& model = j.at("model", src);
  const std::string& type = model.at("type", src + ": model").as_string(src + ": model.type");
  if (type != "WordPiece") fail<FormatError>(src, ": model type '", type, "' is not WordPiece");
  Options opt;
  auto str = [&](const io::Json& o, const char* key, std::string& out) {
    if (const io::Json* v = o.find(key); v && !v->is_null()) out = v->as_string(src + ": " + key);
  };
  str(model, "unk_token", opt.unk_token);
  str(model, "continuing_subword_prefix", opt.continuing_subword_prefix);
  if (const io::Json* v = model.find("max_input_chars_per_word"); v && !v->is_null())
    opt.max_input_chars_per_word = v->as_int(src + ": max_input_chars_per_word");
  // The normalizer: BertNormalizer, or nothing (then no cleaning, no lowercasing).
  const io::Json* norm = j.find("normalizer");
  if (norm && !norm->is_null()) {
    const std::string& nt =
        norm->at("type", src + ": normalizer").as_string(src + ": normalizer.type");
    if (nt != "BertNormalizer")
      fail<FormatError>(src, ": normalizer '", nt,
                        "' is not one scholar implements for WordPiece (BertNormalizer)");
    auto flag = [&](const char* key, bool& out) {
      if (const io::Json* v = norm->find(key); v && !v->is_null())
        out = v->as_bool(src + ": normalizer." + key);
    };
    flag("clean_text", opt.clean_text);
    flag("handle_chinese_chars", opt.handle_chinese_chars);
    flag("lowercase", opt.lowercase);
    if (const io::Json* v = norm->find("strip_accents"); v && !v->is_null())
      opt.strip_accents = v->as_bool(src + ": normalizer.strip_accents");
  } else {
    opt.clean_text = opt.handle_chinese_chars = opt.lowercase = false;
    opt.strip_accents = false;
  }
  if (const io::Json* pre = j.find("pre_tokenizer"); pre && !pre->is_null()) {
    const std::string& pt =
        pre->at("type", src + ": pre_tokenizer").as_string(src + ": pre_tokenizer.type");
    if (pt != "BertPreTokenizer")
      fail<FormatError>(src, ": pre-tokenizer '", pt,
                        "' is not one scholar implements for WordPiece (BertPreTokenizer)");
  }
  // The post-processor names the tokens around a sequence.
  if (const io::Json* post = j.find("post_processor"); post && !post->is_null()) {
    const std::string& kind =
        post->at("type", src + ": post_processor").as_string(src + ": post_processor.type");
    if (kind == "BertProcessing") {
      opt.cls_token = post->at("cls", src).as_array(src + ": cls").at(0).as_string(src + ": cls");
      opt.sep_token = post->at("sep", src).as_array(src + ": sep").at(0).as_string(src + ": sep");
    } else if (kind == "TemplateProcessing") {
      const auto& single = post->at("single", src).as_array(src + ": post_processor.single");
      std::vector<std::string> before, after;
      bool seen_a = false;
      for (const io::Json& piece : single) {
        if (const io::Json* sp = piece.find("SpecialToken"))
          (seen_a ? after : before)
              .push_back(sp->at("id", src).as_string(src + ": SpecialToken.id"));
        else if (piece.find("Sequence"))
          seen_a = true;
      }
      if (before.size() != 1 || after.size() != 1)
        fail<FormatError>(src, ": post-processor template ", post->at("single").dump(),
                          " is not one special token, the text, one special token");
      opt.cls_token = before[0];
      opt.sep_token = after[0];
    } else {
      fail<FormatError>(src, ": post-processor '", kind,
                        "' is not one scholar implements for WordPiece (BertProcessing, "
                        "TemplateProcessing)");
    }
  }
  const auto& vocab = model.at("vocab", src + ": model").as_object(src + ": model.vocab");
  std::vector<std::string> tokens(vocab.size());
  std::vector<bool> seen(vocab.size());
  for (const auto& [text, idj] : vocab) {
    const int64_t id = idj.as_int(src + ": vocab id of '" + text + "'");
    if (id < 0 || id >= static_cast<int64_t>(tokens.size()) || seen[static_cast<size_t>(id)])
      fail<FormatError>(src, ": vocabulary ids are not 0..", tokens.size() - 1,
                        " each once (token '", text, "' has id ", id, ")");
    seen[static_cast<size_t>(id)] = true;
    tokens[static_cast<size_t>(id)] = text;
  }
  std::vector<std::string> special;
  if (const io::Json* added = j.find("added_tokens"))
    for (const io::Json& t : added->as_array(src + ": added_tokens")) {
      const std::string& content = t.at("content", src + ": added token").as_string();
      const int64_t id = t.at("id", src + ": added token").as_int(src + ": added token id");
      if (id < 0 || id >= static_cast<int64_t>(tokens.size()) ||
          tokens[static_cast<size_t>(id)] != content)
        fail<FormatError>(src, ": added token '", content, "' (id ", id,
                          ") is not that id's token in the vocabulary");
      if (const io::Json* sp = t.find("special"); !sp || sp->as_bool(src + ": special"))
        special.push_back(content);
    }
  return WordPieceTokenizer(std::move(tokens), std::move(opt), special, src);
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_txt(const std::string& path, Options opt) {
  const std::string data = io::read_file(path);
  if (!is_valid_utf8(data))
    fail<FormatError>(path, ": not UTF-8 (byte ", invalid_utf8_offset(data), ")");
  std::vector<std::string> vocab;
  for (size_t start = 0; start < data.size();) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.push_back(std::move(line));
    start = end + 1;
  }
  // tokenizer_config.json beside vocab.txt (transformers' BertTokenizer settings).
  const auto config = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    const std::string cpath = config.string();
    const io::Json c = io::Json::parse(io::read_file(cpath), cpath);
    auto flag = [&](const char* key) -> std::optional<bool> {
      if (const io::Json* v = c.find(key); v && v->is_bool()) return v->as_bool();
      return std::nullopt;
    };
    if (auto v = flag("do_lower_case")) opt.lowercase = *v;
    if (auto v = flag("tokenize_chinese_chars")) opt.handle_chinese_chars = *v;
    if (const io::Json* v = c.find("strip_accents"); v && v->is_bool())
      opt.strip_accents = v->as_bool();
    for (auto [key, out] :
         {std::pair{"unk_token", &opt.unk_token}, std::pair{"cls_token", &opt.cls_token},
          std::pair{"sep_token", &opt.sep_token}})
      if (const io::Json* v = c.find(key); v && v->is_string()) *out = v->as_string();
  }
  return WordPieceTokenizer(std::move(vocab), std::move(opt), bert_special_tokens(), path);
}

WordPieceTokenizer WordPieceTokenizer::from_gguf(const io::GgufFile& f) {
  const std::string where = f.path() + ": tokenizer.ggml.";
  const auto model = f.get("tokenizer.ggml.model").as_string(where + "model");
  if (model != "bert") fail<FormatError>(where, "model is '", model, "', not WordPiece's 'bert'");
  auto texts = f.get("tokenizer.ggml.tokens").as_strings(where + "tokens");
  std::vector<int64_t> types;
  if (const io::GgufValue* t = f.find("tokenizer.ggml.token_type"))
    types = t->as_ints(where + "token_type");
  if (!types.empty() && types.size() != texts.size())
    fail<FormatError>(where, "token_type has ", types.size(), " entries for ", texts.size(),
                      " tokens");
  // convert_hf_to_gguf writes word-initial pieces with a U+2581 prefix, continuations bare, and
  // control (special) tokens as they are.
  static constexpr std::string_view kMarker = "\xE2\x96\x81";
  std::vector<std::string> special;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string& t = texts[i];
    // Without token types, a [BRACKETED] token with no prefix is taken for a control token.
    const bool control =
        types.empty() ? t.size() > 2 && t.front() == '[' && t.back() == ']' : types[i] == 3;
    if (control) {
      // as it is
    } else if (t.starts_with(kMarker)) {
      t.erase(0, kMarker.size());
    } else {
      t = std::string("##") + t;
    }
    if (control) special.push_back(t);
  }
  Options opt;
  auto id = [&](const char* key) -> int32_t {
    if (const io::GgufValue* v = f.find(std::string("tokenizer.ggml.") + key)) {
      const int64_t x = v->as_int(where + key);
      if (x < 0 || x >= static_cast<int64_t>(texts.size()))
        fail<FormatError>(where, key, " ", x, " is outside the vocabulary of ", texts.size());
      return static_cast<int32_t>(x);
    }
    return -1;
  };
  if (const int32_t u = id("unknown_token_id"); u >= 0)
    opt.unk_token = texts[static_cast<size_t>(u)];
  // llama.cpp frames BERT input as BOS ... SEP (older files also name a cls_token_id).
  int32_t cls = id("cls_token_id");
  if (cls < 0) cls = id("bos_token_id");
  int32_t sep = id("seperator_token_id");
  if (sep < 0) sep = id("eos_token_id");
  if (cls >= 0) opt.cls_token = texts[static_cast<size_t>(cls)];
  if (sep >= 0) opt.sep_token = texts[static_cast<size_t>(sep)];
  if (special.empty()) special = bert_special_tokens();
  const int32_t pad = id("padding_token_id");
  WordPieceTokenizer tok(std::move(texts), std::move(opt), special, f.path());
  SpecialTokens s = tok.special_tokens();
  if (pad >= 0) s.pad = pad;
  set_special_tokens_from_file(tok, s, f.path());
  return tok;
}

}  // namespace scholar::text
