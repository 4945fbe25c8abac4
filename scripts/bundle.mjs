// Bundles the compiled daemon (dist/src, written by tsc) into dist/bundle/kata-proxy.js for
// bin/kata-proxy: one file instead of ~40 of ours and ~35 of pino's and commander's, which saves
// a pod's proxy ~18 % of its start-up CPU (module resolution and loading; see BENCHMARKS.md,
// "Pod start"). What is imported lazily stays in chunks of its own; native modules stay outside.
// Without rolldown (vite's bundler, installed with vitest) nothing is bundled and bin/kata-proxy
// loads dist/src as before.
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist', 'bundle');
const NATIVE = ['serialport', 'sd-notify', 'modern-syslog'];

/** Our modules the entry imports statically (import() excluded): they load at every start. */
function staticGraph(entry, seen = new Set()) {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const source = readFileSync(entry, 'utf8');
  for (const m of source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm)) {
    staticGraph(resolve(dirname(entry), m[1] ?? m[2]), seen);
  }
  return seen;
}

let build;
try {
  ({ build } = await import('rolldown'));
} catch {
  process.stderr.write('kata-proxy: rolldown not installed; bin/kata-proxy will load dist/src unbundled\n');
  process.exit(0);
}
rmSync(outDir, { recursive: true, force: true });
const entry = join(root, 'dist', 'src', 'cli', 'main.js');
const startPath = staticGraph(entry);
await build({
  input: entry,
  platform: 'node',
  external: (id) => id.startsWith('node:') || NATIVE.some((n) => id === n || id.startsWith(`${n}/`) || id.startsWith('@serialport/')),
  logLevel: 'warn',
  output: {
    dir: outDir,
    format: 'esm',
    entryFileNames: 'kata-proxy.js',
    chunkFileNames: '[name].js',
    // One chunk for the start-up path (with pino and commander); what loads later keeps its own.
    codeSplitting: { groups: [{ name: 'start', test: (id) => startPath.has(id) || id.includes('/node_modules/') }] },
  },
});
