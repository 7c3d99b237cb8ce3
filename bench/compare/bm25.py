#!/usr/bin/python3
"""BM25 keyword search: scholar's rag::Bm25Index beside SQLite FTS5 and Xapian, on the same chunks and
queries, one thread each.

The chunks are FOLDOC's entries (Debian's dict-foldoc) as rag::load_documents reads them, cut by
rag::Splitter into chunks of at most 1,000 characters with 100 of overlap; bm25_bench builds our index
and writes the chunks out, and the other two index those same texts:

- SQLite FTS5 (python3's sqlite3): tokenizer unicode61 with diacritics kept, ranked by its built-in
  bm25() (k1 = 1.2, b = 0.75, fixed in SQLite), "ORDER BY rank LIMIT k".
- Xapian (python3-xapian, glass backend on disk): TermGenerator without a stemmer and without
  positions, BM25Weight(k1 = 1.5, k2 = 0, k3 = 1, b = 0.75, min_normlen = 0.5), get_mset(0, k).
- scholar: k1 = 1.5, b = 0.75, Lucene's idf; the index saved by the first run is loaded by the others.

Queries are OR queries of 1 to 4 lowercase ASCII words (so that every engine's tokenizer sees the same
terms): half are entry headwords, half are words drawn from entry texts (seeded). Every engine answers
every query in each round; the rounds alternate the order (A B C, C B A, ...) so that a drift in the
machine's speed touches all alike. scholar runs in its own process (one untimed pass, then one timed
pass per round); FTS5 and Xapian run in this Python process after one untimed pass, so their times
include a Python call per query: the "python floor" line (SQLite's "SELECT 1" per query) shows how
much that is.

Reports per engine the median queries/s over the rounds, scholar's speed as a multiple of each other
engine's (median of the per-round ratios), and how much each engine's top-k agrees with scholar's
(mean |A & B| / max(|A|, |B|) over the queries, and how often the first result is the same).

usage: bench/compare/bm25.py BUILD_DIR [--dict FILE] [--queries 2000] [--rounds 3] [--k 10]
                             [--engines scholar,fts5,xapian] [--seed 1] [--limit N]
Needs bm25_bench built in BUILD_DIR (cmake --build BUILD_DIR --target bm25_bench) and
scripts/deps.sh bench (python3-xapian, dict-foldoc). Work files go to BUILD_DIR/bench_bm25/."""
import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("build_dir")
ap.add_argument("--dict", default="/usr/share/dictd/foldoc.dict.dz")
ap.add_argument("--queries", type=int, default=2000)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--k", type=int, default=10)
ap.add_argument("--engines", default="scholar,fts5,xapian")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--limit", type=int, default=0, help="index only the first N entries (smoke runs)")
args = ap.parse_args()

binary = os.path.join(args.build_dir, "bench", "bm25_bench")
if not os.path.exists(binary):
    sys.exit(f"build bm25_bench first: cmake --build {args.build_dir} --target bm25_bench")
engines = args.engines.split(",")
if "scholar" not in engines:
    sys.exit("--engines must include scholar (the others are compared with it)")
work = os.path.join(os.path.abspath(args.build_dir), "bench_bm25")
os.makedirs(work, exist_ok=True)
chunks_path = os.path.join(work, "chunks.jsonl")
index_path = os.path.join(work, "scholar.bm25")
queries_path = os.path.join(work, "queries.txt")

# --- scholar builds its index and writes the chunks -------------------------------------------------
build = [binary, "--dict", args.dict, "--index", index_path, "--chunks-out", chunks_path]
if args.limit:
    build += ["--limit", str(args.limit)]
built = {"scholar": json.loads(subprocess.run(build, check=True, capture_output=True, text=True).stdout)}
chunks = [json.loads(line) for line in open(chunks_path, encoding="utf-8")]
print(f"{built['scholar']['documents']} entries of {args.dict} -> {len(chunks)} chunks, "
      f"{built['scholar']['terms']} terms", file=sys.stderr)

# --- queries ----------------------------------------------------------------------------------------
word = re.compile(r"[a-z0-9]+")
rng = random.Random(args.seed)
queries = []
while len(queries) < args.queries:
    c = chunks[rng.randrange(len(chunks))]
    if len(queries) % 2 == 0:
        words = word.findall(c["headword"].lower())[:4]
    else:
        ws = word.findall(c["text"].lower())
        words = rng.sample(ws, min(len(ws), rng.choice([1, 2, 3]))) if ws else []
    if words:
        queries.append(words)
with open(queries_path, "w") as f:
    for q in queries:
        f.write(" ".join(q) + "\n")


