// The per-pod daemon's start path (issue 17): what it loads, and from where it starts. A daemon
// is started as the runtime starts it, serves one exchange, and then reports the built-in
// modules it loaded (a preload that writes process.moduleLoadList on SIGUSR2). bin/kata-proxy
// starts from the V8 startup snapshot when the node on PATH built it, and from the bundle when
// anything does not match.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLive } from '../../src/proxy/listener.js';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { echoChecked } from '../helpers/clients.js';
import { BIN, runtimeArgv } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/go-peer.js';
import { createTempDir } from '../helpers/tmp.js';

const SNAPSHOT = join(REPO_ROOT, 'dist', 'snapshot');
const HAS_SNAPSHOT = existsSync(join(SNAPSHOT, 'kata-proxy.blob'));
const HTTP_MODULES = /^NativeModule (http|https|_http_\w+|tls|_tls_\w+|http2|internal\/deps\/undici\/\S*)$/m;
// What the start path must not load either (scripts/lean-bundle.mjs, scripts/bundle.mjs): pino's
// transports (worker_threads, assert), what only host mode and the demo use, and fs/promises (with
// readline) as an ES module import of node:fs would. (child_process is Node's own: listen() loads
// the cluster module, and it loads child_process.)
const UNUSED_MODULES = /^NativeModule (worker_threads|assert|crypto|internal\/fs\/promises|internal\/readline\/interface)$/m;

