// `npm run deb` as an operator's host gets it: the .deb built with dpkg-deb, checked by lintian,
// installed with dpkg -i, used (version, demo, units, host mode with the native handle), removed
// (only the conffiles stay) and purged. Installs into the real system: it needs root, and skips
// when kata-proxy is already installed here. KATA_PROXY_REQUIRE_DEB=1 (CI) makes any missing
// prerequisite a failure instead of a skip.
import { existsSync, lstatSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { createTempDir } from '../helpers/tmp.js';
import { expectDemo, expectHostWithHosted, expectSuccess, expectVersion, run, type Ran, VERSION } from './installed.js';

const TOOLS = ['dpkg', 'dpkg-deb', 'dpkg-shlibdeps', 'lintian', 'systemd-analyze', 'cc'];
/** The PATH systemd gives the units: the package runs on Debian's node, whatever runs the tests. */
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const env = { PATH: SYSTEM_PATH };

/** dpkg's state of the package: installed, config-files, not-installed (also when never known). */
async function status(): Promise<string> {
  const ran = await run('dpkg-query', ['-W', '-f=${db:Status-Status}', 'kata-proxy']);
  return ran.code === 0 ? ran.stdout : 'not-installed';
}

async function missing(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of TOOLS) if ((await run('sh', ['-c', `command -v ${tool}`])).code !== 0) return `${tool} not found (apt install dpkg-dev lintian systemd gcc)`;
  if (!existsSync('/usr/include/node/node.h')) return "no Node headers in /usr/include/node (Debian's nodejs headers: libnode-dev)";
  const state = await status();
  if (state !== 'not-installed') return `kata-proxy is already ${state} on this machine: not replacing it`;
  return null;
}

const why = await missing();
if (why && process.env.KATA_PROXY_REQUIRE_DEB === '1') throw new Error(`the Debian package test cannot run: ${why}`);
if (why) console.warn(`[deb] skipping the Debian package test: ${why}`);

/** dpkg, waiting while another dpkg or apt holds its lock (the machine is shared). */
async function dpkg(args: string[]): Promise<Ran> {
  for (let tries = 0; ; tries++) {
    const ran = await run('dpkg', args, { env });
    if (ran.code === 0 || !/lock/i.test(ran.stderr) || tries >= 60) return expectSuccess(ran, `dpkg ${args.join(' ')}`);
    await sleep(1000);
  }
}


const t = perTest('kpdeb');

