#!/usr/bin/python3
"""Expected BM25 scores for tests/rag/test_bm25.cpp, computed from the textbook formula in plain
Python (no search library), independently of scholar's C++:

    score(D, Q) = sum over the terms t of Q (repeats included) of
                  idf(t) * tf(t, D) * (k1 + 1) / (tf(t, D) + k1 * (1 - b + b * |D| / avgdl))
    idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))                      (Lucene's idf)

The analyzer is the one scholar documents (rag/bm25.hpp), written here from Python's unicodedata
(Unicode 14.0 in Debian 12's Python 3.11, the version scholar's tables come from): lowercase
character by character (full mappings, no final-sigma rule), runs of letters and numbers (with the
marks that follow them) are terms, each CJK ideograph is a term of its own, stopwords are dropped.

Writes tests/data/rag/bm25_fixture.json: the documents, and per scenario (parameters, stopwords)
every query's matching documents with their scores, best first; plus the terms of a few texts.
usage: /usr/bin/python3 tests/reference/make_bm25_fixtures.py
"""
import json
import math
import os
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "data", "rag", "bm25_fixture.json"))

# (id, text): short texts on a few topics, so terms repeat within and across documents; ids are
# not dense and some are above 2^32.
DOCS = [
    (1, "Virtual memory lets a process use more memory than the machine has, by paging memory to disk."),
    (2, "A swap file holds pages of virtual memory that were moved out of physical memory."),
    (3, "The kernel schedules processes; each process has its own address space."),
    (5, "Paging: the memory manager moves fixed-size pages between RAM and the swap device."),
    (8, "A compiler translates source code into machine code. "
        "An interpreter runs source code directly."),
    (13, "Lisp is a family of programming languages with a fully parenthesized prefix notation."),
    (21, "The C programming language was designed by Dennis Ritchie at Bell Labs."),
    (34, "C++ adds classes, templates and exceptions to the C language."),
    (55, "Garbage collection frees memory that a program no longer uses."),
    (89, "Reference counting is a simple form of garbage collection; cycles defeat it."),
    (144, "Bake the bread at 220 degrees for 30 minutes, then let the bread cool."),
    (233, "Sourdough bread needs a starter, flour, water and salt, and a long slow rise."),
    (377, "Café au lait: coffee with hot milk. Crème brûlée is a dessert with a burnt sugar crust."),
    (610, "Le café est une boisson; le thé aussi. Où est le café ? Le café est ici."),
    (987, "Straße und Fluss: Die Straße führt am Fluss entlang zur Brücke über den Fluss."),
    (1597, "Ελληνικά: η ΜΝΗΜΗ του υπολογιστή. Η μνήμη είναι γρήγορη."),
    (2584, "Виртуальная память позволяет процессу использовать больше памяти. Память — это ресурс."),
    (4181, "虚拟内存让进程使用比物理内存更多的内存。"),
    (6765, "内存管理器在内存和磁盘之间移动页面。"),
    (10946, "東京は日本の首都です。東京タワーは有名です。"),
    (17711, "ひらがなとカタカナ：プログラミング言語のリスト。"),
    (28657, "कंप्यूटर की मेमोरी तेज़ होती है। मेमोरी महत्वपूर्ण है।"),
    (46368, "İstanbul ve Ankara: İSTANBUL büyük bir şehirdir."),
    (75025, "Numbers: 42 apples, 42 pears, 7 plums and 1984 by Orwell; version 2.0 and v2."),
    (121393, "memory memory memory memory memory"),
    (196418, "A long document about many things: cooking, memory, bread, coffee, languages, kernels, "
             "compilers, paging, processes, garbage, collection, the sea, the mountains, the sky, "
             "and a few more words so that this document is much longer than the average one here."),
    (317811, ""),
    (514229, "!!! ??? ... --- ***"),
    (832040, "The the THE tHe the."),
    (1346269, "Emoji are not words 🙂🙂 but words around them 🍞bread🍞 are."),
    (2178309, "Naïve café, naïve résumé, naïve coöperation."),
    (3524578, "Nai\u0308ve cafe\u0301 with combining marks: nai\u0308ve again."),
    (5702887, "Memory-mapped files: mmap maps a file into the address space of a process."),
    (9227465, "Disk caches keep recently used disk blocks in memory."),
    (4294967296, "An id above 2^32: memory paging bread café 内存."),
    (4294967311, "Another large id: the kernel, the compiler and the interpreter."),
]

