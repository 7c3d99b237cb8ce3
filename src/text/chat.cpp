// Chat formats: recognition of Jinja templates by their markers, and native rendering.
#include "scholar/text/chat.hpp"

#include "scholar/error.hpp"

namespace scholar::text {

namespace {

constexpr std::string_view kNames[] = {"plain", "chatml", "llama2", "llama3", "zephyr"};

bool has(std::string_view s, std::string_view what) {
  return s.find(what) != std::string_view::npos;
}

// Python's str.strip() and Jinja's trim on ASCII whitespace.
std::string strip(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return "";
  return std::string(s.substr(a, s.find_last_not_of(ws) - a + 1));
}

// Concatenation without operator+ on literals (GCC 12 at -O3 warns falsely about it: PR 105651).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (std::string_view p : parts) s.append(p);
  return s;
}

// Appends a piece, merging it into the previous one when both are text of the same kind.
void put(std::vector<ChatPiece>& out, ChatPiece::Kind kind, std::string text, bool trainable) {
  if (kind == ChatPiece::Kind::text && !out.empty() && out.back().kind == kind &&
      out.back().trainable == trainable) {
    out.back().text += text;
    return;
  }
  out.push_back({kind, std::move(text), trainable});
}

}  // namespace

std::optional<ChatTemplate> ChatTemplate::detect(std::string_view j) {
  if (has(j, "<|im_start|>")) return ChatTemplate(ChatFormat::chatml);
  if (has(j, "<|start_header_id|>") && has(j, "<|eot_id|>"))
    return ChatTemplate(ChatFormat::llama3);
  if (has(j, "[INST]")) return ChatTemplate(ChatFormat::llama2);
  if (has(j, "<|user|>") && has(j, "<|assistant|>")) return ChatTemplate(ChatFormat::zephyr);
  return std::nullopt;
}

ChatTemplate ChatTemplate::from_name(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (kNames[i] == name) return ChatTemplate(static_cast<ChatFormat>(i));
  fail<ValueError>("chat template '", name,
                   "' is unknown (plain, chatml, llama2, llama3 or zephyr)");
}

std::string_view ChatTemplate::name() const noexcept {
  return kNames[static_cast<size_t>(format_)];
}

std::vector<ChatPiece> ChatTemplate::render(std::span<const ChatMessage> messages,
                                            bool add_generation_prompt) const {
  using K = ChatPiece::Kind;
  std::vector<ChatPiece> out;
  put(out, K::bos, "", false);
  std::string system;  // llama2 folds it into the first user turn
  bool first_user = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      fail<ValueError>("chat message ", i, ": role '", m.role,
                       "' (expected system, user or assistant)");
    if (m.role == "system" && i != 0)
      fail<ValueError>("chat message ", i, ": a system message must come first");
    const bool reply = m.role == "assistant";
    switch (format_) {
      case ChatFormat::plain:
        if (reply) {
          put(out, K::text, "### Assistant:\n", false);
          put(out, K::text, m.content, true);
          put(out, K::eos, "", true);
          put(out, K::text, "\n\n", false);
        } else {
          put(out, K::text,
              cat({m.role == "user" ? "### User:\n" : "### System:\n", m.content, "\n\n"}), false);
        }
        break;
      case ChatFormat::chatml:
        put(out, K::text, cat({"<|im_start|>", m.role, "\n"}), false);
        put(out, K::text, cat({m.content, "<|im_end|>"}), reply);
        put(out, K::text, "\n", false);
        break;
      case ChatFormat::llama3:
        put(out, K::text, cat({"<|start_header_id|>", m.role, "<|end_header_id|>\n\n"}), false);
        put(out, K::text, cat({strip(m.content), "<|eot_id|>"}), reply);
        break;
      case ChatFormat::zephyr:
        put(out, K::text, cat({"<|", m.role, "|>\n"}), false);
        put(out, K::text, m.content, reply);
        put(out, K::eos, "", reply);
        put(out, K::text, "\n", false);
        break;
      case ChatFormat::llama2:
        if (m.role == "system") {
          system = cat({"<<SYS>>\n", m.content, "\n<</SYS>>\n\n"});
        } else if (m.role == "user") {
          if (!first_user) put(out, K::bos, "", false);
          put(out, K::text, cat({"[INST] ", strip(cat({system, m.content})), " [/INST]"}), false);
          system.clear();
          first_user = false;
        } else {
          put(out, K::text, cat({" ", strip(m.content), " "}), true);
          put(out, K::eos, "", true);
        }
        break;
    }
  }
  if (add_generation_prompt) {
    switch (format_) {
      case ChatFormat::plain:
        put(out, K::text, "### Assistant:\n", false);
        break;
      case ChatFormat::chatml:
        put(out, K::text, "<|im_start|>assistant\n", false);
        break;
      case ChatFormat::llama3:
        put(out, K::text, "<|start_header_id|>assistant<|end_header_id|>\n\n", false);
        break;
      case ChatFormat::zephyr:
        put(out, K::text, "<|assistant|>\n", false);
        break;
      case ChatFormat::llama2:
        break;  // the reply follows [/INST] directly
    }
  }
  return out;
}

std::string ChatTemplate::prompt(std::span<const ChatMessage> messages) const {
  std::string s;
  for (const ChatPiece& p : render(messages, true))
    if (p.kind == ChatPiece::Kind::text) s += p.text;
  return s;
}

}  // namespace scholar::text
