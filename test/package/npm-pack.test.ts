// The npm package as a host without a checkout gets it: `npm pack`, then `npm install -g` of the
// tarball into a scratch prefix (dependencies from the registry, no dev dependencies, the native
// handle built by the install script), then the installed commands run from that prefix.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { createTempDir } from '../helpers/tmp.js';
import { expectDemo, expectHostWithHosted, expectSuccess, expectVersion, run, VERSION } from './installed.js';

const SCRIPTS = 'kata-proxy,sd-notify,modern-syslog,@serialport/bindings-cpp';
const UNITS = ['kata-proxy@.service', 'kata-proxy@.socket', 'kata-proxy-host.service', 'kata-proxy-host.socket', 'kata-proxy-pod@.service'];
/** Everything the tarball may hold: the program, what builds the handle, the units, the docs. */
const SHIPPED = /^(README\.md|LICENSE|package\.json|bin\/kata-proxy(-hosted)?|(dist\/src\/[\w/.@-]+\.js|dist\/bundle\/[\w.-]+\.cjs)|native\/(build\.sh|kata-proxy-handle\.c|kata-proxy-hosted\.sh|host-addon\.c)|systemd\/([\w@-]+\.(service|socket)|SECURITY\.txt))$/;
const HAVE_ANALYZE = (await run('systemd-analyze', ['--version'])).code === 0;

const t = perTest('kpnp');

describe('the npm package, installed from its tarball', () => {
  const scratch = createTempDir('kpnpm');
  const prefix = join(scratch.path, 'prefix');
  const binDir = join(prefix, 'bin');
  const installed = join(prefix, 'lib', 'node_modules', 'kata-proxy');
  let files: string[] = [];

  beforeAll(async () => {
    // `npm test` has built dist/; prepack would build it again under the test files running now.
    const packed = expectSuccess(
      await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch.path], { cwd: REPO_ROOT }),
      'npm pack',
    );
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    files = info!.files.map((f) => f.path);
    const install = ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', `--allow-scripts=${SCRIPTS}`, join(scratch.path, info!.filename)];
    expectSuccess(await run('npm', install, { cwd: scratch.path, timeoutMs: 240_000 }), 'npm install -g');
  }, 300_000);
  afterAll(() => scratch.cleanup());

  it('the tarball holds the program, the handle sources, the units and the README, nothing else', () => {
    expect(files.filter((f) => !SHIPPED.test(f))).toEqual([]);
    for (const f of ['bin/kata-proxy', 'bin/kata-proxy-hosted', 'dist/bundle/kata-proxy.cjs', 'dist/bundle/run.cjs', 'dist/src/cli/main.js', 'dist/src/hosted/register-step.js', 'dist/src/hosted/node-handle.js', 'native/build.sh', 'native/kata-proxy-handle.c', 'native/kata-proxy-hosted.sh', 'native/host-addon.c', 'README.md']) {
      expect(files).toContain(f);
    }
    for (const unit of UNITS) expect(files).toContain(`systemd/${unit}`);
  });

  it('installs without dev dependencies, and the launcher runs the bundle', async () => {
    const modules = readdirSync(join(installed, 'node_modules'));
    expect(modules).toEqual(expect.arrayContaining(['commander', 'pino', 'serialport']));
    for (const dev of ['typescript', 'vitest', 'fast-check', '@types', 'rolldown']) expect(modules).not.toContain(dev);
    // npm gives the files the times of their extraction: the launcher must not take that for a
    // stale bundle. Without the unbundled entry point it still runs.
    const main = join(installed, 'dist', 'src', 'cli', 'main.js');
    renameSync(main, `${main}.away`);
    try {
      await expectVersion(join(binDir, 'kata-proxy'));
    } finally {
      renameSync(`${main}.away`, main);
    }
  });

  it('kata-proxy -version and kata-proxy demo', async () => {
    await expectVersion(join(binDir, 'kata-proxy'));
    await expectDemo(join(binDir, 'kata-proxy'));
  });

  it('kata-proxy install-units writes units that start this installation', async () => {
    const dir = t.tmp.file('units');
    for (const host of [[], ['--host']]) {
      expectSuccess(await run(join(binDir, 'kata-proxy'), ['install-units', '--dir', dir, ...host]), 'install-units');
    }
    const exec = join(installed, 'bin', 'kata-proxy');
    for (const unit of UNITS.filter((u) => u.endsWith('.service'))) {
      expect(readFileSync(join(dir, unit), 'utf8')).toContain(`ExecStart=${exec} `);
    }
    if (HAVE_ANALYZE) {
      const verify = await run('systemd-analyze', ['verify', join(dir, 'kata-proxy-host.service'), join(dir, 'kata-proxy-host.socket')]);
      expect(verify.stderr).toBe('');
      expect(verify.code).toBe(0);
    }
  });

  it('kata-proxy host, and kata-proxy-hosted holding the pod with the native handle built at install', async () => {
    const handle = join(installed, 'dist', 'native', 'kata-proxy-handle');
    expect(existsSync(handle), 'the install script built no native handle (no C compiler?)').toBe(true);
    expect(existsSync(join(installed, 'dist', 'native', 'host-addon.node')), 'the install script built no heap trimmer').toBe(true);
    // The command the runtime starts is that handle (a copy: no shell per pod start).
    const hosted = join(installed, 'bin', 'kata-proxy-hosted');
    expect(readFileSync(hosted).equals(readFileSync(handle))).toBe(true);
    await expectHostWithHosted(binDir, t.tmp, t.cleanups, hosted);
  });

  // Last: it removes the installed handle and heap trimmer.
  it('without a C compiler the install step says so in one line, and a Node process holds the pod', async () => {
    const tools = t.tmp.file('tools');
    mkdirSync(tools);
    for (const tool of ['dirname', 'mkdir', 'rm', 'mv', 'cp']) symlinkSync(`/usr/bin/${tool}`, join(tools, tool));
    const built = await run('/bin/sh', ['native/build.sh'], { cwd: installed, env: { PATH: tools, CC: '' } });
    expect(built.code).toBe(0);
    expect(built.stderr.trim().split('\n')).toEqual([expect.stringContaining('no C compiler')]);
    expect(existsSync(join(installed, 'dist', 'native', 'kata-proxy-handle'))).toBe(false);
    expect(existsSync(join(installed, 'dist', 'native', 'host-addon.node'))).toBe(false);
    expect(readFileSync(join(installed, 'bin', 'kata-proxy-hosted'), 'utf8')).toBe(readFileSync(join(installed, 'native', 'kata-proxy-hosted.sh'), 'utf8'));
    await expectHostWithHosted(binDir, t.tmp, t.cleanups, 'node');
  });

  it('is the version of this checkout', () => {
    expect(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'))).toMatchObject({ name: 'kata-proxy', version: VERSION });
  });
});
