// The Pod as the per-pod daemon and the host both run it.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { createLoggers } from '../../src/log/logger.js';
import { Pod } from '../../src/proxy/pod.js';
import { SimulatedGuest } from '../../src/sim/guest.js';

import { perTest } from '../helpers/per-test.js';

const t = perTest('kpo');
const loggers = createLoggers({ level: 'warn', format: 'json', sink: 'stderr', stderr: { write: () => {} } });

/** Connects as soon as the path accepts connections (as a shim started beside the proxy does). */
function connectEagerly(path: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const attempt = () => {
      const s = net.connect({ path, allowHalfOpen: true });
      s.once('connect', () => resolve(s));
      s.once('error', () => setImmediate(attempt));
    };
    attempt();
  });
}

describe('Pod', () => {
  it('serves clients that connect while its listen socket is still being set up', async () => {
    // Many at once, as a restarted host re-creates its pods: the thread pool is busy, so the
    // window between the socket's creation and the end of listenOnPath (its chmod) is wide.
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const listenSocket = t.tmp.socket(`p${i}`);
        const mux = t.tmp.socket(`g${i}`);
        const guest = new SimulatedGuest({ muxSocket: mux }); // a chardev serves one client
        await guest.start();
        t.cleanups.push(() => guest.stop());
        const pod = new Pod({ loggers, settings: { listenSocket, listenMode: 0o660, muxSocket: mux, agentLogRate: 0, retryTimeoutMs: 5000, drainTimeoutMs: 1000, heartbeatMs: 0 } });
        t.cleanups.push(() => pod.stop());
        const client = connectEagerly(listenSocket);
        await pod.start();
        const s = await client;
        t.cleanups.push(() => s.destroy());
        const reply: Buffer[] = [];
        s.on('data', (c: Buffer) => reply.push(c));
        const ended = new Promise((r) => s.once('end', r));
        s.end('echo\nearly bird');
        await ended;
        expect(Buffer.concat(reply).toString()).toBe('early bird');
      }),
    );
  });
});