describe('the daemon start path', () => {
  const dir = createTempDir('kpsp');
  const guest = new SimulatedGuest({ muxSocket: dir.socket('kata') });
  const preload = dir.file('module-list.cjs');
  let n = 0;

  beforeAll(async () => {
    writeFileSync(
      preload,
      // Written aside, then renamed: the test reads the list as soon as its name exists.
      "process.on('SIGUSR2', () => { const fs = require('fs'), to = process.env.KP_MODULE_LIST; fs.writeFileSync(to + '.part', process.moduleLoadList.join('\\n')); fs.renameSync(to + '.part', to); });\n",
    );
    await guest.start();
  });
  afterAll(async () => {
    await guest.stop();
    dir.cleanup();
  });

  /** Starts a daemon (`command`), waits for one answered exchange; returns its command line and loaded built-ins. */
  async function startOnce(command: string[], extraArgv: string[] = [], env: NodeJS.ProcessEnv = {}, alsoWait?: string): Promise<{ cmdline: string[]; modules: string }> {
    const id = `sp${++n}`;
    const listen = dir.socket(id);
    const list = dir.file(`${id}.modules`);
    const argv = [...runtimeArgv({ listen, mux: dir.socket('kata'), sandbox: id }), ...extraArgv];
    const proc = spawn(command[0]!, [...command.slice(1), ...argv], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: `--require ${preload}`, KP_MODULE_LIST: list, ...env },
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // As the runtime does: connect until the socket accepts (it exists from bind(), a moment
      // before listen()).
      for (let i = 0; !existsSync(listen) || !(await isLive(listen)); i++) {
        if (proc.exitCode !== null || i > 1000) throw new Error(`the daemon did not start: ${stderr}`);
        await sleep(10);
      }
      expect(await echoChecked(listen, 1000)).toBe(true);
      for (let i = 0; alsoWait && !existsSync(alsoWait) && i < 500; i++) await sleep(10);
      const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').split('\0');
      proc.kill('SIGUSR2');
      for (let i = 0; !existsSync(list) && i < 500; i++) await sleep(10);
      return { cmdline, modules: readFileSync(list, 'utf8') };
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
    }
  }

  it.runIf(HAS_SNAPSHOT)('bin/kata-proxy starts from the snapshot when the node on PATH built it, and loads no node:http', async () => {
    const { cmdline, modules } = await startOnce([BIN]);
    expect(cmdline).toContain('--snapshot-blob');
    expect(modules).toMatch(/^NativeModule net$/m);
    expect(modules).not.toMatch(HTTP_MODULES);
    expect(modules).not.toMatch(UNUSED_MODULES);
  });

  it('from the bundle (`node bin/kata-proxy`) it loads no node:http either; with -control-socket it does', async () => {
    const bundle = await startOnce([process.execPath, BIN]);
    expect(bundle.cmdline).not.toContain('--snapshot-blob');
    expect(bundle.modules).toMatch(/^NativeModule net$/m);
    expect(bundle.modules).not.toMatch(HTTP_MODULES);
    // The check sees node:http where it is loaded: the read-only control socket needs it.
    const ctl = dir.socket('ctl');
    const withControl = await startOnce([process.execPath, BIN], ['-control-socket', ctl], {}, ctl);
    expect(withControl.modules).toMatch(HTTP_MODULES);
  });

  describe.runIf(HAS_SNAPSHOT)('a copy of the package whose snapshot does or does not match', () => {
    // The package's code (symlinked), its own launcher and snapshot blob, and a stamp written here.
    const pkg = createTempDir('kpspp');
    const node = realpathSync(process.execPath);
    const flags = () => readFileSync(join(SNAPSHOT, 'kata-proxy.node'), 'utf8').split('\n')[3];
    const stamp = (identity: string, root = pkg.path) => writeFileSync(join(pkg.path, 'dist', 'snapshot', 'kata-proxy.node'), `${node}\n${identity}\n${root}\n${flags()}\n`);
    const s = statSync(node);
    const identity = `${s.dev}:${s.ino}:${s.size}:${Math.floor(s.mtimeMs / 1000)}:${Math.floor(s.ctimeMs / 1000)}`;
    const launcher = join(pkg.path, 'bin', 'kata-proxy');

    beforeAll(() => {
      mkdirSync(join(pkg.path, 'bin'));
      mkdirSync(join(pkg.path, 'dist', 'snapshot'), { recursive: true });
      copyFileSync(BIN, launcher);
      for (const part of ['package.json', 'node_modules']) symlinkSync(join(REPO_ROOT, part), join(pkg.path, part));
      for (const part of ['src', 'bundle']) symlinkSync(join(REPO_ROOT, 'dist', part), join(pkg.path, 'dist', part));
      symlinkSync(join(SNAPSHOT, 'kata-proxy.blob'), join(pkg.path, 'dist', 'snapshot', 'kata-proxy.blob'));
    });
    afterAll(() => pkg.cleanup());

    it('matching: the snapshot serves', async () => {
      stamp(identity);
      expect((await startOnce([launcher])).cmdline).toContain('--snapshot-blob');
    });

    it('another node binary, or the same path changed since: the bundle serves', async () => {
      stamp(identity.replace(/:\d+$/, ':1'));
      expect((await startOnce([launcher])).cmdline).not.toContain('--snapshot-blob');
      // Another node first on PATH (here a wrapper of the same node: not the binary that built it).
      stamp(identity);
      const bin = join(pkg.path, 'other-node');
      mkdirSync(bin);
      writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${node} "$@"\n`, { mode: 0o755 });
      const other = await startOnce([launcher], [], { PATH: `${bin}:${process.env.PATH}` });
      expect(other.cmdline).not.toContain('--snapshot-blob');
      expect(other.cmdline[0]).toBe(node);
      // The CommonJS bundle, started directly: no ES module loader, nothing loaded it does not use.
      expect(other.cmdline).toContain(join(pkg.path, 'dist', 'bundle', 'run.cjs'));
      expect(other.modules).toMatch(/^NativeModule net$/m);
      expect(other.modules).not.toMatch(UNUSED_MODULES);
      expect(other.modules).not.toMatch(HTTP_MODULES);
    });

    it('a package moved since the snapshot was built: the bundle serves', async () => {
      stamp(identity, REPO_ROOT);
      expect((await startOnce([launcher])).cmdline).not.toContain('--snapshot-blob');
    });
  });
});
