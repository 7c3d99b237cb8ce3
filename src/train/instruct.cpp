// Instruction data: JSONL, chat rendering with loss masks, padded and packed batches.
#include "scholar/train/instruct.hpp"

#include <algorithm>
#include <numeric>

#include "core/digest.hpp"
#include "scholar/error.hpp"
#include "scholar/io/file.hpp"
#include "scholar/io/json.hpp"

namespace scholar::train {

namespace {

text::ChatMessage message_from(const io::Json& m, const std::string& where) {
  if (!m.is_object()) fail<FormatError>(where, ": a message must be an object");
  const io::Json* role = m.find("role");
  const io::Json* content = m.find("content");
  if (!role || !role->is_string()) fail<FormatError>(where, ": a message has no \"role\" string");
  if (!content || !content->is_string())
    fail<FormatError>(where, ": a message has no \"content\" string");
  const std::string& r = role->as_string();
  if (r != "system" && r != "user" && r != "assistant")
    fail<FormatError>(where, ": role '", r, "' (expected system, user or assistant)");
  return {r, content->as_string()};
}

}  // namespace

std::vector<Conversation> read_instruction_jsonl(const std::string& path) {
  const std::string text = io::read_file(path);
  std::vector<Conversation> out;
  size_t pos = 0;
  int64_t line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view l(text.data() + pos, end - pos);
    pos = end + 1;
    ++line;
    if (l.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + ":" + std::to_string(line);
    const io::Json j = io::Json::parse(l, where);
    if (!j.is_object()) fail<FormatError>(where, ": an example must be a JSON object");
    Conversation c;
    c.line = line;
    if (const io::Json* msgs = j.find("messages")) {
      if (!msgs->is_array()) fail<FormatError>(where, ": \"messages\" must be an array");
      for (const io::Json& m : msgs->as_array()) c.messages.push_back(message_from(m, where));
    } else {
      const io::Json* p = j.find("prompt");
      const io::Json* q = j.find("completion");
      if (!p || !q)
        fail<FormatError>(where,
                          ": an example needs \"messages\", or \"prompt\" and \"completion\"",
                          p   ? " (no \"completion\")"
                          : q ? " (no \"prompt\")"
                              : "");
      if (!p->is_string() || !q->is_string())
        fail<FormatError>(where, ": \"prompt\" and \"completion\" must be strings");
      c.messages = {{"user", p->as_string()}, {"assistant", q->as_string()}};
    }
    if (std::none_of(c.messages.begin(), c.messages.end(),
                     [](const text::ChatMessage& m) { return m.role == "assistant"; }))
      fail<FormatError>(where, ": the conversation has no assistant message to learn");
    out.push_back(std::move(c));
  }
  if (out.empty()) fail<FormatError>(path, ": no examples");
  return out;
}

void save_instruction_jsonl(const std::vector<Conversation>& examples, const std::string& path) {
  std::string out;
  for (const Conversation& c : examples) {
    io::Json msgs = io::Json::array();
    for (const auto& m : c.messages) {
      io::Json o = io::Json::object();
      o.set("role", m.role);
      o.set("content", m.content);
      msgs.push_back(std::move(o));
    }
    io::Json j = io::Json::object();
    j.set("messages", std::move(msgs));
    out += j.dump() + "\n";
  }
  io::write_file_atomic(path, out);
}

InstructionDataset InstructionDataset::build(const std::vector<Conversation>& examples,
                                             const text::Tokenizer& tok, const Options& o) {
  if (o.max_length < 2)
    fail<ValueError>("InstructionDataset: max_length must be >= 2, got ", o.max_length);
  if (examples.empty()) fail<ValueError>("InstructionDataset: no examples");
  if (!(o.validation_fraction >= 0.0 && o.validation_fraction < 1.0))
    fail<ValueError>("InstructionDataset: validation_fraction must be in [0, 1), got ",
                     o.validation_fraction);
  InstructionDataset d;
  d.options_ = o;
  d.template_ =
      !o.chat_template.empty()
          ? text::ChatTemplate::from_name(o.chat_template)
          : text::ChatTemplate::detect(tok.chat_template()).value_or(text::ChatTemplate());
  const text::SpecialTokens& sp = tok.special_tokens();
  // A BOS only where the tokenizer has one of its own (GPT-2's <|endoftext|> is both and is not
  // put in front, as Hugging Face's GPT-2 tokenizer does not).
  const int32_t bos = sp.bos >= 0 && sp.bos != sp.eos ? sp.bos : -1;
  d.pad_id_ = sp.pad >= 0 ? sp.pad : sp.eos >= 0 ? sp.eos : 0;

  std::vector<Example> all;
  all.reserve(examples.size());
  for (size_t k = 0; k < examples.size(); ++k) {
    const Conversation& c = examples[k];
    const std::string where =
        c.line > 0 ? "line " + std::to_string(c.line) : "example " + std::to_string(k);
    Example e;
    for (const text::ChatPiece& p : d.template_.render(c.messages)) {
      std::vector<int32_t> ids;
      if (p.kind == text::ChatPiece::Kind::text)
        ids = tok.encode_with_special(p.text);
      else if (p.kind == text::ChatPiece::Kind::bos && bos >= 0)
        ids = {bos};
      else if (p.kind == text::ChatPiece::Kind::eos && sp.eos >= 0)
        ids = {sp.eos};
      e.tokens.insert(e.tokens.end(), ids.begin(), ids.end());
      e.trainable.insert(e.trainable.end(), ids.size(), p.trainable || o.train_on_prompt);
    }
    const auto first = std::find(e.trainable.begin(), e.trainable.end(), uint8_t{1});
    if (first == e.trainable.end())
      fail<FormatError>("InstructionDataset: ", where, " has no reply tokens to learn");
    const int64_t prompt = first - e.trainable.begin();
    // Rows hold max_length inputs, so an example keeps at most max_length + 1 tokens; its first
    // reply token must be a target (prompt <= max_length).
    if (prompt > o.max_length)
      fail<FormatError>("InstructionDataset: ", where, ": the prompt takes ", prompt,
                        " tokens, more than the context of ", o.max_length,
                        " (raise max_length or shorten the prompt)");
    if (static_cast<int64_t>(e.tokens.size()) > o.max_length + 1) {
      e.tokens.resize(static_cast<size_t>(o.max_length + 1));
      e.trainable.resize(e.tokens.size());
      ++d.truncated_;
    }
    e.trainable[0] = 0;  // the first token is never a target
    for (int32_t id : e.tokens) d.max_token_ = std::max(d.max_token_, id + 1);
    all.push_back(std::move(e));
  }

  // A seeded shuffle decides the held-out examples.
  std::vector<size_t> order(all.size());
  std::iota(order.begin(), order.end(), size_t{0});
  Generator gen(o.seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
  size_t n_val = 0;
  if (o.validation_fraction > 0) {
    if (all.size() < 2)
      fail<ValueError>("InstructionDataset: a validation split needs at least 2 examples, got ",
                       all.size(), " (or set validation_fraction to 0)");
    n_val = std::clamp<size_t>(
        static_cast<size_t>(o.validation_fraction * static_cast<double>(all.size()) + 0.5), 1,
        all.size() - 1);
  }
  for (size_t k = 0; k < order.size(); ++k)
    (k < n_val ? d.val_ : d.train_).push_back(std::move(all[order[k]]));
  for (const Example& e : d.train_)
    d.target_tokens_ += std::count(e.trainable.begin(), e.trainable.end(), uint8_t{1});
  return d;
}

InstructionDataset InstructionDataset::load_jsonl(const std::string& path,
                                                  const text::Tokenizer& tokenizer,
                                                  const Options& options) {
  return build(read_instruction_jsonl(path), tokenizer, options);
}

int64_t InstructionDataset::size(Split s) const noexcept {
  return static_cast<int64_t>(split(s).size());
}

const std::vector<int32_t>& InstructionDataset::tokens(Split s, int64_t i) const {
  if (i < 0 || i >= size(s))
    fail<IndexError>("InstructionDataset: example ", i, " is outside [0, ", size(s), ")");
  return split(s)[static_cast<size_t>(i)].tokens;
}

const std::vector<uint8_t>& InstructionDataset::trainable(Split s, int64_t i) const {
  if (i < 0 || i >= size(s))
    fail<IndexError>("InstructionDataset: example ", i, " is outside [0, ", size(s), ")");
  return split(s)[static_cast<size_t>(i)].trainable;
}

bool InstructionDataset::can_batch(Split s, int64_t T) const {
  return size(s) > 0 && T >= options_.max_length;
}

namespace {
// Writes example e's inputs and targets at row position [at, at + n).
void place(const std::vector<int32_t>& tok, const std::vector<uint8_t>& trainable, int32_t* x,
           int32_t* y, int64_t n) {
  for (int64_t t = 0; t < n; ++t) {
    x[t] = tok[static_cast<size_t>(t)];
    y[t] = trainable[static_cast<size_t>(t + 1)] ? tok[static_cast<size_t>(t + 1)] : -100;
  }
}
}  // namespace

Batch InstructionDataset::make_batch(Split s, const std::vector<int64_t>& which, int64_t T) const {
  const auto& ex = split(s);
  auto inputs_of = [&](int64_t i) {
    return static_cast<int64_t>(ex[static_cast<size_t>(i)].tokens.size()) - 1;
  };
  Batch b;
  if (!options_.pack) {  // one example per row, padded to the batch's longest
    int64_t Tb = 1;
    for (int64_t i : which) Tb = std::max(Tb, inputs_of(i));
    const auto B = static_cast<int64_t>(which.size());
    b.inputs = Tensor<int32_t>::full({B, Tb}, pad_id_);
    b.targets = Tensor<int32_t>::full({B, Tb}, -100);
    for (int64_t r = 0; r < B; ++r) {
      const Example& e = ex[static_cast<size_t>(which[static_cast<size_t>(r)])];
      place(e.tokens, e.trainable, b.inputs.data() + r * Tb, b.targets.data() + r * Tb,
            inputs_of(which[static_cast<size_t>(r)]));
    }
    return b;
  }
  // Packed: examples fill rows of T in order; one that does not fit starts the next row.
  std::vector<std::vector<int64_t>> rows(1);
  int64_t used = 0;
  for (int64_t i : which) {
    if (used + inputs_of(i) > T) {
      rows.emplace_back();
      used = 0;
    }
    rows.back().push_back(i);
    used += inputs_of(i);
  }
  const auto B = static_cast<int64_t>(rows.size());
  b.inputs = Tensor<int32_t>::full({B, T}, pad_id_);
  b.targets = Tensor<int32_t>::full({B, T}, -100);
  b.segments = Tensor<int32_t>::zeros({B, T});
  for (int64_t r = 0; r < B; ++r) {
    int64_t at = 0;
    int32_t seg = 0;
    for (int64_t i : rows[static_cast<size_t>(r)]) {
      const Example& e = ex[static_cast<size_t>(i)];
      const int64_t n = inputs_of(i);
      place(e.tokens, e.trainable, b.inputs.data() + r * T + at, b.targets.data() + r * T + at, n);
      std::fill_n(b.segments.data() + r * T + at, n, ++seg);
      at += n;
    }
  }
  return b;
}

Batch InstructionDataset::sample(Split s, int64_t B, int64_t T, Generator& gen) const {
  if (B < 1) fail<ValueError>("InstructionDataset: batch size must be positive, got ", B);
  if (size(s) == 0)
    fail<ValueError>("InstructionDataset: the ", s == Split::train ? "training" : "validation",
                     " split has no examples");
  if (T < options_.max_length)
    fail<ValueError>("InstructionDataset: built for max_length ", options_.max_length, "; rows of ",
                     T, " tokens cannot hold its examples");
  const auto n = static_cast<uint64_t>(size(s));
  std::vector<int64_t> which;
  if (!options_.pack) {
    for (int64_t r = 0; r < B; ++r) which.push_back(static_cast<int64_t>(gen.below(n)));
    return make_batch(s, which, T);
  }
  // Draw until B rows are full: the example that would open row B + 1 is put back.
  int64_t rows = 1, used = 0;
  for (;;) {
    const auto i = static_cast<int64_t>(gen.below(n));
    const int64_t len = static_cast<int64_t>(split(s)[static_cast<size_t>(i)].tokens.size()) - 1;
    if (used + len > T) {
      if (rows == B) break;
      ++rows;
      used = 0;
    }
    which.push_back(i);
    used += len;
  }
  return make_batch(s, which, T);
}

Batch InstructionDataset::eval_batch(Split s, int64_t B, int64_t T, int64_t index) const {
  if (index < 0) fail<ValueError>("InstructionDataset: batch index must be >= 0, got ", index);
  if (size(s) == 0 || B < 1)
    fail<ValueError>("InstructionDataset: nothing to evaluate (", size(s), " examples, B = ", B,
                     ")");
  std::vector<int64_t> which;
  for (int64_t r = 0; r < B; ++r) which.push_back((index * B + r) % size(s));
  return make_batch(s, which, T);
}

std::string InstructionDataset::fingerprint() const {
  detail::Digest d;
  for (const auto* examples : {&train_, &val_}) {
    d.word(examples->size());
    for (const Example& e : *examples) {
      d.bytes(e.tokens.data(), e.tokens.size() * sizeof(int32_t));
      d.bytes(e.trainable.data(), e.trainable.size());
    }
  }
  d.word(static_cast<uint64_t>(pad_id_));
  d.word(static_cast<uint64_t>(max_token_));
  d.word(options_.pack ? 1 : 0);
  d.word(static_cast<uint64_t>(options_.max_length));
  return d.hex();
}

}  // namespace scholar::train
