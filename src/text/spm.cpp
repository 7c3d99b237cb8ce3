// SentencePiece-style tokenization as llama.cpp runs it for GGUF files whose tokenizer.ggml.model
// is "llama" (Llama 1 and 2, Mistral, TinyLlama...): characters merged pairwise by piece score,
// with byte fallback.
#include <algorithm>
#include <queue>

#include "scholar/error.hpp"
#include "scholar/io/gguf.hpp"
#include "scholar/text/tokenizer.hpp"
#include "scholar/text/utf8.hpp"
#include "text/fingerprint.hpp"

namespace scholar::text {

namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.substr(i, from.size()) == from) {
      out += to;
      i += from.size();
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// "<0x41>" -> 0x41; -1 if the text is not a byte piece.
int byte_piece(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

SpmTokenizer::SpmTokenizer(std::vector<Piece> pieces, bool add_space_prefix, std::string source)
    : pieces_(std::move(pieces)), add_space_prefix_(add_space_prefix) {
  if (pieces_.empty()) fail<FormatError>(source, ": the vocabulary is empty");
  bytes_.resize(pieces_.size());
  byte_ids_.fill(-1);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    const auto id = static_cast<int32_t>(i);
    by_text_[p.text] = id;  // the last of duplicate texts wins, as in llama.cpp's map
    switch (p.type) {
      case PieceType::byte: {
        const int b = byte_piece(p.text);
        if (b < 0) fail<FormatError>(source, ": byte piece ", i, " is '", p.text, "', not <0xXX>");
        byte_ids_[static_cast<size_t>(b)] = id;
        bytes_[i] = std::string(1, static_cast<char>(b));
        break;
      }
      case PieceType::normal:
      case PieceType::undefined:
        bytes_[i] = replace_all(p.text, kSpace, " ");
        break;
      case PieceType::unknown:
        bytes_[i] = "\xe2\x96\x85";
        break;  // as llama.cpp shows <unk>
      case PieceType::control:
      case PieceType::unused:
        bytes_[i] = "";
        break;
      case PieceType::user_defined:
        bytes_[i] = p.text;
        break;
    }
    if (p.type == PieceType::control || p.type == PieceType::user_defined) special_.push_back(id);
    if (p.type == PieceType::control || p.type == PieceType::user_defined ||
        p.type == PieceType::unknown)
      partition_.push_back(id);
  }
  guess_special_tokens();
}

SpmTokenizer SpmTokenizer::from_gguf(const io::GgufFile& f) {
  const std::string where = f.path() + ": tokenizer.ggml.";
  const auto model = f.get("tokenizer.ggml.model").as_string(where + "model");
  if (model != "llama")
    fail<FormatError>(where, "model is '", model, "', not SentencePiece's 'llama'");
  auto texts = f.get("tokenizer.ggml.tokens").as_strings(where + "tokens");
  std::vector<float> scores;
  if (const io::GgufValue* s = f.find("tokenizer.ggml.scores"))
    scores = s->as_floats(where + "scores");
  std::vector<int64_t> types;
  if (const io::GgufValue* t = f.find("tokenizer.ggml.token_type"))
    types = t->as_ints(where + "token_type");
  if (!scores.empty() && scores.size() != texts.size())
    fail<FormatError>(where, "scores has ", scores.size(), " entries for ", texts.size(),
                      " tokens");
  if (!types.empty() && types.size() != texts.size())
    fail<FormatError>(where, "token_type has ", types.size(), " entries for ", texts.size(),
                      " tokens");
  std::vector<Piece> pieces(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    pieces[i].text = std::move(texts[i]);
    pieces[i].score = scores.empty() ? 0.0f : scores[i];
    const int64_t t = types.empty() ? 1 : types[i];
    if (t < 0 || t > 6) fail<FormatError>(where, "token_type of token ", i, " is ", t);
    pieces[i].type = static_cast<PieceType>(t);
  }
  bool prefix = true;  // llama.cpp's default for this model type
  if (const io::GgufValue* v = f.find("tokenizer.ggml.add_space_prefix"))
    prefix = v->as_bool(where + "add_space_prefix");
  SpmTokenizer tok(std::move(pieces), prefix, f.path());
  SpecialTokens s = tok.special_tokens();
  auto id = [&](const char* key, int32_t& out) {
    if (const io::GgufValue* v = f.find(std::string("tokenizer.ggml.") + key))
      out = static_cast<int32_t>(v->as_int(where + key));
  };
  id("bos_token_id", s.bos);
  id("eos_token_id", s.eos);
  id("padding_token_id", s.pad);
  id("unknown_token_id", s.unk);
  set_special_tokens_from_file(tok, s, f.path());
  return tok;
}

SpmTokenizer SpmTokenizer::from_json(const io::Json& j, std::string_view source) {
  const std::string src(source);
  if (j.at("type", src).as_string(src + ": type") != "scholar-spm")
    fail<FormatError>(src, ": not a scholar SPM tokenizer");
  if (j.at("version", src).as_int(src + ": version") != 1)
    fail<FormatError>(src, ": SPM tokenizer format version ", j.at("version").dump(),
                      " is not supported (1 is)");
  std::vector<Piece> pieces;
  for (const io::Json& p : j.at("pieces", src).as_array(src + ": pieces")) {
    const auto& a = p.as_array(src + ": piece");
    if (a.size() != 3)
      fail<FormatError>(src, ": piece ", pieces.size(), " is not [text, score, type]");
    const int64_t type = a[2].as_int(src + ": piece type");
    if (type < 0 || type > 6)
      fail<FormatError>(src, ": piece ", pieces.size(), " has type ", type, " (0 to 6)");
    pieces.push_back({a[0].as_string(src + ": piece text"),
                      static_cast<float>(a[1].as_double(src + ": piece score")),
                      static_cast<PieceType>(type)});
  }
  SpmTokenizer tok(std::move(pieces), j.at("add_space_prefix", src).as_bool(), src);
  if (const io::Json* sp = j.find("special_tokens"))
    set_special_tokens_from_file(tok, special_tokens_from_json(*sp, src), src);
  return tok;
}

io::Json SpmTokenizer::to_json() const {
  using io::Json;
  Json j = Json::object();
  j.set("type", Json("scholar-spm"));
  j.set("version", Json(int64_t{1}));
  j.set("add_space_prefix", Json(add_space_prefix_));
  j.set("special_tokens", special_tokens_to_json(special_tokens()));
  Json::Array pieces;
  pieces.reserve(pieces_.size());
  for (const Piece& p : pieces_) {
    Json::Array a;
    a.emplace_back(p.text);
    a.emplace_back(static_cast<double>(p.score));
    a.emplace_back(static_cast<int64_t>(p.type));
    pieces.push_back(Json::array(std::move(a)));
  }
  j.set("pieces", Json::array(std::move(pieces)));
  return j;
}

std::string SpmTokenizer::fingerprint() const {
  detail::Fingerprint f;
  f.bytes("spm");
  f.number(add_space_prefix_ ? 1 : 0);
  f.number(pieces_.size());
  for (const Piece& p : pieces_) {
    f.bytes(p.text);
    f.real(p.score);
    f.number(static_cast<uint64_t>(p.type));
  }
  return f.hex();
}

std::optional<int32_t> SpmTokenizer::find(std::string_view text) const {
  auto it = by_text_.find(std::string(text));
  if (it == by_text_.end()) return std::nullopt;
  return it->second;
}

const std::string& SpmTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail<IndexError>("SPM: token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
  return bytes_[static_cast<size_t>(id)];
}

bool SpmTokenizer::is_special(int32_t id) const {
  return std::find(special_.begin(), special_.end(), id) != special_.end();
}

std::string SpmTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (const int32_t id : ids) out += token_bytes(id);
  return out;
}

