// The client side of every measurement, run inside the load-generator child (load-client.ts).
// Each workload speaks the guest services of src/sim/services.ts / test/go-peer/main.go
// (echo [n] | sink [n] | discard [n] | source <n> [seed]) over a "connection": a Unix-socket
// connection (plain server or proxy), or a stream of our own yamux session (the engine without
// the proxy).
//
// Hot path: data is written from a pre-generated 1 MiB buffer in 64 KiB slices (no generation,
// no copy) and received bytes are only counted. sha256 checks happen only with verify=true (the
// orchestrator's untimed warm-up run, where uploads go to the hashing sink); timed uploads go
// to discard, which only counts, on every server alike.
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { PatternGenerator } from '../src/sim/pattern.js';
import { Session } from '../src/yamux/index.js';
import type {
  Direction,
  HoldResult,
  LatencyResult,
  StormResult,
  Target,
  ThroughputResult,
} from './protocol.js';

const CHUNK = 64 * 1024;
const BLOCK = 1 << 20;
const SEED = 42;
const block = new PatternGenerator(SEED + 1).next(BLOCK);
const chunks: Buffer[] = [];
for (let off = 0; off < BLOCK; off += CHUNK) chunks.push(block.subarray(off, off + CHUNK));

const digestCache = new Map<string, string>();

/** sha256 of the first n bytes of the repeated upload block (what up and echo send). */
function repeatedDigest(n: number): string {
  const key = `r${n}`;
  let d = digestCache.get(key);
  if (!d) {
    const h = createHash('sha256');
    let left = n;
    for (; left >= BLOCK; left -= BLOCK) h.update(block);
    if (left > 0) h.update(block.subarray(0, left));
    d = h.digest('hex');
    digestCache.set(key, d);
  }
  return d;
}

/** sha256 of the first n bytes of generator stream SEED (what the source service sends). */
function sourceDigest(n: number): string {
  const key = `s${n}`;
  let d = digestCache.get(key);
  if (!d) {
    const h = createHash('sha256');
    const gen = new PatternGenerator(SEED);
    for (let left = n; left > 0; left -= Math.min(left, BLOCK)) h.update(gen.next(Math.min(left, BLOCK)));
    d = h.digest('hex');
    digestCache.set(key, d);
  }
  return d;
}

// ---- connections -----------------------------------------------------------------------------

type Opener = () => Promise<Duplex>;

export class Connector {
  private readonly sessions = new Map<string, Session>();

  /** A function that opens one connection to `target`. */
  async opener(target: Target): Promise<Opener> {
    if (target.kind === 'socket') {
      return () => connectSocket(target.path);
    }
    const session = await this.session(target.path);
    return () => Promise.resolve(session.open());
  }

  async closeAll(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map((s) => s.close(1000)));
  }

  private async session(path: string): Promise<Session> {
    const live = this.sessions.get(path);
    if (live && !live.closed) return live;
    const socket = await connectSocket(path);
    // The proxy's own session settings (src/proxy/proxy.ts): keepalive off, no write timeout.
    const session = new Session(socket, {
      role: 'client',
      rejectInbound: true,
      config: { enableKeepAlive: false, connectionWriteTimeout: 0 },
    });
    session.on('close', () => {
      if (this.sessions.get(path) === session) this.sessions.delete(path);
    });
    this.sessions.set(path, session);
    return session;
  }
}

function connectSocket(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path, allowHalfOpen: true });
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** Resolves once `d` has closed (or at once if it already has). */
function closed(d: Duplex): Promise<void> {
  if (d.closed) return Promise.resolve();
  return new Promise((resolve) => d.once('close', () => resolve()));
}

/** Writes n bytes of the repeated block with back-pressure, in 64 KiB slices. */
function pump(d: Duplex, n: number): void {
  let left = n;
  let i = 0;
  const go = (): void => {
    while (left > 0) {
      let chunk = chunks[i]!;
      i = (i + 1) % chunks.length;
      if (left < chunk.length) chunk = chunk.subarray(0, left);
      left -= chunk.length;
      if (!d.write(chunk)) {
        if (left > 0) d.once('drain', go);
        return;
      }
    }
  };
  go();
}

