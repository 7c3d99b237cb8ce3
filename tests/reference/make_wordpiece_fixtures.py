#!/usr/bin/python3
"""Writes tests/data/wordpiece/: a BERT-style WordPiece vocabulary (tokenizer.json and vocab.txt)
and the ids a reference implementation gives for texts that cover accents, CJK, punctuation,
control characters and long words, under four normalizer settings; plus Unicode data (category,
lowercase, NFD) for a sample of code points.

Hugging Face's `tokenizers` is not packaged for Debian 12, so the reference below is written from
its rules (tokenizers/src/normalizers/bert.rs, pre_tokenizers/bert.rs, models/wordpiece) with
Python's unicodedata, independently of scholar's C++:
  - BertNormalizer: drop U+0000, U+FFFD and category C* except \\t \\n \\r; whitespace (those three
    and White_Space) becomes ' '; CJK ideographs get a space on each side; strip accents
    (strip_accents, or lowercase when unset): NFD then drop Mn; lowercase char by char.
  - BertPreTokenizer: split at whitespace (dropped) and around ASCII punctuation and P* (kept).
  - WordPiece: words longer than max_input_chars_per_word (chars) -> [UNK]; else greedy longest
    match from the start, continuations with '##'; any failure -> the whole word is [UNK].
  - Added special tokens are matched in the raw text before normalization (encode_with_special).

The vocabulary is built from the texts themselves plus the Jargon File (jargon.txt.gz) when installed (package
jargon-text): every character (word-initial and '##' forms), then frequent words and word endings.

Run: /usr/bin/python3 tests/reference/make_wordpiece_fixtures.py
"""
import collections
import gzip
import json
import os
import random
import re
import unicodedata

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "wordpiece")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Héllo Wörld — naïve café, résumé; Ångström ÉCOLE",
    "İstanbul'da ıslak ŞEHİR; Straße STRASSE; ΟΔΥΣΣΕΥΣ σοφός",
    "日本語のテキスト、東京タワー。中文字符：你好，世界！한국어 문장입니다",
    "混合mixed文本text和English",
    "tab\there\nnewline\r\nCRLF\u00a0nbsp\u2003emspace\u0085nel\u000bvt",
    "control\u0000null\u0007bell\u200bzwsp\u200dzwj\ufeffbom\ue000private\ufffdrepl",
    "punctuation: $100 + 50% = <tags> ^caret^ `tick` |pipe| ~tilde~ @home #hash & a_b",
    "quotes «guillemets» „low“ ‘single’ … ellipsis – en — em ¿qué? ¡sí!",
    "supercalifragilisticexpialidocious" * 4,
    "a" * 100 + " " + "b" * 101,
    "emoji 😀👍🏽 and symbols ™ © ® ° ± × ÷ € £ ¥",
    "Ελληνικά, Русский текст, עברית, العربية, हिन्दी",
    "hacker hackers hacking hacked unhackable HACKERDOM",
    "[CLS] special [SEP] tokens [MASK] in [UNK] text [PAD] [unused3]",
    "e\u0301 versus é; A\u030a versus Å; ﬁ ligature; Ⅻ roman; ½ fraction",
    "",
    "   ",
    "x",
    "don't can't it's we've they're I'm",
    "kludge cruft foo bar baz qux quux frobnicate grok wizard",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ １２３",
    "𠀀𠀁 extension-B ideographs 〇 ideographic zero 丽 compatibility",
]

CONFIGS = {
    "uncased": dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True),
    "cased": dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False),
    "strip_cased": dict(clean_text=True, handle_chinese_chars=False, strip_accents=True,
                        lowercase=False),
    "lower_keep_accents": dict(clean_text=False, handle_chinese_chars=True, strip_accents=False,
                               lowercase=True),
}

WHITE_SPACE = set([0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000] +
                  list(range(0x09, 0x0E)) + list(range(0x2000, 0x200B)))


def is_whitespace(c):
    return c in " \t\n\r" or ord(c) in WHITE_SPACE


def is_control(c):
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


def is_cjk(c):
    cp = ord(c)
    return any(a <= cp <= b for a, b in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                          (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
                                          (0x2B820, 0x2CEAF), (0xF900, 0xFAFF),
                                          (0x2F800, 0x2FA1F)])


def is_punct(c):
    cp = ord(c)
    if cp < 0x80:
        return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    return unicodedata.category(c).startswith("P")


def normalize(text, cfg):
    out = []
    for c in text:
        if cfg["clean_text"]:
            if c == "\0" or c == "\ufffd" or is_control(c):
                continue
            if is_whitespace(c):
                out.append(" ")
                continue
        if cfg["handle_chinese_chars"] and is_cjk(c):
            out += [" ", c, " "]
            continue
        out.append(c)
    s = "".join(out)
    strip = cfg["strip_accents"] if cfg["strip_accents"] is not None else cfg["lowercase"]
    if strip:
        s = "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")
    if cfg["lowercase"]:
        s = "".join(c.lower() for c in s)  # char by char: no final-sigma rule, as Rust's
    return s


