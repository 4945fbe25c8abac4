// A real pseudo-terminal pair from socat (raw, no echo) standing in for a serial guest channel.
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { openSerialChannel } from '../../src/channel/serial.js';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { connect, echoChecked } from '../helpers/clients.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import type { TempDir } from '../helpers/tmp.js';
import { perTest } from '../helpers/per-test.js';
import { HAVE_SOCAT, ptyPair as pty } from '../helpers/pty.js';

if (!HAVE_SOCAT) console.warn('[serial] socat not found (apt install socat): skipping tty tests');

const fx = perTest('kps');
const { cleanups } = fx;

function ptyPair(dir: TempDir = fx.tmp) {
  return pty(dir, cleanups);
}

/** Both ends of a pty pair opened as serial channels. */
async function channelPair(): Promise<[Duplex, Duplex]> {
  const { a, b } = await ptyPair();
  const left = await openSerialChannel(a, 115200);
  const right = await openSerialChannel(b, 115200);
  cleanups.push(() => {
    left.destroy();
    right.destroy();
  });
  return [left, right];
}

function collect(stream: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const take = (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      if (n < bytes) return;
      stream.off('data', take);
      stream.off('error', reject);
      resolve(Buffer.concat(chunks));
    };
    stream.on('data', take);
    stream.once('error', reject);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Names the step that hangs, if one does. */
function step<T>(name: string, promise: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${name}" did not finish in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe.skipIf(!HAVE_SOCAT)('serial guest channel over a pty pair', () => {
  it('passes every byte value unchanged in both directions (raw mode)', async () => {
    const [left, right] = await channelPair();
    const control = Buffer.from([0x03, 0x04, 0x0a, 0x0d, 0x11, 0x13, 0x1a, 0x1c, 0x7f, 0x00, 0xff]);
    const data = Buffer.concat([control, randomBytes(1 << 20), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
    const gotRight = collect(right, data.length);
    const gotLeft = collect(left, data.length);
    left.write(data);
    right.write(data);
    expect(sha(await gotRight)).toBe(sha(data));
    expect(sha(await gotLeft)).toBe(sha(data));
  });

  it('a write waiting for room survives reads that wait for data (request/response over the tty)', async () => {
    const [client, echo] = await channelPair();
    echo.on('data', (c: Buffer) => echo.write(c));
    // Each block is far larger than the tty buffers, and the next one only goes out once the
    // whole echo came back: a write left waiting with nothing more to read would hang here.
    for (let i = 0; i < 16; i++) {
      const block = randomBytes(256 * 1024);
      const back = collect(client, block.length);
      client.write(block);
      expect(sha(await step(`block ${i}`, back, 10_000))).toBe(sha(block));
    }
  });

  it('a read resumes when the peer sends, with nothing else going on in the process', async () => {
    // The poller's event resolves the waiting read's promise outside a callback scope: from
    // Node 26 on nothing drains the microtask queue after it, so without the fix the read stays
    // parked until some unrelated timer or I/O callback happens along.
    const [left, right] = await channelPair();
    for (let i = 0; i < 5; i++) {
      const got = collect(left, 4);
      await new Promise((r) => setTimeout(r, 50)); // the read is waiting for "readable"
      right.write(Buffer.from([i, 1, 2, 3]));
      expect(await step(`message ${i}`, got, 3_000)).toEqual(Buffer.from([i, 1, 2, 3]));
    }
  });

  it('the daemon carries concurrent checksummed streams through the tty to a yamux guest', async () => {
    const { daemon, listen, socat, guestSession } = await daemonOverTty();
    const results = await step(
      'echo through the tty',
      Promise.all(Array.from({ length: 16 }, (_, i) => echoChecked(listen, 20_000 + i * 5_000))),
    ).catch((err: Error) => {
      const guestState = JSON.stringify({ session: guestSession.stats(), streams: guestSession.streamStats() });
      throw new Error(`${err.message}\nguest: ${guestState}\ndaemon log:\n${daemon.lines.slice(-30).join('\n')}`);
    });
    expect(results.every(Boolean)).toBe(true);
    // The tty vanishing ends the guest channel: the daemon exits with status 3.
    socat.kill();
    expect((await step('daemon exits', daemon.exited)).code).toBe(3);
  });

  it('SIGTERM with the tty idle: the tty is closed and the daemon exits 0 right after "exiting"', async () => {
    const { daemon, listen } = await daemonOverTty();
    expect(await echoChecked(listen, 10_000)).toBe(true);
    expect(await stopTimed(daemon)).toEqual({ code: 0, withinASecondOfExiting: true });
  });

  it('SIGTERM during a transfer over the tty: orderly stop, exit 0 within the drain timeout', async () => {
    const { daemon, listen } = await daemonOverTty(['-drain-timeout', '2']);
    const client = await connect(listen);
    client.write('source 1000000000\n');
    let received = 0;
    const flowing = new Promise<void>((resolve) =>
      client.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > 1 << 20) resolve();
      }),
    );
    // The stream is finished (FIN) or reset by the stop: the client sees its end either way.
    const clientEnded = new Promise((resolve) => {
      client.once('end', resolve);
      client.once('error', resolve);
    });
    await step('transfer under way', flowing);
    const started = Date.now();
    expect(await stopTimed(daemon)).toEqual({ code: 0, withinASecondOfExiting: true });
    expect(Date.now() - started).toBeLessThan(2_000 + 1_000);
    await step('client connection ends', clientEnded, 5_000);
    client.destroy();
  });
});

/** A simulated guest on one end of a pty pair, the real daemon with -mux-device on the other. */
async function daemonOverTty(extraArgs: string[] = []) {
  const dir = fx.tmp;
  const { a, b, socat } = await ptyPair();
  const guest = new SimulatedGuest({ muxSocket: dir.socket('unused') });
  const guestEnd = await openSerialChannel(b, 115200);
  const guestSession = guest.serveChannel(guestEnd);
  cleanups.push(() => guestEnd.destroy());
  const listen = dir.socket('proxy');
  const daemon = spawnDaemon([
    '-listen-socket', `unix://${listen}`, '-mux-device', a, '-baud', '115200', '-sandbox', 'tty', '-log', 'debug', ...extraArgs,
  ]);
  cleanups.push(() => daemon.stop());
  await step('daemon listens', daemon.waitForListen(listen));
  return { daemon, listen, socat, guestSession };
}

/** SIGTERM, then the exit status and whether the process was gone within 1 s of its "exiting" record. */
async function stopTimed(daemon: Daemon): Promise<{ code: number | null; withinASecondOfExiting: boolean }> {
  let exitingAt = 0;
  const exitingLogged = daemon.waitForLine((line) => line.includes('"msg":"exiting"') || line.includes('msg=exiting'), 15_000);
  void exitingLogged.then(() => (exitingAt = Date.now()), () => {});
  daemon.proc.kill('SIGTERM');
  const { code } = await step('daemon exits after SIGTERM', daemon.exited, 15_000);
  const exitedAt = Date.now();
  await exitingLogged;
  return { code, withinASecondOfExiting: exitingAt > 0 && exitedAt - exitingAt < 1_000 };
}
