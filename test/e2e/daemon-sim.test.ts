// The real daemon with the simulated guest: console relay, log format, an existing listen socket.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { echoChecked } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { parseLogfmt } from '../helpers/logfmt.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';

const { cleanups } = perTest();

async function pod(options: { console?: boolean; startGuest?: boolean } = {}) {
  const { dir, paths, guest } = await simPod(cleanups, 'e2e-sandbox', { dirPrefix: 'kpe', ...options });
  const daemon = spawnDaemon(runtimeArgv(paths));
  cleanups.push(() => daemon.stop());
  await daemon.waitForListen(paths.listen);
  return { dir, paths, guest, daemon };
}

function records(daemon: Daemon): Record<string, string>[] {
  return daemon.lines.map(parseLogfmt);
}

describe('kata-proxy daemon: console and logs', () => {
  it('relays 1,000 console lines with none lost, each as source=agent', async () => {
    const { guest, daemon } = await pod({ console: true });
    await daemon.waitForLine((l) => l.includes('simulated guest console ready'));
    for (let i = 0; i < 1000; i++) guest.consoleLine(`console line ${i} "quoted" = sign`);
    await daemon.waitForLine((l) => l.includes('console line 999 '));
    const agent = records(daemon).filter((r) => r.source === 'agent' && r.msg?.startsWith('console line'));
    expect(agent.map((r) => r.msg)).toEqual(Array.from({ length: 1000 }, (_, i) => `console line ${i} "quoted" = sign`));
    expect(agent.every((r) => r.level === 'info' && r.sandbox === 'e2e-sandbox' && r.name === 'kata-proxy')).toBe(true);
  });

  it('every log line follows the Kata parser rules', async () => {
    const { paths, daemon } = await pod({ console: true });
    await echoChecked(paths.listen, 1000);
    await daemon.stop();
    expect(daemon.lines.length).toBeGreaterThan(3);
    for (const line of daemon.lines) {
      const r = parseLogfmt(line); // throws on duplicate keys or bad quoting
      expect(Number.isNaN(Date.parse(r.time!))).toBe(false);
      expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)$/);
      for (const key of ['level', 'name', 'source']) expect(r[key]).toMatch(/^[\w-]+$/);
      expect(Number(r.pid)).toBeGreaterThan(0);
      expect(r.name).toBe('kata-proxy');
    }
    const announce = records(daemon).find((r) => r.msg === 'announce');
    expect(announce).toBeDefined();
  });
});

describe('listen socket that already exists', () => {
  it('stale: replaced; live: refused with status 1; not a socket: refused with status 1', async () => {
    const { dir, paths } = await simPod(cleanups, 's', { dirPrefix: 'kpl' });
    const mux = paths.mux;

    const stale = dir.socket('stale');
    const holder = net.createServer().listen(stale);
    await new Promise((r) => holder.once('listening', r));
    (holder as unknown as { _handle: { close(): void } })._handle.close(); // file stays, nobody listens
    const d1 = spawnDaemon(runtimeArgv({ listen: stale, mux, sandbox: 's' }));
    cleanups.push(() => d1.stop());
    await d1.waitForListen(stale);
    expect(await echoChecked(stale, 100)).toBe(true);

    const d2 = spawnDaemon(runtimeArgv({ listen: stale, mux, sandbox: 's' }));
    expect((await d2.exited).code).toBe(1);
    expect(d2.lines.join('\n')).toMatch(/in use/);

    const file = dir.file('plain');
    writeFileSync(file, '');
    const d3 = spawnDaemon(runtimeArgv({ listen: file, mux, sandbox: 's' }));
    expect((await d3.exited).code).toBe(1);
    expect(d3.lines.join('\n')).toMatch(/not a socket/);
  });
});
