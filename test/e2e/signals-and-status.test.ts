// Signals and exit statuses of the real binary.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, echoChecked } from '../helpers/clients.js';
import { BIN, Daemon, runtimeArgv, spawnDaemon } from '../helpers/daemon.js';
import { parseLogfmt } from '../helpers/logfmt.js';
import { createTempDir } from '../helpers/tmp.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';

const { cleanups } = perTest();

async function pod() {
  const { paths } = await simPod(cleanups, 'sig');
  const daemon = spawnDaemon(runtimeArgv(paths));
  cleanups.push(() => daemon.stop());
  await daemon.waitForListen(paths.listen);
  return { paths, daemon };
}

describe('signals', () => {
  it('SIGUSR1 logs one record for the session and one per stream, and the daemon keeps serving', async () => {
    const { paths, daemon } = await pod();
    const clients = await Promise.all(Array.from({ length: 3 }, () => connect(paths.listen)));
    for (const c of clients) {
      c.on('error', () => {});
      c.resume();
      c.write('echo\nabc');
    }
    await new Promise((r) => setTimeout(r, 200));
    daemon.proc.kill('SIGUSR1');
    await daemon.waitForLine((l) => l.includes('msg="diagnostics: session"'));
    await new Promise((r) => setTimeout(r, 100));
    const streams = daemon.lines.filter((l) => l.includes('msg="diagnostics: stream"')).map(parseLogfmt);
    expect(streams).toHaveLength(3);
    for (const s of streams) {
      expect(Number(s.id) % 2).toBe(1);
      expect(Number(s.bytesOut)).toBeGreaterThan(0);
      expect(s.sendWindow).toMatch(/^\d+$/);
      expect(s.ageMs).toMatch(/^\d+$/);
    }
    const session = parseLogfmt(daemon.lines.find((l) => l.includes('msg="diagnostics: session"'))!);
    expect(session.memory).toMatch(/rss/);
    expect(await echoChecked(paths.listen, 10_000)).toBe(true);
    for (const c of clients) c.destroy();
  });

  it('a handle left on the event loop does not keep a stopped daemon alive (exit backstop)', async () => {
    const { paths } = await simPod(cleanups, 'leak');
    // A ref'd timer loaded before the daemon stands for a library that leaves a handle open.
    const leak = join(paths.listen, '..', 'leak.mjs');
    writeFileSync(leak, 'setInterval(() => {}, 60_000);\n');
    const daemon = new Daemon(spawn(process.execPath, ['--import', leak, BIN, ...runtimeArgv(paths)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    cleanups.push(() => daemon.stop());
    await daemon.waitForListen(paths.listen);
    daemon.proc.kill('SIGTERM');
    await daemon.waitForLine((l) => l.includes('msg=exiting'));
    const exitingAt = Date.now();
    const { code } = await daemon.exited;
    expect(code).toBe(0);
    expect(Date.now() - exitingAt).toBeLessThan(1_000);
  });

  it('the host too: a handle left on the event loop does not keep it alive after SIGTERM', async () => {
    const dir = createTempDir('kph');
    cleanups.push(() => dir.cleanup());
    const leak = dir.file('leak.mjs');
    writeFileSync(leak, 'setInterval(() => {}, 60_000);\n');
    const socket = dir.socket('host');
    const host = new Daemon(
      spawn(process.execPath, ['--import', leak, BIN, 'host', '-control-socket', socket, '-state-file', dir.file('pods.json'), '-log', 'info'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    cleanups.push(() => host.stop());
    await host.waitForLine((l) => l.includes('msg="host ready"'));
    host.proc.kill('SIGTERM');
    await host.waitForLine((l) => l.includes('msg="stopping every pod"'));
    const stoppingAt = Date.now();
    expect((await host.exited).code).toBe(0);
    expect(Date.now() - stoppingAt).toBeLessThan(1_500);
  });

  it('SIGINT stops cleanly with status 0', async () => {
    const { daemon } = await pod();
    daemon.proc.kill('SIGINT');
    expect((await daemon.exited).code).toBe(0);
  });

  it('an unreachable guest channel: status 1 after the retry bound', async () => {
    const dir = createTempDir('kpx');
    cleanups.push(() => dir.cleanup());
    const daemon = spawnDaemon([...runtimeArgv({ listen: dir.socket('p'), mux: dir.socket('missing'), sandbox: 'x' }), '-retry-timeout', '0.3']);
    expect((await daemon.exited).code).toBe(1);
    expect(daemon.lines.some((l) => l.includes('cannot reach the guest channel') && l.includes('gave up after 300 ms'))).toBe(true);
  });
});

describe('exit statuses of the binary', () => {
  it('-version: 0 and a semver last token; bad flag: 2 with a message', () => {
    const version = spawnSync(BIN, ['-version'], { encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout.trim().split(/\s+/).pop()).toMatch(/^\d+\.\d+\.\d+/);
    const bad = spawnSync(BIN, ['-listen-socket', '/tmp/x.sock', '-mux-socket', '/tmp/y.sock', '-frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/-frobnicate/);
    const missing = spawnSync(BIN, [], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/Usage:/);
  });

  it('runs with at most 6 threads', async () => {
    const { daemon } = await pod();
    const { readdirSync } = await import('node:fs');
    await new Promise((r) => setTimeout(r, 300));
    expect(readdirSync(`/proc/${daemon.proc.pid}/task`).length).toBeLessThanOrEqual(6);
  });
});