# --- the engines --------------------------------------------------------------------------------------
def scholar_round():
    out = subprocess.run([binary, "--index", index_path, "--queries", queries_path, "--k", str(args.k),
                          "--passes", "1"], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["qps"][0], r["top"]


class Fts5:
    def __init__(self):
        path = os.path.join(work, "fts5.db")
        if os.path.exists(path):
            os.remove(path)
        t0 = time.perf_counter()
        self.con = sqlite3.connect(path)
        self.con.execute("CREATE VIRTUAL TABLE chunks USING fts5(text, "
                         "tokenize = 'unicode61 remove_diacritics 0')")
        self.con.executemany("INSERT INTO chunks(rowid, text) VALUES (?, ?)",
                             ((c["id"], c["text"]) for c in chunks))
        self.con.commit()
        self.build_s = time.perf_counter() - t0
        self.sql = "SELECT rowid FROM chunks WHERE chunks MATCH ? ORDER BY rank LIMIT ?"
        self.matches = [" OR ".join(f'"{w}"' for w in q) for q in queries]

    def search_all(self):
        return [[r[0] for r in self.con.execute(self.sql, (m, args.k))] for m in self.matches]


class Xapian:
    def __init__(self):
        import xapian
        self.xapian = xapian
        path = os.path.join(work, "xapian")
        shutil.rmtree(path, ignore_errors=True)
        t0 = time.perf_counter()
        db = xapian.WritableDatabase(path, xapian.DB_CREATE_OR_OVERWRITE)
        tg = xapian.TermGenerator()
        for c in chunks:
            doc = xapian.Document()
            tg.set_document(doc)
            tg.index_text_without_positions(c["text"])
            db.replace_document(c["id"] + 1, doc)  # Xapian's document ids start at 1
        db.commit()
        db.close()
        self.build_s = time.perf_counter() - t0
        self.enquire = xapian.Enquire(xapian.Database(path))
        self.enquire.set_weighting_scheme(xapian.BM25Weight(1.5, 0, 1, 0.75, 0.5))
        self.queries = [xapian.Query(xapian.Query.OP_OR, q) for q in queries]

    def search_all(self):
        out = []
        for q in self.queries:
            self.enquire.set_query(q)
            out.append([m.docid - 1 for m in self.enquire.get_mset(0, args.k)])
        return out


python_engines = {}
for e in engines:
    if e == "fts5":
        python_engines[e] = Fts5()
    elif e == "xapian":
        python_engines[e] = Xapian()
    elif e != "scholar":
        sys.exit(f"unknown engine {e} (scholar, fts5, xapian)")
    if e in python_engines:
        built[e] = {"build_s": python_engines[e].build_s}
        python_engines[e].search_all()  # untimed pass: caches warm, as scholar's is


def python_round(e):
    t0 = time.perf_counter()
    top = python_engines[e].search_all()
    return len(queries) / (time.perf_counter() - t0), top


floor_con = sqlite3.connect(":memory:")
t0 = time.perf_counter()
for _ in queries:
    floor_con.execute("SELECT 1").fetchall()
floor_us = (time.perf_counter() - t0) / len(queries) * 1e6

qps = {e: [] for e in engines}
top = {}
for r in range(args.rounds):
    order = engines if r % 2 == 0 else list(reversed(engines))
    for e in order:
        q, t = scholar_round() if e == "scholar" else python_round(e)
        qps[e].append(q)
        top[e] = t
        print(f"  round {r + 1} {e}: {q:,.0f} queries/s", file=sys.stderr, flush=True)


def agreement(a_lists, b_lists):
    overlaps, first = [], 0
    for a, b in zip(a_lists, b_lists):
        if a or b:
            overlaps.append(len(set(a) & set(b)) / max(len(a), len(b)))
        first += bool(a) and bool(b) and a[0] == b[0]
    return statistics.mean(overlaps) if overlaps else 0.0, first / len(a_lists)


versions = {"scholar": "k1 1.5, b 0.75", "fts5": f"SQLite {sqlite3.sqlite_version}, k1 1.2, b 0.75"}
if "xapian" in python_engines:
    versions["xapian"] = f"Xapian {python_engines['xapian'].xapian.version_string()}, k1 1.5, b 0.75"
print(f"\n{len(queries)} queries ({args.k} results each), {len(chunks)} chunks, {args.rounds} rounds; "
      f"python floor (SQLite 'SELECT 1' per query): {floor_us:.1f} us\n")
print(f"| engine | build (s) | queries/s (median) | scholar / engine | top-{args.k} overlap "
      "| same first |")
print("|---|---|---|---|---|---|")
for e in engines:
    med = statistics.median(qps[e])
    ratio = statistics.median(s / o for s, o in zip(qps["scholar"], qps[e]))
    overlap, first = agreement(top["scholar"], top[e])
    print(f"| {e} ({versions.get(e, '')}) | {built[e]['build_s']:.2f} | {med:,.0f} | {ratio:.2f}x | "
          f"{overlap:.3f} | {first:.3f} |")
with open(os.path.join(work, "results.json"), "w") as f:
    json.dump({"qps": qps, "build": built, "python_floor_us": floor_us, "queries": len(queries),
               "chunks": len(chunks), "k": args.k}, f, indent=1)
