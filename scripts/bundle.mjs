// Bundles the compiled daemon (dist/src, written by tsc) into dist/bundle/kata-proxy.cjs for
// bin/kata-proxy: one file instead of ~40 of ours and ~35 of pino's and commander's, which saves
// a pod's proxy ~18 % of its start-up CPU (module resolution and loading; see BENCHMARKS.md,
// "Pod start"). What is imported lazily stays in chunks of its own; native modules stay outside.
// CommonJS, started by dist/bundle/run.cjs: no ES module loader at start, and a built-in module
// is required as it is, where importing it from an ES module makes Node evaluate all of its
// exports (node:fs then loads its promises API, and with it readline).
// Without rolldown (vite's bundler, installed with vitest) nothing is bundled and bin/kata-proxy
// loads dist/src as before.
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asciiOnly, leanDependencies, staticGraph } from './lean-bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist', 'bundle');
const NATIVE = ['serialport', 'sd-notify', 'modern-syslog'];

let build;
try {
  ({ build } = await import('rolldown'));
} catch {
  process.stderr.write('kata-proxy: rolldown not installed; bin/kata-proxy will load dist/src unbundled\n');
  process.exit(0);
}
rmSync(outDir, { recursive: true, force: true });
const entry = join(root, 'dist', 'src', 'cli', 'main.js');
// A host's pod threads start from a file of their own (src/host/threads/pod-thread-link.ts finds it beside its chunk).
const podThread = join(root, 'dist', 'src', 'host', 'threads', 'pod-thread.js');
const startPath = staticGraph(entry);
await build({
  input: { 'kata-proxy': entry, 'pod-thread': podThread },
  platform: 'node',
  plugins: [leanDependencies],
  external: (id) => id.startsWith('node:') || NATIVE.some((n) => id === n || id.startsWith(`${n}/`) || id.startsWith('@serialport/')),
  logLevel: 'warn',
  output: {
    dir: outDir,
    format: 'cjs',
    entryFileNames: '[name].cjs',
    chunkFileNames: '[name].cjs',
    // One chunk for the start-up path (with pino and commander); what loads later keeps its own.
    codeSplitting: { groups: [{ name: 'start', test: (id) => startPath.has(id) || id.includes('/node_modules/') }] },
  },
});
for (const file of readdirSync(outDir)) {
  const path = join(outDir, file);
  const code = readFileSync(path, 'utf8');
  const ascii = asciiOnly(code);
  if (ascii !== code) writeFileSync(path, ascii);
}
// What bin/kata-proxy runs: the compile cache (Node 22.1 on) must be on before the bundle is read.
writeFileSync(
  join(outDir, 'run.cjs'),
  `'use strict';\n` +
    `// bin/kata-proxy's entry (scripts/bundle.mjs). V8's compiled code is cached beside the build, not in a shared /tmp: this runs as root.\n` +
    `require('node:module').enableCompileCache?.(require('node:path').join(__dirname, '..', '.compile-cache'));\n` +
    `require('./kata-proxy.cjs').main(process.argv.slice(2));\n`,
);