QUERIES = [
    "memory",
    "virtual memory",
    "memory memory",
    "swap file paging",
    "bread",
    "sourdough bread starter",
    "café",
    "CAFÉ crème",
    "naïve",
    "nai\u0308ve",
    "straße fluss",
    "μνήμη",
    "память",
    "内存",
    "虚拟内存",
    "东京",
    "東京",
    "メモリ",
    "मेमोरी",
    "istanbul",
    "i̇stanbul",
    "42",
    "c programming language",
    "garbage collection memory",
    "the",
    "process address space",
    "kernel compiler interpreter",
    "unknownword",
    "",
    "!!!",
    "🙂 bread",
    "the bread of the sea",
]

SCENARIOS = [
    {"name": "default", "k1": 1.5, "b": 0.75, "stopwords": []},
    {"name": "k1_1.2_b_0.5_stopwords", "k1": 1.2, "b": 0.5,
     "stopwords": ["The", "a", "of", "and", "le"]},
    {"name": "k1_0_b_1", "k1": 0.0, "b": 1.0, "stopwords": []},
]

ANALYZE = [
    "Hello, World! hello-world",
    "Café crème brûlée",
    "Nai\u0308ve",
    "虚拟内存ABC東京",
    "İstanbul ΣΊΣΥΦΟΣ",
    "x86_64 v2.0 C++",
    "ひらがなカタカナ",
    "कंप्यूटर",
]


def is_cjk_ideograph(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def lower(s):
    return "".join(ch.lower() for ch in s)


def analyze(text, stopwords):
    stop = {lower(w) for w in stopwords}
    terms, run = [], ""
    for ch in lower(text):
        cat = unicodedata.category(ch)
        if is_cjk_ideograph(ord(ch)):
            if run:
                terms.append(run)
            run = ""
            terms.append(ch)
        elif cat[0] in "LN" or (run and cat[0] == "M"):
            run += ch
        else:
            if run:
                terms.append(run)
            run = ""
    if run:
        terms.append(run)
    return [t for t in terms if t not in stop]


def scores(docs, query, k1, b, stopwords):
    analyzed = {i: analyze(t, stopwords) for i, t in docs}
    n_docs = len(docs)
    avgdl = sum(len(t) for t in analyzed.values()) / n_docs
    df = {}
    for terms in analyzed.values():
        for t in set(terms):
            df[t] = df.get(t, 0) + 1
    out = {}
    for i, terms in analyzed.items():
        s, matched = 0.0, False
        for q in analyze(query, stopwords):
            tf = terms.count(q)
            if tf == 0:
                continue
            matched = True
            idf = math.log(1 + (n_docs - df[q] + 0.5) / (df[q] + 0.5))
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(terms) / avgdl))
        if matched:
            out[i] = s
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def main():
    fixture = {
        "documents": [{"id": i, "text": t} for i, t in DOCS],
        "analyzer": [{"text": t, "terms": analyze(t, [])} for t in ANALYZE],
        "scenarios": [],
    }
    for sc in SCENARIOS:
        entry = dict(sc)
        entry["queries"] = []
        for q in QUERIES:
            hits = scores(DOCS, q, sc["k1"], sc["b"], sc["stopwords"])
            entry["queries"].append({"query": q, "hits": [[i, s] for i, s in hits]})
        fixture["scenarios"].append(entry)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, unicodedata {unicodedata.unidata_version})")


if __name__ == "__main__":
    main()
