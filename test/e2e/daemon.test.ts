// The real daemon, spawned with the Kata runtime's exact argv, against each kind of guest.
import { describe, expect, it } from 'vitest';
import { connect, echoChecked, request, sha256 } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon } from '../helpers/daemon.js';
import { createTempDir } from '../helpers/tmp.js';
import { GUESTS, type GuestKind } from './guests.js';
import { perTest } from '../helpers/per-test.js';

const { cleanups } = perTest();

async function pod(kind: GuestKind) {
  const dir = createTempDir('kpe');
  cleanups.push(() => dir.cleanup());
  const paths = { listen: dir.socket('proxy'), mux: dir.socket('kata'), sandbox: 'e2e' };
  const guest = await kind.start(paths);
  cleanups.push(() => guest.stop());
  const daemon = spawnDaemon(runtimeArgv(paths));
  cleanups.push(() => daemon.stop());
  await daemon.waitForListen(paths.listen);
  return { paths, guest, daemon };
}

describe.each(GUESTS.filter((g) => g.available))('kata-proxy daemon with $name', (kind) => {
  it('carries 200 concurrent connections with every byte checked', async () => {
    const { paths, guest } = await pod(kind);
    const sizes = Array.from({ length: 200 }, (_, i) => (i * 104_729) % 1_500_000);
    const ok = await Promise.all(sizes.map((n) => echoChecked(paths.listen, n)));
    expect(ok.filter(Boolean)).toHaveLength(200);
    expect(guest.errors()).toEqual([]);
  });

  it('forwards half-close both ways', async () => {
    const { paths } = await pod(kind);
    // Client shutdown(SHUT_WR) -> FIN: the guest's sink answers after our EOF.
    const data = Buffer.alloc(3_000_000, 5);
    expect((await request(paths.listen, 'sink', data)).toString()).toBe(`${sha256(data)} ${data.length}\n`);
    expect((await request(paths.listen, 'discard', data)).toString()).toBe(`${data.length}\n`);
    // FIN from the guest -> EOF for the client, which can still write.
    const socket = await connect(paths.listen);
    const got: Buffer[] = [];
    socket.on('data', (c: Buffer) => got.push(c));
    socket.write('source 5000 1\n');
    await new Promise((r) => socket.once('end', r));
    expect(Buffer.concat(got).length).toBe(5000);
    expect(socket.writable).toBe(true);
    socket.end('still writable after EOF');
    await new Promise((r) => socket.once('close', r));
  });

  it('a client killed mid-transfer does not disturb the others', async () => {
    const { paths, guest } = await pod(kind);
    const victim = await connect(paths.listen);
    victim.on('error', () => {});
    victim.write('echo\n');
    victim.write(Buffer.alloc(500_000));
    const others = Promise.all(Array.from({ length: 20 }, () => echoChecked(paths.listen, 200_000)));
    victim.destroy();
    expect((await others).every(Boolean)).toBe(true);
    expect(guest.errors()).toEqual([]);
  });

  it('the guest killed mid-transfer: the proxy exits promptly with status 3 and clients see EOF or reset', async () => {
    const { paths, guest, daemon } = await pod(kind);
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(paths.listen)));
    const ended = clients.map((c) => new Promise((r) => c.once('error', r).once('end', r).resume()));
    for (const c of clients) c.write(`echo\n${'y'.repeat(200_000)}`);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await guest.kill();
    const { code } = await daemon.exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(code).toBe(3);
    await Promise.all(ended);
    expect(daemon.lines.filter((l) => l.includes('guest channel ended'))).toHaveLength(1);
  });

  it('SIGTERM with live streams: exit 0 quickly (streams get FIN, not the drain timeout), no error-level lines', async () => {
    const { paths, daemon } = await pod(kind);
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(paths.listen)));
    for (const c of clients) {
      c.on('error', () => {});
      c.resume();
      c.write('echo\nlive');
    }
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    expect(await daemon.stop()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(daemon.lines.filter((l) => /level=(error|fatal|panic)/.test(l))).toEqual([]);
  });
});
