// Builds a V8 startup snapshot of the daemon for the node that runs this script (npm run build,
// after bundle.mjs): dist/snapshot/kata-proxy.blob, with everything the daemon loads at start
// already evaluated in it, so a pod's proxy skips compiling and running ~10,000 lines of
// module code (BENCHMARKS.md, "Pod start"). bin/kata-proxy uses it when the node on PATH is the
// very binary that built it (dist/snapshot/kata-proxy.node: its path, device, inode, size,
// mtime and ctime, the package root, and the V8 flags it was built with: a snapshot only loads
// into the node and V8 flags that made it) and falls back to the bundle otherwise. Without rolldown, or when node cannot build
// it, there is no snapshot and bin/kata-proxy runs the bundle.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asciiOnly, lazyBuiltins, leanDependencies, staticGraph } from './lean-bundle.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist', 'snapshot');
const entry = join(outDir, 'kata-proxy.cjs');
const blob = join(outDir, 'kata-proxy.blob');
const NATIVE = ['serialport', 'sd-notify', 'modern-syslog'];

/** The V8 flags bin/kata-proxy starts node with: the snapshot must be built with the same ones. */
export function launcherFlags() {
  const m = /^flags='([^']*)'$/m.exec(readFileSync(join(root, 'bin', 'kata-proxy'), 'utf8'));
  if (!m) throw new Error("bin/kata-proxy has no flags='...' line");
  return m[1].split(/\s+/).filter(Boolean);
}

/** What bin/kata-proxy compares (`stat -L -c %d:%i:%s:%Y:%Z`) before it uses the snapshot. */
function identityOf(path) {
  const s = statSync(path);
  return `${s.dev}:${s.ino}:${s.size}:${Math.floor(s.mtimeMs / 1000)}:${Math.floor(s.ctimeMs / 1000)}`;
}

function fail(why) {
  process.stderr.write(`kata-proxy: no startup snapshot (${why}); bin/kata-proxy will start from the bundle\n`);
  process.exit(0);
}

rmSync(outDir, { recursive: true, force: true });
let build;
try {
  ({ build } = await import('rolldown'));
} catch {
  fail('rolldown not installed');
}
mkdirSync(outDir, { recursive: true });
// One CommonJS file: a snapshot is built from a single script that can require only built-ins.
// What the daemon imports lazily stays lazy (rolldown wraps it); native add-ons and node:http are
// loaded at run time by the code that needs them, never while the snapshot is built.
const input = join(root, 'dist', 'src', 'cli', 'main.js');
const bundled = await build({
  input,
  platform: 'node',
  plugins: [leanDependencies],
  external: (id) => id.startsWith('node:') || NATIVE.some((n) => id === n || id.startsWith(`${n}/`) || id.startsWith('@serialport/')),
  logLevel: 'warn',
  write: false,
  output: { format: 'cjs', codeSplitting: false },
});
const code = lazyBuiltins(asciiOnly(bundled.output[0].code), staticGraph(input));
writeFileSync(
  entry,
  `'use strict';\nconst kataProxy = {};\n(function (exports) {\n${code}\n})(kataProxy);\n` +
    // The command-line program is built into the snapshot, and the start's first steps compiled in
    // it (src/cli/start-warm-up.ts). The runtime's argv follows "--" (so
    // node takes none of it for its own): process.argv[1] on.
    `kataProxy.prepareStart();\n` +
    `require('node:v8').startupSnapshot.setDeserializeMainFunction(() => kataProxy.main(process.argv.slice(1)));\n`,
);
const node = realpathSync(process.execPath);
// From Node 24 on, --max-semi-space-size costs a snapshot start ~20 ms of CPU (V8 then rejects the
// code cache of Node's own modules) and saves ~2 KiB per idle connection: left out there.
const major = Number(process.versions.node.split('.')[0]);
const flags = launcherFlags().filter((f) => major < 24 || !f.startsWith('--max-semi-space-size'));
try {
  execFileSync(node, [...flags, '--snapshot-blob', blob, '--build-snapshot', entry], {
    cwd: outDir,
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
} catch (err) {
  rmSync(outDir, { recursive: true, force: true });
  fail(`${node} --build-snapshot failed: ${String(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' ')}`);
}
// Four lines for `read -r` in bin/kata-proxy: the node, its identity, the package, the node flags.
writeFileSync(join(outDir, 'kata-proxy.node'), `${node}\n${identityOf(node)}\n${realpathSync(root)}\n${flags.join(' ')}\n`);