describe.skipIf(why !== null)('the Debian package (npm run deb)', () => {
  const scratch = createTempDir('kpdeb');
  const deb = `${scratch.path}/kata-proxy_${VERSION}_amd64.deb`;
  let contents: string[] = [];
  let conffiles: string[] = [];

  beforeAll(async () => {
    const packed = expectSuccess(await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', scratch.path], { cwd: REPO_ROOT }), 'npm pack');
    const tarball = `${scratch.path}/${packed.stdout.trim().split('\n').at(-1)}`;
    const built = expectSuccess(
      await run('sh', ['scripts/build-deb.sh', tarball], { cwd: REPO_ROOT, env: { KATA_PROXY_DEB_OUT: scratch.path }, timeoutMs: 240_000 }),
      'npm run deb',
    );
    expect(built.stdout.trim()).toBe(deb);
    // Paths as dpkg-deb lists them ("./usr/bin/kata-proxy"), directories with a trailing slash.
    contents = (await run('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar t`])).stdout
      .split('\n')
      .filter((p) => p && p !== './')
      .map((p) => p.slice(1));
    conffiles = (await run('sh', ['-c', `dpkg-deb --ctrl-tarfile '${deb}' | tar xO ./conffiles`])).stdout.split('\n').filter(Boolean);
  }, 300_000);
  afterAll(async () => {
    if ((await status()) !== 'not-installed') await dpkg(['--purge', 'kata-proxy']);
    scratch.cleanup();
  }, 60_000);

  it('lays out the program, the commands, the units and the conffiles, and depends on nodejs', async () => {
    for (const path of ['/usr/lib/kata-proxy/bin/kata-proxy', '/usr/lib/kata-proxy/dist/native/kata-proxy-handle', '/usr/bin/kata-proxy', '/usr/bin/kata-proxy-hosted', '/lib/systemd/system/kata-proxy@.service', '/lib/systemd/system/kata-proxy-host.service', '/usr/share/doc/kata-proxy/copyright']) {
      expect(contents).toContain(path);
    }
    expect(conffiles).toEqual(['/etc/kata-proxy/host.env', '/etc/kata-proxy/pod-defaults.env']);
    const control = (await run('dpkg-deb', ['-f', deb, 'Depends', 'Architecture'])).stdout;
    expect(control).toMatch(/^Depends: nodejs \(>= (2[02468])\), nodejs \(<< \d+\)/m);
    expect(control).toMatch(/^Architecture: amd64$/m);
    // The commands run that nodejs, not whatever `node` comes first on the caller's PATH.
    const launcher = (await run('sh', ['-c', `dpkg-deb --fsys-tarfile '${deb}' | tar xO ./usr/lib/kata-proxy/bin/kata-proxy`])).stdout;
    expect(launcher.split('\n')[0]).toBe('#!/bin/sh');
    expect(launcher).toMatch(/^exec \/usr\/bin\/node \$flags "\$root\/bin\/kata-proxy\.mjs" "\$@"$/m);
    expect(launcher).toMatch(/^  exec \/usr\/bin\/node \$flags "\$run" "\$@"$/m);
    expect(launcher).not.toMatch(/exec node /);
  });

  it('lintian reports no error', async () => {
    const ran = await run('lintian', ['--tag-display-limit', '0', deb], { timeoutMs: 120_000 });
    expect(ran.stdout.split('\n').filter((l) => l.startsWith('E:'))).toEqual([]);
  });

  it('installs with dpkg -i and works: -version, the demo, systemd-analyze verify on the installed units', async () => {
    await dpkg(['-i', deb]);
    expect(await status()).toBe('installed');
    expect(lstatSync('/usr/bin/kata-proxy').isSymbolicLink()).toBe(true);
    await expectVersion('/usr/bin/kata-proxy');
    await expectDemo('/usr/bin/kata-proxy');
    // Templates are verified as instances; ExecStart must name an executable that exists.
    const units = ['kata-proxy@test.service', 'kata-proxy@test.socket', 'kata-proxy-host.service', 'kata-proxy-host.socket', 'kata-proxy-pod@test.service'];
    const verify = await run('systemd-analyze', ['verify', ...units], { env });
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    expect((await run('grep', ['-h', '^ExecStart=', '/lib/systemd/system/kata-proxy-host.service'])).stdout).toMatch(/^ExecStart=\/usr\/bin\/kata-proxy host /);
  });

  it("the host's heap trimmer loads in the system's node", async () => {
    const ran = await run('node', ['-e', 'const m = require("/usr/lib/kata-proxy/dist/native/host-addon.node"); process.stdout.write(typeof m.trim());'], { env });
    expect(ran.stdout).toBe('boolean');
  });

  it('the host and kata-proxy-hosted with the packaged native handle', async () => {
    await expectHostWithHosted('/usr/bin', t.tmp, t.cleanups, '/usr/lib/kata-proxy/dist/native/kata-proxy-handle');
  });

  it('dpkg -r leaves nothing but the conffiles; purge removes those', async () => {
    await dpkg(['-r', 'kata-proxy']);
    expect(await status()).toBe('config-files');
    const left = contents.filter((p) => !p.endsWith('/') && existsSync(p));
    expect(left).toEqual(conffiles);
    for (const dir of ['/usr/lib/kata-proxy', '/usr/share/doc/kata-proxy']) expect(existsSync(dir), dir).toBe(false);
    await dpkg(['--purge', 'kata-proxy']);
    expect(await status()).toBe('not-installed');
    expect(existsSync('/etc/kata-proxy')).toBe(false);
  });
});