def pre_tokenize(s):
    words, cur = [], ""
    for c in s:
        if is_whitespace(c) and ord(c) in WHITE_SPACE | {9, 10, 13, 32}:
            if cur:
                words.append(cur)
            cur = ""
        elif is_punct(c):
            if cur:
                words.append(cur)
            words.append(c)
            cur = ""
        else:
            cur += c
    if cur:
        words.append(cur)
    return words


def wordpiece(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return [vocab["[UNK]"]]
    out, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab["[UNK]"]]
        out.append(found)
        start = end
    return out


def encode(text, vocab, cfg):
    ids = []
    for w in pre_tokenize(normalize(text, cfg)):
        ids += wordpiece(w, vocab)
    return ids


def encode_with_special(text, vocab, cfg):
    pattern = "|".join(re.escape(t) for t in sorted(SPECIAL, key=len, reverse=True))
    ids, pos = [], 0
    for m in re.finditer(pattern, text):
        ids += encode(text[pos:m.start()], vocab, cfg)
        ids.append(vocab[m.group(0)])
        pos = m.end()
    return ids + encode(text[pos:], vocab, cfg)


def corpus_words():
    path = "/usr/share/doc/jargon-text/jargon.txt.gz"
    if not os.path.exists(path):
        return []
    text = gzip.open(path, "rt", encoding="latin-1").read()
    return re.findall(r"[A-Za-z]+", text.lower())


def build_vocab():
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(10)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = set(tokens)

    def add(t):
        if t and t not in seen:
            seen.add(t)
            tokens.append(t)

    chars = set()
    for cfg in CONFIGS.values():
        for t in TEXTS:
            chars.update(normalize(t, cfg))
    # Leave a few characters out so that [UNK] words occur.
    # Leave whitespace and control characters out (vocab.txt cannot hold them; BERT's has none).
    chars = {c for c in chars if not is_whitespace(c) and not unicodedata.category(c).startswith("C")}
    for c in sorted(chars - {"😀", "𠀁", "ק", "™"}):
        add(c)
        add("##" + c)
    words = collections.Counter(corpus_words())
    for w, _ in words.most_common(1200):
        add(w)
    endings = collections.Counter()
    for w, n in words.items():
        for k in (2, 3, 4):
            if len(w) > k + 1:
                endings[w[-k:]] += n
    for e, _ in endings.most_common(300):
        add("##" + e)
    for w in ["hello", "world", "quick", "brown", "lazy", "hack", "##er", "##ers", "##ing",
              "##ed", "##able", "un", "super", "##cal", "##if", "straße", "strasse", "istanbul",
              "café", "cafe", "naive", "resume", "ecole", "do", "##n", "'", "t", "日本", "東京",
              "you", "##r", "text", "english", "mixed", "tab", "here"]:
        add(w)
    return tokens


def unicode_sample():
    rng = random.Random(14)
    cps = set(range(0, 0x250)) | {0x130, 0x1E9E, 0x3A3, 0x2160, 0x1F600, 0xAC00, 0xD7A3, 0xD55C,
                                 0x1E0A, 0x1E9B, 0x0344, 0x0F73, 0x2126, 0x212B, 0xFB01, 0x10FFFF,
                                 0xE0001, 0x1D400, 0x20000}
    while len(cps) < 2600:
        cp = rng.randrange(0x110000)
        if not 0xD800 <= cp <= 0xDFFF:
            cps.add(cp)
    rows = []
    for cp in sorted(cps):
        c = chr(cp)
        rows.append([cp, unicodedata.category(c), [ord(x) for x in c.lower()],
                     [ord(x) for x in unicodedata.normalize("NFD", c)]])
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab_list = build_vocab()
    vocab = {t: i for i, t in enumerate(vocab_list)}
    with open(os.path.join(OUT, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab_list) + "\n")
    # tokenizer.json as Hugging Face writes it for bert-base-uncased / all-MiniLM-L6-v2.
    tj = {
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 128, "strategy": "LongestFirst",
                       "stride": 0},
        "padding": None,
        "added_tokens": [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for t in SPECIAL],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]}
                               for t in ["[CLS]", "[SEP]"]}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    cases = {"texts": TEXTS, "configs": {}, "unicode": unicode_sample()}
    for name, cfg in CONFIGS.items():
        cases["configs"][name] = {
            "options": cfg,
            "normalized": [normalize(t, cfg) for t in TEXTS],
            "words": [pre_tokenize(normalize(t, cfg)) for t in TEXTS],
            "ids": [encode(t, vocab, cfg) for t in TEXTS],
            "ids_with_special": [encode_with_special(t, vocab, cfg) for t in TEXTS],
        }
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    print(f"{len(vocab_list)} tokens, {len(TEXTS)} texts x {len(CONFIGS)} settings, "
          f"{len(cases['unicode'])} code points")


if __name__ == "__main__":
    main()