// ---- throughput ------------------------------------------------------------------------------

function oneStream(d: Duplex, dir: Direction, n: number, verify: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (msg: string) => {
      d.destroy();
      reject(new Error(msg));
    };
    d.once('error', (err) => reject(err));
    if (dir === 'up') {
      let reply = '';
      d.on('data', (c: Buffer) => (reply += c.toString('latin1')));
      d.once('end', () => {
        d.end();
        const fields = reply.trim().split(' ');
        if (Number(fields.at(-1)) !== n) return fail(`${service} reply ${JSON.stringify(reply)}, wanted ${n} bytes`);
        if (verify && fields[0] !== repeatedDigest(n)) return fail('sink digest mismatch');
        resolve();
      });
      // Timed rounds use discard: Go 1.19's sha256 (~300 MiB/s here) would cap the Go guest.
      const service = verify ? 'sink' : 'discard';
      d.write(`${service} ${n}\n`);
      pump(d, n);
      return;
    }
    let got = 0;
    const hash = verify ? createHash('sha256') : null;
    d.on('data', (c: Buffer) => {
      got += c.length;
      hash?.update(c);
    });
    d.once('end', () => {
      d.end();
      if (got !== n) return fail(`${dir}: got ${got} bytes, wanted ${n}`);
      if (hash) {
        const want = dir === 'down' ? sourceDigest(n) : repeatedDigest(n);
        if (hash.digest('hex') !== want) return fail(`${dir}: digest mismatch`);
      }
      resolve();
    });
    if (dir === 'down') {
      d.write(`source ${n} ${SEED}\n`);
    } else {
      d.write(`echo ${n}\n`);
      pump(d, n);
    }
  });
}

export async function throughput(
  connector: Connector,
  target: Target,
  dir: Direction,
  streams: number,
  bytesPerStream: number,
  verify: boolean,
): Promise<ThroughputResult> {
  const open = await connector.opener(target);
  if (verify) {
    // Expected digests are computed before the clock starts.
    if (dir === 'down') sourceDigest(bytesPerStream);
    else repeatedDigest(bytesPerStream);
  }
  const errors: string[] = [];
  const conns: Duplex[] = [];
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: streams }, async () => {
      try {
        const d = await open();
        conns.push(d);
        await oneStream(d, dir, bytesPerStream, verify);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(conns.map(closed));
  return { seconds, bytes: bytesPerStream * streams, errors };
}

// ---- latency ---------------------------------------------------------------------------------

/** Request/response round trips of `size` bytes over one long-lived connection (as a shim does). */
export async function requestResponse(
  connector: Connector,
  target: Target,
  count: number,
  warmup: number,
  size: number,
): Promise<LatencyResult> {
  const open = await connector.opener(target);
  const d = await open();
  const payload = Buffer.alloc(size, 0x61);
  const samples: number[] = [];
  let waiting = 0;
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  d.on('data', (c: Buffer) => {
    waiting -= c.length;
    if (waiting <= 0 && wake) {
      const w = wake;
      wake = null;
      w();
    }
  });
  d.once('error', (err) => {
    failure = err;
    wake?.();
  });
  d.write('echo\n');
  for (let i = 0; i < warmup + count; i++) {
    const t0 = process.hrtime.bigint();
    waiting = size;
    await new Promise<void>((resolve) => {
      wake = resolve;
      d.write(payload);
    });
    const dt = Number(process.hrtime.bigint() - t0) / 1000;
    if (failure) return { samplesUs: samples, errors: [(failure as Error).message] };
    if (i >= warmup) samples.push(dt);
  }
  d.end();
  d.resume();
  await closed(d);
  return { samplesUs: samples, errors: [] };
}

/** One short exchange: open, send "echo <size>" and size bytes, read them and EOF, close. */
function exchange(open: Opener, request: Buffer, size: number): Promise<Duplex> {
  return open().then(
    (d) =>
      new Promise<Duplex>((resolve, reject) => {
        let got = 0;
        d.on('data', (c: Buffer) => (got += c.length));
        d.once('error', reject);
        d.once('end', () => {
          d.end();
          if (got !== size) reject(new Error(`got ${got} of ${size} bytes`));
          else resolve(d);
        });
        d.write(request);
      }),
  );
}

function echoRequest(size: number): Buffer {
  return Buffer.concat([Buffer.from(`echo ${size}\n`), Buffer.alloc(size, 0x62)]);
}

/** connect + request + response + close, one after another (as the runtime CLI does). */
export async function connectRequestClose(
  connector: Connector,
  target: Target,
  count: number,
  warmup: number,
  size: number,
): Promise<LatencyResult> {
  const open = await connector.opener(target);
  const request = echoRequest(size);
  const samples: number[] = [];
  const errors: string[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const t0 = process.hrtime.bigint();
    try {
      const d = await exchange(open, request, size);
      const dt = Number(process.hrtime.bigint() - t0) / 1000;
      if (i >= warmup) samples.push(dt);
      await closed(d); // outside the timing: the next request starts on a quiet system
    } catch (err) {
      errors.push((err as Error).message);
      if (errors.length > 10) break;
    }
  }
  return { samplesUs: samples, errors };
}

// ---- connection storm ------------------------------------------------------------------------

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message.slice(0, 60);
}

