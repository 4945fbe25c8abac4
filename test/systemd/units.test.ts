// The unit files, checked by systemd's own tools.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { installUnits } from '../../src/systemd/install-units.js';
import { BIN } from '../helpers/daemon.js';
import { createTempDir } from '../helpers/tmp.js';
import { perTest } from '../helpers/per-test.js';

const HAVE_ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0;
if (!HAVE_ANALYZE) console.warn('[systemd] systemd-analyze not found (apt install systemd): skipping unit checks');

const { cleanups } = perTest();

/** The installed units in a temp dir, each template also as its instance `test-sandbox`. */
function instantiated(host = false): string {
  const dir = createTempDir('kpu');
  cleanups.push(() => dir.cleanup());
  const written = installUnits({ dir: dir.path, execPath: BIN, host });
  for (const file of written) if (file.includes('@.')) copyFileSync(file, file.replace('@.', '@test-sandbox.'));
  return dir.path;
}

function verify(dir: string, units: string[]) {
  return spawnSync('systemd-analyze', ['verify', ...units.map((u) => path.join(dir, u))], { encoding: 'utf8' });
}

function exposure(dir: string, unit: string): number {
  const out = execFileSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', path.join(dir, unit)], { encoding: 'utf8' });
  return Number(/Overall exposure level for .*: (\d+\.\d+)/.exec(out)?.[1]);
}

describe('install-units', () => {
  it('writes both units with ExecStart pointing at the given executable', () => {
    const dir = instantiated();
    const service = readFileSync(path.join(dir, 'kata-proxy@.service'), 'utf8');
    expect(service).toMatch(new RegExp(`^ExecStart=${BIN} -listen-socket`, 'm'));
    expect(readFileSync(path.join(dir, 'kata-proxy@.socket'), 'utf8')).toMatch(/^ListenStream=\/run\/vc\/sbs\/%i\/proxy.sock$/m);
  });

  it('--host writes the host, its control socket and the per-pod oneshot, all pointing at the executable', () => {
    const dir = instantiated(true);
    const host = readFileSync(path.join(dir, 'kata-proxy-host.service'), 'utf8');
    expect(host).toMatch(new RegExp(`^ExecStart=${BIN} host -control-socket /run/kata-proxy/host.sock -state-file /run/kata-proxy/pods.json `, 'm'));
    expect(host).toMatch(new RegExp(`^ExecReload=${BIN} host upgrade -control-socket /run/kata-proxy/host.sock$`, 'm'));
    expect(host).toMatch(/^LimitNOFILE=1048576$/m);
    expect(host).toMatch(/^RuntimeDirectoryPreserve=yes$/m);
    expect(readFileSync(path.join(dir, 'kata-proxy-host.socket'), 'utf8')).toMatch(/^ListenStream=\/run\/kata-proxy\/host.sock$/m);
    const pod = readFileSync(path.join(dir, 'kata-proxy-pod@.service'), 'utf8');
    expect(pod).toMatch(new RegExp(`^ExecStart=${BIN} pod add %i `, 'm'));
    expect(pod).toMatch(new RegExp(`^ExecStop=${BIN} pod rm %i `, 'm'));
    expect(pod).toMatch(/^EnvironmentFile=-\/etc\/kata-proxy\/%i.env$/m);
  });
});

describe.skipIf(!HAVE_ANALYZE)('systemd units', () => {
  it('pass systemd-analyze verify without a warning', () => {
    const result = verify(instantiated(), ['kata-proxy@test-sandbox.service', 'kata-proxy@test-sandbox.socket']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('keep the service exposure of systemd-analyze security low', () => {
    expect(exposure(instantiated(), 'kata-proxy@test-sandbox.service')).toBeLessThanOrEqual(1.5);
  });

  it('host mode units pass verify and stay as hardened as the per-pod unit', () => {
    const dir = instantiated(true);
    const result = verify(dir, ['kata-proxy-host.service', 'kata-proxy-host.socket', 'kata-proxy-pod@test-sandbox.service']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(exposure(dir, 'kata-proxy-host.service')).toBeLessThanOrEqual(1.5);
    expect(exposure(dir, 'kata-proxy-pod@test-sandbox.service')).toBeLessThanOrEqual(1.5);
  });
});
