// Prompts with numbered sources under a token budget, and ask().
#include "scholar/rag/answer.hpp"

#include <algorithm>

#include "scholar/error.hpp"
#include "scholar/text/chat.hpp"
#include "scholar/text/utf8.hpp"

namespace scholar::rag {

namespace {

// Fills a template's fields in one pass, so that text containing "{question}" or the like is
// never expanded again.
std::string fill(std::string_view tmpl,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    bool hit = false;
    for (const auto& [key, value] : fields)
      if (tmpl.substr(i).starts_with(key)) {
        out += value;
        i += key.size();
        hit = true;
        break;
      }
    if (!hit) out.push_back(tmpl[i++]);
  }
  return out;
}

// The rendered prompt and its ids: the chat template's user turn when asked and available.
struct Rendered {
  std::string text;
  std::vector<int32_t> ids;
};

Rendered render(const std::string& body, const text::Tokenizer& tok, const PromptOptions& o) {
  std::optional<text::ChatTemplate> chat;
  if (!o.chat_format.empty())
    chat = text::ChatTemplate::from_name(o.chat_format);
  else if (o.use_chat_template)
    chat = text::ChatTemplate::detect(tok.chat_template());
  Rendered r;
  if (!chat) {
    r.text = body;  // as generate() encodes a text prompt: no BOS added
    r.ids = tok.encode(body);
    return r;
  }
  const text::ChatMessage user{"user", body};
  for (const text::ChatPiece& p : chat->render(std::span(&user, 1), true)) {
    if (p.kind == text::ChatPiece::Kind::bos) {
      if (tok.special_tokens().bos >= 0) r.ids.push_back(tok.special_tokens().bos);
    } else if (p.kind == text::ChatPiece::Kind::eos) {
      if (tok.special_tokens().eos >= 0) r.ids.push_back(tok.special_tokens().eos);
    } else {
      r.text += p.text;
      // Markers ("<|im_start|>") are special tokens; the body is plain text (a source that
      // contains a marker's text must not become one).
      const bool is_body = p.text.find(body) != std::string::npos;
      if (is_body) {
        const size_t at = p.text.find(body);
        const auto a = tok.encode_with_special(std::string_view(p.text).substr(0, at));
        const auto b = tok.encode(body);
        const auto c = tok.encode_with_special(std::string_view(p.text).substr(at + body.size()));
        for (const auto* part : {&a, &b, &c}) r.ids.insert(r.ids.end(), part->begin(), part->end());
      } else {
        const auto ids = tok.encode_with_special(p.text);
        r.ids.insert(r.ids.end(), ids.begin(), ids.end());
      }
    }
  }
  return r;
}

std::string source_text(const PromptOptions& o, const Source& s) {
  return fill(o.source_template, {{"{n}", std::to_string(s.n)},
                                  {"{document}", s.document_id},
                                  {"{source}", s.source},
                                  {"{text}", s.text}});
}

}  // namespace

Prompt build_prompt(std::string_view question, std::span<const Source> candidates,
                    const text::Tokenizer& tok, int64_t max_tokens, const PromptOptions& o) {
  if (max_tokens < 1) fail<ValueError>("build_prompt: max_tokens must be >= 1, got ", max_tokens);
  auto assemble = [&](const std::vector<Source>& sources) {
    std::string block;
    for (const Source& s : sources) block += source_text(o, s);
    return render(fill(o.prompt_template, {{"{sources}", block}, {"{question}", question}}), tok,
                  o);
  };
  Prompt p;
  Rendered r = assemble({});
  if (static_cast<int64_t>(r.ids.size()) > max_tokens)
    fail<ValueError>("build_prompt: the question takes ", r.ids.size(),
                     " tokens with the instructions, more than the ", max_tokens,
                     " the context leaves for the prompt; shorten the question");
  std::vector<Source> kept;
  for (size_t i = 0; i < candidates.size(); ++i) {
    Source s = candidates[i];
    s.n = static_cast<int>(kept.size()) + 1;
    s.cut = false;
    kept.push_back(s);
    Rendered with = assemble(kept);
    if (static_cast<int64_t>(with.ids.size()) <= max_tokens) {
      r = std::move(with);
      continue;
    }
    // Only part of it fits: the longest prefix (in characters) that does, found by bisection.
    std::vector<size_t> starts;  // byte offsets of character starts, and the end
    for (size_t b = 0; b < s.text.size(); b += text::decode_utf8(s.text, b).len)
      starts.push_back(b);
    starts.push_back(s.text.size());
    size_t lo = 0, hi = starts.size() - 1;  // lo chars fit (maybe 0), hi do not
    const std::string full = s.text;
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      kept.back().text = full.substr(0, starts[mid]);
      if (static_cast<int64_t>(assemble(kept).ids.size()) <= max_tokens)
        lo = mid;
      else
        hi = mid;
    }
    kept.back().text = full.substr(0, starts[lo]);
    kept.back().cut = true;
    const auto piece_tokens = static_cast<int64_t>(tok.encode(kept.back().text).size());
    if (lo == 0 || piece_tokens < o.min_source_tokens) {
      kept.pop_back();
    } else {
      r = assemble(kept);
    }
    p.left_out = candidates.size() - kept.size();
    break;
  }
  p.text = std::move(r.text);
  p.ids = std::move(r.ids);
  p.sources = std::move(kept);
  return p;
}

std::string Answer::with_sources() const {
  std::string out = text;
  if (sources.empty()) return out;
  out += "\n\nSources:\n";
  for (const Source& s : sources) {
    out += '[';
    out += std::to_string(s.n);
    out += "] ";
    out += s.document_id;
    if (!s.source.empty() && s.source != s.document_id) {
      out += " (";
      out += s.source;
      out += ')';
    }
    out += '\n';
  }
  return out;
}

Answer ask(const Store& store, std::shared_ptr<const infer::Model> model, std::string_view question,
           const AskOptions& o, const std::function<void(std::string_view)>& on_text) {
  if (!model) fail<ValueError>("rag::ask: no model");
  o.generation.validate();
  const text::Tokenizer& tok = model->tokenizer();
  infer::SessionOptions so;
  so.n_ctx = o.n_ctx;
  infer::Session session(model, so);
  const int64_t ctx = std::min(session.n_ctx(), model->arch().context_length);
  const int64_t budget = ctx - o.generation.max_new_tokens;
  if (budget < 1)
    fail<ValueError>("rag::ask: max_new_tokens ", o.generation.max_new_tokens,
                     " leaves no room for a prompt in a context of ", ctx);
  std::vector<Source> candidates;
  for (const SearchHit& h : store.search(question, o.search)) {
    const StoredChunk& c = store.chunk(h.chunk_id);
    const StoredDocument& d = store.document(c.document_id);
    candidates.push_back({0, c.id, c.document_id, d.source, c.text, h.score, false});
  }
  Prompt prompt = build_prompt(question, candidates, tok, budget, o.prompt);
  Answer a;
  a.sources = std::move(prompt.sources);
  a.prompt = std::move(prompt.text);
  a.generation = generate::generate(session, prompt.ids, o.generation, &tok,
                                    [&](const generate::StreamEvent& e) {
                                      if (on_text && !e.text.empty()) on_text(e.text);
                                      return true;
                                    });
  if (!a.generation.sequences.empty()) a.text = a.generation.sequences.front().text;
  return a;
}

}  // namespace scholar::rag
