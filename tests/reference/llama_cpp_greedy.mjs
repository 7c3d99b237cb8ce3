// Greedy continuations by llama.cpp (the build bundled in node-llama-cpp@3.21.1) of text prompts.
//   node tests/reference/llama_cpp_greedy.mjs MODEL.gguf N_TOKENS PROMPT...
// Prints one JSON object: {"prompts": [[ids]...], "greedy": [[ids]...]}: llama.cpp's own
// tokenization of each prompt (no BOS), then N_TOKENS tokens chosen by argmax, one context per
// prompt. LLAMA_CPP_DIR names the directory made by tests/reference/get_llama_cpp.sh.
import {pathToFileURL} from "node:url";

const dir = process.env.LLAMA_CPP_DIR ?? "build/llama.cpp";
const {getLlama} = await import(
    pathToFileURL(`${dir}/node_modules/node-llama-cpp/dist/index.js`).href);

const [modelPath, nText, ...prompts] = process.argv.slice(2);
const n = Number(nText);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const out = {prompts: [], greedy: []};
for (const text of prompts) {
  const ids = Array.from(model.tokenize(text, false));
  const context = await model.createContext({contextSize: 64, threads: 1});
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
