// GPT-2 encoding speed of an npm tokenizer on a text file, as one JSON line:
//   node tokenize_npm.js gpt-3-encoder|tiktoken NODE_MODULES_DIR TEXT_FILE
// gpt-3-encoder is plain JavaScript; tiktoken is OpenAI's Rust tokenizer compiled to WebAssembly.
const fs = require('fs');
const path = require('path');
const [impl, modules, file] = process.argv.slice(2);
let encode;
if (impl === 'tiktoken') {
  const enc = require(path.join(modules, 'tiktoken')).get_encoding('gpt2');
  encode = (t) => enc.encode(t);
} else {
  encode = require(path.join(modules, 'gpt-3-encoder')).encode;
}
const text = fs.readFileSync(file, 'utf-8');
const bytes = Buffer.byteLength(text, 'utf-8');
const secs = [];
let ids = [];
for (let r = 0; r < 5; ++r) {
  const t0 = process.hrtime.bigint();
  ids = encode(text);
  secs.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
secs.sort((a, b) => a - b);
let hash = 0;  // the same rolling hash as tokenize.cpp, to check that the ids agree
for (const id of ids) hash = (Math.imul(hash, 31) + id) >>> 0;
console.log(JSON.stringify({ impl, mb_per_s: bytes / secs[2] / 1e6, tokens: ids.length, bytes, hash }));