// llama.cpp's llm_tokenizer_spm_session: the text's characters are symbols in a linked list; the
// adjacent pair whose concatenation is the highest-scoring piece merges first (leftmost on ties),
// until no pair forms a piece. A final symbol that is a piece is emitted; one formed by merges that
// is not (a merge of merges may pass through texts that are pieces only as a whole) splits back
// into the two symbols that made it; anything else is emitted as byte pieces.
void SpmTokenizer::encode_raw(std::string_view text, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t prev, next;
    size_t start, n;
  };
  std::vector<Symbol> sym;
  for (size_t offs = 0; offs < text.size();) {
    const size_t len =
        std::min(text.size() - offs, utf8_lead_length(static_cast<unsigned char>(text[offs])));
    const auto index = static_cast<int32_t>(sym.size());
    sym.push_back({index - 1, offs + len == text.size() ? -1 : index + 1, offs, len});
    offs += len;
  }
  struct Bigram {
    int32_t left, right;
    float score;
    size_t size;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  std::unordered_map<std::string, std::pair<int32_t, int32_t>> rev_merge;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = sym[static_cast<size_t>(left)];
    const std::string piece(text.substr(l.start, l.n + sym[static_cast<size_t>(right)].n));
    auto it = by_text_.find(piece);
    if (it == by_text_.end()) return;
    queue.push({left, right, pieces_[static_cast<size_t>(it->second)].score, piece.size()});
    rev_merge[piece] = {left, right};
  };
  for (size_t i = 1; i < sym.size(); ++i)
    try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[static_cast<size_t>(b.left)];
    Symbol& r = sym[static_cast<size_t>(b.right)];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  auto resegment = [&](auto&& self, const Symbol& s) -> void {
    const std::string piece(text.substr(s.start, s.n));
    if (auto it = by_text_.find(piece); it != by_text_.end()) {
      out.push_back(it->second);
      return;
    }
    auto m = rev_merge.find(piece);
    if (m == rev_merge.end()) {
      for (const char c : piece) {
        const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
        if (id < 0)
          fail<ValueError>("SPM: byte 0x", "0123456789ABCDEF"[static_cast<unsigned char>(c) >> 4],
                           "0123456789ABCDEF"[static_cast<unsigned char>(c) & 15],
                           " has no piece and the vocabulary has no byte fallback for it");
        out.push_back(id);
      }
      return;
    }
    self(self, sym[static_cast<size_t>(m->second.first)]);
    self(self, sym[static_cast<size_t>(m->second.second)]);
  };
  if (sym.empty()) return;
  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next)
    resegment(resegment, sym[static_cast<size_t>(i)]);
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  // Fragments: raw text between special pieces (control pieces only when allowed; user-defined
  // pieces always, as llama.cpp matches them).
  // The space prefix goes before a raw fragment that starts the text or follows a special piece,
  // as in llama.cpp.
  bool prev_special = true;
  auto raw = [&](std::string_view frag) {
    if (frag.empty()) return;
    std::string t;
    if (add_space_prefix_ && prev_special) t = " ";
    t += frag;
    encode_raw(replace_all(t, " ", kSpace), out);
    prev_special = false;
  };
  size_t start = 0;
  while (start < text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    int32_t best_id = -1;
    for (const int32_t id : partition_) {
      const Piece& p = pieces_[static_cast<size_t>(id)];
      if (p.text.empty() || (p.type != PieceType::user_defined && !allow_special)) continue;
      const size_t at = text.find(p.text, start);
      if (at != std::string_view::npos && (at < best || (at == best && p.text.size() > best_len))) {
        best = at;
        best_len = p.text.size();
        best_id = id;
      }
    }
    if (best == std::string_view::npos) break;
    raw(text.substr(start, best - start));
    out.push_back(best_id);
    prev_special = true;
    start = best + best_len;
  }
  raw(text.substr(start));
  return out;
}

}  // namespace scholar::text
