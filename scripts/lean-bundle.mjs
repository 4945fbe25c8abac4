// What bundle.mjs and snapshot.mjs both do to the daemon's code beyond bundling it: a per-pod
// proxy loads all of it at every pod start (BENCHMARKS.md, "Pod start").
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** Our modules the entry imports statically (import() excluded): they load at every start. */
export function staticGraph(entry, seen = new Set()) {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const source = readFileSync(entry, 'utf8');
  for (const m of source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'|^\s*import\s+'(\.[^']+)'/gm)) {
    staticGraph(resolve(dirname(entry), m[1] ?? m[2]), seen);
  }
  return seen;
}

/**
 * A single-file CommonJS bundle (the snapshot's) requires at its top every built-in module any of
 * our modules imports, also those only host mode or the demo imports lazily (crypto,
 * fs/promises, child_process...): loaded while the snapshot is built, they would be part of every
 * pod's start. Those the start path (`startPath`, staticGraph) does not import are required on
 * first use instead.
 */
export function lazyBuiltins(code, startPath) {
  let lazy = false;
  const eager = new Set();
  for (const file of startPath) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*import\s[^;]*?from\s+'node:([\w/]+)'/gm)) eager.add(m[1]);
  }
  const rewritten = code.replace(/^let (node_\w+) = require\("node:([\w/]+)"\);$/gm, (line, name, id) => {
    // A default import is wrapped (__toESM) right away, which reads every export: left as it is.
    if (eager.has(id) || code.includes(`\n${name} = __toESM(${name}`)) return line;
    lazy = true;
    return `let ${name} = __kataProxyLazyBuiltin("node:${id}");`;
  });
  const helper =
    'function __kataProxyLazyBuiltin(id) {\n' +
    '  let loaded;\n' +
    '  return new Proxy({}, { get: (_, name) => (loaded ??= require(id))[name] });\n' +
    '}\n';
  return lazy ? helper + rewritten : code;
}

/**
 * Parts of pino and commander this program never uses, replaced in the bundle by stubs: they
 * would load Node's worker_threads, assert, child_process and dgram at every start (~3 ms of CPU
 * on Node 24). pino's transports (thread-stream) and its own destinations (sonic-boom): records
 * go to src/log's writer, never to a pino stream; pino asks worker_threads only whether it runs
 * on the main thread, to flush its own destinations at exit. commander's child_process runs
 * executable subcommands, which this program has none of; it is loaded if ever asked for.
 */
const STUBS = {
  'thread-stream': "module.exports = function ThreadStream() { throw new Error('pino transports are not part of this build'); };",
  'sonic-boom': "module.exports = function SonicBoom() { throw new Error('pino destinations are not part of this build'); };",
  worker_threads: 'module.exports = { isMainThread: true };',
};
const STUBBED = { '/pino/': ['thread-stream', 'sonic-boom', 'worker_threads'] };
const LAZY_CHILD_PROCESS = "new Proxy({}, { get: (_, name) => require('node:child_process')[name] })";

export const leanDependencies = {
  name: 'kata-proxy-lean-dependencies',
  resolveId(id, importer) {
    if (!importer) return null;
    const bare = id.replace(/^node:/, '');
    for (const [dir, names] of Object.entries(STUBBED)) {
      if (importer.includes(`/node_modules${dir}`) && names.includes(bare)) return `\0kata-proxy-stub:${bare}`;
    }
    return null;
  },
  load(id) {
    return id.startsWith('\0kata-proxy-stub:') ? STUBS[id.slice('\0kata-proxy-stub:'.length)] : null;
  },
  // A node: built-in never reaches resolveId (the bundler keeps it external), so commander's is
  // made lazy in its source.
  transform(code, id) {
    if (!id.includes('/node_modules/commander/')) return null;
    const lazy = code.replaceAll("require('node:child_process')", LAZY_CHILD_PROCESS);
    return lazy === code ? null : { code: lazy, map: null };
  },
};

/**
 * The code with every non-ASCII character written as a \u escape (valid in strings, templates,
 * regular expressions, comments and identifiers alike). One such character (pino has an en dash
 * in a message) makes V8 hold the whole file as two-byte text: decoded from UTF-8 at every load,
 * encoded back for the compile cache's checksum, twice the memory, a slower scan.
 */
export function asciiOnly(code) {
  return code.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
