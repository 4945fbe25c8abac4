// The console relay starts and stays on: the line a guest writes right after a flood is
// relayed once the log has room again, every later line is relayed, every line is either on
// stderr or counted in a drop summary; and a console socket that appears late is still read from
// its first line.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { FloodConsole, SlowReader } from '../helpers/console-flood.js';
import { BIN, runtimeArgv } from '../helpers/daemon.js';
import { parseLogfmt } from '../helpers/logfmt.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';
import { until } from '../helpers/yamux-pair.js';

const { cleanups } = perTest();
const LINE = 104;
const FLOOD_BYTES = LINE * 961_538; // ~100 MB of whole lines

function daemonWithConsole(paths: { listen: string; mux: string; sandbox: string }, consolePath: string, readBytesPerSecond: number) {
  const proc = spawn(BIN, runtimeArgv({ ...paths, console: consolePath }), { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => proc.exitCode === null && proc.kill('SIGKILL'));
  const stderr = new SlowReader(proc.stderr!, readBytesPerSecond, (l) => !l.includes('xxxxxxxxxx'));
  return { proc, stderr };
}

const relayed = (stderr: SlowReader, text: string) => stderr.kept.some((l) => l.includes('source=agent') && l.includes(text));

describe('console relay after a flood, the real daemon with a slow stderr reader', () => {
  it('the line right after the flood and every later line are relayed; every line is on stderr or counted', async () => {
    const { dir, paths } = await simPod(cleanups, 'afterflood');
    const consolePath = dir.socket('console');
    const guestConsole = await FloodConsole.listen(consolePath);
    cleanups.push(() => guestConsole.close());
    const { proc, stderr } = daemonWithConsole(paths, consolePath, 256 * 1024);
    const socket = await guestConsole.client;
    await guestConsole.flood(FLOOD_BYTES, LINE);
    socket.write('after the flood: agent panicked\n');
    stderr.speedUp();
    await until(() => relayed(stderr, 'after the flood: agent panicked'), 15_000);
    for (let i = 0; i < 3; i++) {
      socket.write(`later line ${i}\n`);
      await until(() => relayed(stderr, `later line ${i}`), 5000);
    }
    proc.kill('SIGTERM');
    await stderr.finish();
    const summaries = stderr.kept.map((l) => parseLogfmt(l)).filter((r) => r.msg === 'log records dropped');
    const dropped = summaries.reduce((n, r) => n + Number(r['agent-lines']), 0);
    expect(summaries.length).toBeGreaterThan(0);
    const agentOnStderr = stderr.lines - stderr.kept.filter((l) => !l.includes('source=agent')).length;
    expect(agentOnStderr + dropped).toBe(FLOOD_BYTES / LINE + 4);
  });

  it('a console socket that appears a second after the daemon: its first lines are relayed', async () => {
    const { dir, paths } = await simPod(cleanups, 'lateconsole');
    const consolePath = dir.socket('console');
    const { stderr } = daemonWithConsole(paths, consolePath, 64 * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 1000));
    const server = net.createServer((s) => s.end('boot line 1\nboot line 2\n'));
    await new Promise<void>((r) => server.listen(consolePath, r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    await until(() => relayed(stderr, 'boot line 2'), 5000);
    expect(relayed(stderr, 'boot line 1')).toBe(true);
  });
});
