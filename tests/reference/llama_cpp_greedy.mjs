// Greedy continuations by llama.cpp (the build bundled in node-llama-cpp@3.21.1) of text prompts.
//   node tests/reference/llama_cpp_greedy.mjs [--exact] [--lora ADAPTER.gguf] MODEL.gguf N_TOKENS PROMPT...
// Without --exact, contexts use node-llama-cpp's defaults: an F16 KV cache and flash attention
// ("auto", which is on for the CPU), accumulated in f16. --exact asks for an F32 cache and no flash
// attention, so that attention is computed in f32 as scholar computes it. Prints one JSON object:
// {"prompts": [[ids]...], "greedy": [[ids]...]}: llama.cpp's own tokenization of each prompt (no
// BOS), then up to N_TOKENS tokens chosen by argmax, one context per prompt. LLAMA_CPP_DIR names the directory made by tests/reference/get_llama_cpp.sh.
import {pathToFileURL} from "node:url";

const dir = process.env.LLAMA_CPP_DIR ?? "build/llama.cpp";
const {getLlama} = await import(
    pathToFileURL(`${dir}/node_modules/node-llama-cpp/dist/index.js`).href);

const args = process.argv.slice(2);
const exact = args[0] === "--exact";
if (exact) args.shift();
let lora = null;  // a LoRA adapter applied at scale 1
if (args[0] === "--lora") {
  lora = args[1];
  args.splice(0, 2);
}
const [modelPath, nText, ...prompts] = args;
const contextOptions = exact
    ? {flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"}
    : {};
const n = Number(nText);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const out = {prompts: [], greedy: []};
for (const text of prompts) {
  const ids = Array.from(model.tokenize(text, false));
  const context = await model.createContext({
    contextSize: 64, threads: 1, ...contextOptions,
    ...(lora ? {lora: {adapters: [{filePath: lora, scale: 1}]}} : {})});
  const sequence = context.getSequence();
  const got = [];
  for await (const token of sequence.evaluate(ids, {temperature: 0})) {
    got.push(token);
    if (got.length >= n) break;
  }
  out.prompts.push(ids);
  out.greedy.push(got);
  await context.dispose();
}
console.log(JSON.stringify(out));
await model.dispose();
await llama.dispose();
