// utf8_node.mjs — Node's buffer.isUtf8 (simdutf) on the same two 1 MiB
// inputs bench_core.c validates: the generator below mirrors gen_text() in
// bench/bench_core.c byte for byte (the printed fnv hashes must match).
// Run by `make bench-core` right after bench_core.
import { isUtf8 } from 'node:buffer';

let rng = 0;
function next() {
  rng ^= rng << 13; rng >>>= 0;
  rng ^= rng >>> 17;
  rng ^= rng << 5; rng >>>= 0;
  return rng;
}

function putUtf8(o, at, cp) {
  if (cp < 0x80) { o[at] = cp; return 1; }
  if (cp < 0x800) { o[at] = 0xc0 | (cp >> 6); o[at + 1] = 0x80 | (cp & 63); return 2; }
  if (cp < 0x10000) {
    o[at] = 0xe0 | (cp >> 12); o[at + 1] = 0x80 | ((cp >> 6) & 63); o[at + 2] = 0x80 | (cp & 63);
    return 3;
  }
  o[at] = 0xf0 | (cp >> 18); o[at + 1] = 0x80 | ((cp >> 12) & 63);
  o[at + 2] = 0x80 | ((cp >> 6) & 63); o[at + 3] = 0x80 | (cp & 63);
  return 4;
}

const latin = [0xe9, 0xe8, 0xfc, 0xf6, 0xe4, 0xf1, 0xe7, 0xe0, 0xdf, 0xf8];

function genText(n, mixed) {
  rng = 0x9e3779b9;
  const out = Buffer.alloc(n);
  let o = 0;
  while (o + 64 < n) {
    const kind = mixed ? next() % 100 : 0;
    const len = 2 + (next() % 7);
    for (let i = 0; i < len; i++) {
      const r = next();
      let cp;
      if (kind < 40) cp = 97 + (r % 26);
      else if (kind < 55) cp = (r & 3) === 0 ? latin[(r >>> 2) % 10] : 97 + ((r >>> 2) % 26);
      else if (kind < 70) cp = 0x3b1 + (r % 25);
      else if (kind < 90) cp = 0x4e00 + (r % 0x5000);
      else cp = 0x1f600 + (r % 0x50);
      o += putUtf8(out, o, cp);
    }
    out[o++] = next() % 12 === 0 ? 10 : 32;
  }
  while (o < n) out[o++] = 32;
  return out;
}

function fnv32(b) {
  let h = 2166136261;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function measure(buf) {
  let best = 0;
  let sink = 0;
  for (let rep = 0; rep < 3; rep++) {
    let calls = 0;
    const t0 = process.hrtime.bigint();
    let t;
    do {
      for (let k = 0; k < 16; k++) sink += isUtf8(buf) ? 1 : 0;
      calls += 16;
      t = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (t < 0.3);
    best = Math.max(best, (buf.length * calls) / t);
  }
  if (sink === 0) throw new Error('not valid');
  return best / 1e9;
}

const n = 1 << 20;
const ascii = genText(n, false);
const mixed = genText(n, true);
console.log(`utf8 inputs (node): ascii fnv=${fnv32(ascii)}, mixed fnv=${fnv32(mixed)}`);
console.log(`node isUtf8 ascii: ${measure(ascii).toFixed(2)} GB/s (buffer.isUtf8, Node ${process.versions.node})`);
console.log(`node isUtf8 mixed: ${measure(mixed).toFixed(2)} GB/s (buffer.isUtf8, Node ${process.versions.node})`);
