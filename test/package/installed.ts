// What an installed kata-proxy (from the npm tarball or the Debian package) must do, run the way
// an operator and the Kata runtime run it: from its own bin directory, not from this checkout.
import { execFile, spawn } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { expect } from 'vitest';
import { connectWithRetry } from '../../src/channel/unix-socket.js';
import { echoChecked } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/go-peer.js';
import { simPod } from '../helpers/sim-pod.js';
import type { TempDir } from '../helpers/tmp.js';
import { Handle } from '../hosted/handles.js';

export const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (at most `timeoutMs`), never throwing on a failure status. */
export function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...options.env }, cwd: options.cwd, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

/** Fails with everything the command said when it did not exit 0. */
export function expectSuccess(ran: Ran, what: string): Ran {
  if (ran.code !== 0) throw new Error(`${what} exited ${ran.code}\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}`);
  return ran;
}

export async function expectVersion(bin: string): Promise<void> {
  const ran = expectSuccess(await run(bin, ['-version']), `${bin} -version`);
  expect(ran.stdout).toBe(`kata-proxy version ${VERSION}\n`);
}

/** `kata-proxy demo` runs its workload and stops by itself. */
export async function expectDemo(bin: string): Promise<void> {
  const ran = expectSuccess(await run(bin, ['demo'], { timeoutMs: 60_000 }), `${bin} demo`);
  expect(ran.stdout).toMatch(/checksums\s+\d+ ok, 0 bad/);
  expect(ran.stdout).toContain('demo passed');
}

/**
 * `kata-proxy host` from `binDir`, one simulated pod started through `kata-proxy-hosted` as the
 * runtime starts it: the process holding the pod is `holder` (the native handle's path, or
 * 'node'), traffic passes, and SIGTERM to the handle removes the pod.
 */
export async function expectHostWithHosted(binDir: string, dir: TempDir, cleanups: (() => unknown)[], holder: string): Promise<void> {
  const control = dir.socket('host');
  const host = spawnDaemon(['host', '-control-socket', control, '-state-file', dir.file('pods.json'), '-log', 'warn'], {}, join(binDir, 'kata-proxy'));
  cleanups.push(() => host.stop());
  await host.waitForListen(control);
  const { paths } = await simPod(cleanups, 'installed', { dirPrefix: 'kpi' });
  const handle = new Handle(
    spawn(join(binDir, 'kata-proxy-hosted'), runtimeArgv(paths), {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, KATA_PROXY_CONTROL_SOCKET: control },
    }),
  );
  cleanups.push(() => handle.kill());
  (await connectWithRetry(paths.listen, { timeoutMs: 15_000 })).destroy();
  const exe = readlinkSync(`/proc/${handle.pid}/exe`);
  if (holder === 'node') expect(basename(exe)).toMatch(/^node/);
  else expect(exe).toBe(realpathSync(holder));
  expect(await echoChecked(paths.listen, 256 * 1024)).toBe(true);
  handle.proc.kill('SIGTERM');
  const { code, signal } = await handle.exited;
  expect(code === 0 || signal === 'SIGTERM', `handle ended with ${code ?? signal}: ${handle.stderr}`).toBe(true);
  expect(await host.stop()).toBe(0);
}
