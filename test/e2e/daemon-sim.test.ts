// The real daemon, spawned with the Kata runtime's exact argv, against the built-in simulated guest.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { connect, echoChecked, request, sha256 } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { parseLogfmt } from '../helpers/logfmt.js';
import { createTempDir, type TempDir } from '../helpers/tmp.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pod(options: { console?: boolean; startGuest?: boolean } = {}) {
  const dir: TempDir = createTempDir('kpe');
  cleanups.push(() => dir.cleanup());
  const paths = {
    listen: dir.socket('proxy'),
    mux: dir.socket('kata'),
    console: options.console ? dir.socket('console') : undefined,
    sandbox: 'e2e-sandbox',
  };
  const guest = new SimulatedGuest({ muxSocket: paths.mux, consoleSocket: paths.console });
  if (options.startGuest !== false) await guest.start();
  cleanups.push(() => guest.stop());
  const daemon = spawnDaemon(runtimeArgv(paths));
  cleanups.push(() => daemon.stop());
  await daemon.waitForListen(paths.listen);
  return { dir, paths, guest, daemon };
}

function records(daemon: Daemon): Record<string, string>[] {
  return daemon.lines.map(parseLogfmt);
}

describe('kata-proxy daemon with the simulated guest', () => {
  it('carries 200 concurrent connections with every byte checked', async () => {
    const { paths } = await pod();
    const sizes = Array.from({ length: 200 }, (_, i) => (i * 104_729) % 1_000_000);
    const ok = await Promise.all(sizes.map((n) => echoChecked(paths.listen, n)));
    expect(ok.filter(Boolean)).toHaveLength(200);
  });

  it('forwards half-close both ways', async () => {
    const { paths } = await pod();
    const data = Buffer.alloc(2_000_000, 9);
    expect((await request(paths.listen, 'sink', data)).toString()).toBe(`${sha256(data)} ${data.length}\n`);
    const socket = await connect(paths.listen);
    const got: Buffer[] = [];
    socket.on('data', (c: Buffer) => got.push(c));
    socket.write('source 5000\n');
    await new Promise((r) => socket.once('end', r));
    expect(Buffer.concat(got).length).toBe(5000);
    socket.end('still writable after EOF');
    await new Promise((r) => socket.once('close', r));
  });

  it('SIGTERM with live streams: exit 0 and no error-level lines', async () => {
    const { paths, daemon } = await pod();
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(paths.listen)));
    for (const c of clients) {
      c.on('error', () => {});
      c.resume();
      c.write('echo\nlive');
    }
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    expect(await daemon.stop()).toBe(0);
    // Streams are ended (FIN) and drain: no waiting for the drain timeout.
    expect(Date.now() - t0).toBeLessThan(3000);
    const levels = records(daemon).map((r) => r.level);
    expect(levels.filter((l) => l === 'error' || l === 'fatal' || l === 'panic')).toEqual([]);
  });

  it('the guest killed mid-transfer: the proxy exits promptly with status 3 and clients see EOF or reset', async () => {
    const { paths, guest, daemon } = await pod();
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(paths.listen)));
    const ended = clients.map((c) => new Promise((r) => c.once('error', r).once('end', r).resume()));
    for (const c of clients) c.write(`echo\n${'x'.repeat(100_000)}`);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await guest.stop();
    const { code } = await daemon.exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(code).toBe(3);
    await Promise.all(ended);
    expect(records(daemon).filter((r) => r.msg?.includes('guest channel ended'))).toHaveLength(1);
  });

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
    const dir = createTempDir('kpl');
    cleanups.push(() => dir.cleanup());
    const mux = dir.socket('kata');
    const guest = new SimulatedGuest({ muxSocket: mux });
    await guest.start();
    cleanups.push(() => guest.stop());

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
