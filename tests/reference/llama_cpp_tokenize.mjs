// llama.cpp's tokenization (the build bundled in node-llama-cpp@3.21.1) of texts.
//   node tests/reference/llama_cpp_tokenize.mjs MODEL.gguf TEXTS.json [special]
// TEXTS.json holds an array of strings. Prints a JSON array with the token ids of each text (no BOS;
// special-token text is parsed into special tokens only with the third argument "special"). LLAMA_CPP_DIR names the directory made by
// tests/reference/get_llama_cpp.sh.
import {readFileSync} from "node:fs";
import {pathToFileURL} from "node:url";

const dir = process.env.LLAMA_CPP_DIR ?? "build/llama.cpp";
const {getLlama} = await import(
    pathToFileURL(`${dir}/node_modules/node-llama-cpp/dist/index.js`).href);

const [modelPath, textsPath, special] = process.argv.slice(2);
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, vocabOnly: true});
console.log(JSON.stringify(texts.map((t) => Array.from(model.tokenize(t, special === "special")))));
await model.dispose();
await llama.dispose();
