// Checks a built wasm module: size within budget, no WASI (or any
// non-"env") imports. Usage: node tests/tools/check-wasm.mjs FILE MAXBYTES
import { readFileSync } from 'node:fs';
const [file, max] = process.argv.slice(2);
const bytes = readFileSync(file);
const mod = new WebAssembly.Module(bytes);
const imports = WebAssembly.Module.imports(mod);
const bad = imports.filter((i) => i.module !== 'env');
let ok = true;
if (bad.length) {
  console.error(`${file}: forbidden imports: ${bad.map((i) => `${i.module}.${i.name}`).join(', ')}`);
  ok = false;
}
if (bytes.length > Number(max)) {
  console.error(`${file}: ${bytes.length} bytes, over the ${max}-byte budget`);
  ok = false;
}
console.log(`${file}: ${bytes.length} bytes (budget ${max}), imports: ${imports.map((i) => `${i.module}.${i.name}`).join(', ') || 'none'}, exports: ${WebAssembly.Module.exports(mod).length}`);
process.exit(ok ? 0 : 1);