export async function storm(connector: Connector, target: Target, clients: number, size: number): Promise<StormResult> {
  const open = await connector.opener(target);
  const request = echoRequest(size);
  const t0 = process.hrtime.bigint();
  let last = t0;
  const errors: Record<string, number> = {};
  const conns: Duplex[] = [];
  const results = await Promise.allSettled(
    Array.from({ length: clients }, () =>
      exchange(open, request, size).then((d) => {
        const now = process.hrtime.bigint();
        if (now > last) last = now;
        conns.push(d);
      }),
    ),
  );
  let served = 0;
  let refused = 0;
  for (const r of results) {
    if (r.status === 'fulfilled') served++;
    else {
      const code = errorCode(r.reason);
      errors[code] = (errors[code] ?? 0) + 1;
      if (code === 'ECONNREFUSED' || code === 'EAGAIN') refused++;
    }
  }
  await Promise.all(conns.map(closed));
  return { lastAnswerMs: Number(last - t0) / 1e6, served, refused, errors };
}

// ---- idle connections ------------------------------------------------------------------------

export class Holder {
  private held: Duplex[] = [];

  /** Opens `count` connections (in batches), each with one echo exchange done, and keeps them open. */
  async hold(connector: Connector, target: Target, count: number, batch: number): Promise<HoldResult> {
    const open = await connector.opener(target);
    const errors: Record<string, number> = {};
    const payload = Buffer.alloc(16, 0x63);
    const t0 = Date.now();
    for (let done = 0; done < count; done += batch) {
      const n = Math.min(batch, count - done);
      await Promise.all(
        Array.from({ length: n }, async () => {
          try {
            const d = await open();
            d.on('error', () => {});
            await new Promise<void>((resolve, reject) => {
              let got = 0;
              const onData = (c: Buffer) => {
                got += c.length;
                if (got >= payload.length) {
                  d.off('data', onData);
                  d.resume();
                  resolve();
                }
              };
              d.on('data', onData);
              d.once('error', reject);
              d.once('end', () => reject(new Error('ended early')));
              d.write('echo\n');
              d.write(payload);
            });
            this.held.push(d);
          } catch (err) {
            const code = errorCode(err);
            errors[code] = (errors[code] ?? 0) + 1;
          }
        }),
      );
    }
    return { open: this.held.length, errors, ms: Date.now() - t0 };
  }

  async release(): Promise<void> {
    const held = this.held;
    this.held = [];
    for (const d of held) d.end();
    await Promise.race([Promise.all(held.map(closed)), new Promise((r) => setTimeout(r, 5000))]);
    for (const d of held) d.destroy();
  }
}
