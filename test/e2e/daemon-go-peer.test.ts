// The real daemon, spawned with the Kata runtime's exact argv, against the hashicorp/yamux Go
// peer as the guest agent (the library generation the Kata 1.x agent vendors).
import { afterEach, describe, expect, it } from 'vitest';
import { connect, echoChecked, request, sha256 } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon } from '../helpers/daemon.js';
import { findGoPeer, startGoPeer, type GoPeer } from '../helpers/go-peer.js';
import { createTempDir } from '../helpers/tmp.js';

const GO_PEER = await findGoPeer();
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function podWithGoAgent() {
  const dir = createTempDir('kpg');
  cleanups.push(() => dir.cleanup());
  const paths = { listen: dir.socket('proxy'), mux: dir.socket('kata'), sandbox: 'go-agent' };
  const agent: GoPeer = await startGoPeer(GO_PEER!, ['serve', '-listen', paths.mux]);
  cleanups.push(() => agent.stop());
  const daemon = spawnDaemon(runtimeArgv(paths));
  cleanups.push(() => daemon.stop());
  await daemon.waitForListen(paths.listen);
  return { paths, agent, daemon };
}

describe.skipIf(!GO_PEER)('kata-proxy daemon with a hashicorp/yamux agent', () => {
  it('carries 200 concurrent connections with every byte checked, and the agent sees no error', async () => {
    const { paths, agent } = await podWithGoAgent();
    const sizes = Array.from({ length: 200 }, (_, i) => (i * 104_729) % 1_500_000);
    const ok = await Promise.all(sizes.map((n) => echoChecked(paths.listen, n)));
    expect(ok.filter(Boolean)).toHaveLength(200);
    expect(agent.errorLogs()).toEqual([]);
  });

  it('forwards half-close: the client shuts down writing and reads the digest', async () => {
    const { paths } = await podWithGoAgent();
    const data = Buffer.alloc(3_000_000, 5);
    expect((await request(paths.listen, 'sink', data)).toString()).toBe(`${sha256(data)} ${data.length}\n`);
  });

  it('a client killed mid-transfer does not disturb the others', async () => {
    const { paths, agent } = await podWithGoAgent();
    const victim = await connect(paths.listen);
    victim.on('error', () => {});
    victim.write('echo\n');
    victim.write(Buffer.alloc(500_000));
    const others = Promise.all(Array.from({ length: 20 }, () => echoChecked(paths.listen, 200_000)));
    victim.destroy();
    expect((await others).every(Boolean)).toBe(true);
    expect(agent.errorLogs()).toEqual([]);
  });

  it('the agent killed mid-transfer: the proxy exits with status 3 and clients see EOF or reset', async () => {
    const { paths, agent, daemon } = await podWithGoAgent();
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(paths.listen)));
    const ended = clients.map((c) => new Promise((r) => c.once('error', r).once('end', r).resume()));
    for (const c of clients) c.write(`echo\n${'y'.repeat(200_000)}`);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    agent.proc.kill('SIGKILL');
    const { code } = await daemon.exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(code).toBe(3);
    await Promise.all(ended);
  });

  it('SIGTERM with live streams: exit 0, quickly, no error-level lines', async () => {
    const { paths, daemon } = await podWithGoAgent();
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
