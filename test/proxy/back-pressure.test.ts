import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { connectWithRetry } from '../../src/channel/unix-socket.js';
import { listenOnPath } from '../../src/proxy/listener.js';
import { Proxy } from '../../src/proxy/proxy.js';
import { connect, echoChecked } from '../helpers/clients.js';
import { DigestCounter, sourceDigest } from '../helpers/data.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';
import { until } from '../helpers/yamux-pair.js';

const { cleanups } = perTest();

/** A proxy in front of a simulated guest; `stats()` is its only stream's. */
async function proxyToSimGuest(name: string) {
  const { paths } = await simPod(cleanups, name);
  const server = await listenOnPath(paths.listen, 0o660);
  const proxy = new Proxy({
    server,
    logger: pino({ level: 'silent' }),
    openGuestChannel: (signal) => connectWithRetry(paths.mux, { timeoutMs: 10_000, signal }),
  });
  cleanups.push(() => proxy.stop());
  await proxy.start();
  const stats = () => proxy.diagnostics().streams[0]!;
  return { paths, stats, oneStream: () => proxy.diagnostics().streams.length === 1 };
}

/**
 * Waits until `count()` stops changing (a stalled transfer): unchanged for 100 ms, as a loaded
 * machine can hold a moving transfer still for a poll or two.
 */
async function settled(count: () => number): Promise<void> {
  let last = -1;
  let since = Date.now();
  await until(() => {
    const now = count();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
    return Date.now() - since >= 100;
  }, 10_000);
}

describe('proxy data path (direct mode) keeps back-pressure', () => {
  it('a client that stops reading holds at most its window in the proxy and stalls no other stream', async () => {
    const { paths, stats, oneStream } = await proxyToSimGuest('bp');
    const n = 48 * 1024 * 1024;
    const idle = await connect(paths.listen);
    cleanups.push(() => idle.destroy());
    idle.write(`source ${n} 7\n`); // and read nothing for now
    await until(() => oneStream() && stats().bytesIn > 0);
    // Stalled: nothing more arrives once the kernel's buffers and one window are full.
    await until(() => stats().bufferedIn > 0, 10_000);
    await settled(() => stats().bytesIn);
    const st = stats();
    expect(st.bytesIn).toBeLessThan(n);
    expect(st.bufferedIn).toBeGreaterThan(0);
    expect(st.bufferedIn).toBeLessThanOrEqual(st.windowSize);
    expect(st.windowSize).toBeLessThanOrEqual(4 * 1024 * 1024);

    // Other streams carry on meanwhile.
    expect(await echoChecked(paths.listen, 300_000)).toBe(true);

    // Reading again lets the rest through, in order.
    const digest = new DigestCounter();
    idle.on('data', (chunk: Buffer) => digest.update(chunk));
    await new Promise((resolve) => idle.once('end', resolve));
    expect({ bytes: digest.bytes, sha256: digest.hex() }).toEqual({ bytes: n, sha256: sourceDigest(n, 7) });
  }, 30_000);

  it('a guest that stops reading holds its client after one read and stalls no other stream', async () => {
    const { paths, stats, oneStream } = await proxyToSimGuest('bp-up');
    // The client sends without reading the echo: the guest's answers back up, so it stops
    // reading, and the stream's send window runs out.
    const client = await connect(paths.listen);
    cleanups.push(() => client.destroy());
    client.write('echo\n');
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    const pump = () => {
      while (client.write(chunk));
    };
    client.on('drain', pump);
    pump();
    await until(() => oneStream() && stats().bytesOut > 0);
    await settled(() => stats().bytesOut);
    // What the proxy took from the client and could not send: one socket read at most.
    expect(stats().bufferedOut).toBeLessThanOrEqual(64 * 1024);
    expect(await echoChecked(paths.listen, 300_000)).toBe(true);
  }, 30_000);
});
