// A flood on the guest console while the daemon's stderr is read slowly (a lagging journald):
// requests through the proxy keep being answered, memory stays within the logging budget, the
// dropped console lines are counted in a summary, and the final records still reach stderr.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PeakSampler, settledSample } from '../../bench/proc.js';
import { connectWithRetry } from '../../src/channel/unix-socket.js';
import { request } from '../helpers/clients.js';
import { FloodConsole, SlowReader } from '../helpers/console-flood.js';
import { BIN, runtimeArgv } from '../helpers/daemon.js';
import { parseLogfmt } from '../helpers/logfmt.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';

const { cleanups } = perTest();
const MiB = 1 << 20;

async function floodedDaemon(floodBytes: number, lineBytes: number) {
  const { dir, paths } = await simPod(cleanups, 'flood');
  const consolePath = dir.socket('console');
  const guestConsole = await FloodConsole.listen(consolePath);
  cleanups.push(() => guestConsole.close());
  const proc = spawn(BIN, runtimeArgv({ ...paths, console: consolePath }), { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => proc.exitCode === null && proc.kill('SIGKILL'));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  // 256 KiB/s: far slower than the flood, so the daemon's writer backs up and must drop.
  const stderr = new SlowReader(proc.stderr!, 256 * 1024, (line) => !line.includes('source=agent') || line.includes('truncated=true'));
  (await connectWithRetry(paths.listen, { timeoutMs: 15_000 })).destroy();
  await guestConsole.client;
  await request(paths.listen, 'echo', Buffer.from('warm-up'));
  const idle = (await settledSample(proc.pid!))!.rss;

  const peak = new PeakSampler(proc.pid!, 20);
  let flooding = true;
  const flood = guestConsole.flood(floodBytes, lineBytes).finally(() => (flooding = false));
  const payload = Buffer.alloc(64, 'r');
  const roundTripsMs: number[] = [];
  while (flooding) {
    const t0 = performance.now();
    expect(await request(paths.listen, 'echo', payload)).toEqual(payload);
    roundTripsMs.push(performance.now() - t0);
  }
  const sent = await flood;
  // A few more once the relay has read the last of it.
  for (let i = 0; i < 20; i++) expect(await request(paths.listen, 'echo', payload)).toEqual(payload);
  const rssPeak = peak.stop().rss;

  proc.kill('SIGTERM');
  const [code] = await Promise.all([exited, stderr.finish()]);
  const records = stderr.kept.map((l) => parseLogfmt(l));
  const agentLines = stderr.lines - records.filter((rec) => rec.source !== 'agent').length;
  return { sent, code, records, roundTripsMs, idle, rssPeak, agentLines };
}

function expectWithinBudget(r: Awaited<ReturnType<typeof floodedDaemon>>, floodBytes: number): void {
  expect(r.sent).toBe(floodBytes);
  expect(r.roundTripsMs.length).toBeGreaterThan(0);
  expect(Math.max(...r.roundTripsMs)).toBeLessThan(1000);
  expect(r.rssPeak - r.idle).toBeLessThanOrEqual(32 * MiB);
  const own = r.records.filter((rec) => rec.source === 'proxy');
  const drops = own.filter((rec) => rec.msg === 'log records dropped');
  expect(drops.length).toBeGreaterThan(0);
  for (const d of drops) expect(d).toMatchObject({ level: 'warning', source: 'proxy', reason: 'sink slow', sandbox: 'flood' });
  const dropped = drops.reduce((n, d) => n + Number(d['agent-lines']), 0);
  expect(dropped).toBeGreaterThan(0);
  // The last record is 'exiting', or the final drop summary right after it.
  const exiting = own.findIndex((rec) => rec.msg === 'exiting');
  expect(own[exiting]).toMatchObject({ status: '0' });
  expect(own.slice(exiting + 1).every((rec) => rec.msg === 'log records dropped')).toBe(true);
  expect(r.code).toBe(0);
}

describe('console flood with a slow stderr reader', () => {
  it('200 MB of console lines: requests are answered, RSS stays within +32 MiB, drops are summarized', async () => {
    const r = await floodedDaemon(200 * MiB, 200);
    expectWithinBudget(r, 200 * MiB);
    // Every console line is either on stderr or counted in a summary.
    const dropped = r.records.filter((rec) => rec.msg === 'log records dropped').reduce((n, d) => n + Number(d['agent-lines']), 0);
    expect(r.agentLines + dropped).toBe((200 * MiB) / 200);
  });

  it('one 20 MB console line: the same, and the relayed pieces are marked truncated', async () => {
    const r = await floodedDaemon(20 * MiB, 0);
    expectWithinBudget(r, 20 * MiB);
    const pieces = r.records.filter((rec) => rec.source === 'agent');
    expect(pieces.length).toBeGreaterThan(0);
    for (const p of pieces) expect(p).toMatchObject({ truncated: 'true', msg: 'x'.repeat(16 * 1024) });
  });
});
