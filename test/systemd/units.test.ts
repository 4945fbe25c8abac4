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

function instantiated(): string {
  const dir = createTempDir('kpu');
  cleanups.push(() => dir.cleanup());
  const written = installUnits({ dir: dir.path, execPath: BIN });
  for (const file of written) copyFileSync(file, file.replace('@.', '@test-sandbox.'));
  return dir.path;
}

describe('install-units', () => {
  it('writes both units with ExecStart pointing at the given executable', () => {
    const dir = instantiated();
    const service = readFileSync(path.join(dir, 'kata-proxy@.service'), 'utf8');
    expect(service).toMatch(new RegExp(`^ExecStart=${BIN} -listen-socket`, 'm'));
    expect(readFileSync(path.join(dir, 'kata-proxy@.socket'), 'utf8')).toMatch(/^ListenStream=\/run\/vc\/sbs\/%i\/proxy.sock$/m);
  });
});

describe.skipIf(!HAVE_ANALYZE)('systemd units', () => {
  it('pass systemd-analyze verify without a warning', () => {
    const dir = instantiated();
    const result = spawnSync(
      'systemd-analyze',
      ['verify', path.join(dir, 'kata-proxy@test-sandbox.service'), path.join(dir, 'kata-proxy@test-sandbox.socket')],
      { encoding: 'utf8' },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('keep the service exposure of systemd-analyze security low', () => {
    const dir = instantiated();
    const out = execFileSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', path.join(dir, 'kata-proxy@test-sandbox.service')], {
      encoding: 'utf8',
    });
    const score = Number(/Overall exposure level for .*: (\d+\.\d+)/.exec(out)?.[1]);
    expect(score).toBeLessThanOrEqual(1.5);
  });
});
