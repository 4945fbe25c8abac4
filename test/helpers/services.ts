// The little service protocol spoken over test streams, on any Duplex (a yamux Stream, a
// proxied socket...). It matches the Go peer's SERVICES and CLIENT SIDE (test/go-peer/main.go):
// the first line of a stream names the service.
//
//   echo [n]            copy back until EOF (or exactly n bytes), then end
//   sink [n]            read to EOF (or n bytes), reply "<sha256hex> <count>\n", end
//   source <n> <seed>   write n generator bytes (data.ts), end
//   fin-first <n> <seed> <m>   like source (the TS side reads the m bytes like any other)
//
// Servers here end their side first when they know the length, then keep reading to EOF and
// report what came after their FIN (`afterFin`): that is the half-close the Go peer cannot do.
import type { Duplex, Readable, Writable } from 'node:stream';
import { DigestCounter, SourceGenerator, sourceDigest } from './data.js';

/** Pull-style reader over a Readable in paused mode: the yamux window only re-opens as we read. */
export class ByteReader {
  private ended = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly src: Readable) {
    const wake = () => {
      const w = this.wake;
      this.wake = null;
      w?.();
    };
    src.on('readable', wake);
    src.on('end', () => {
      this.ended = true;
      wake();
    });
    src.on('error', (err: Error) => {
      this.error ??= err;
      wake();
    });
    src.on('close', () => {
      if (!this.ended) this.error ??= new Error('stream closed before its end');
      wake();
    });
  }

  /** The next chunk (at most `max` bytes), or null at the end. Rejects if the stream failed. */
  async chunk(max = Infinity): Promise<Buffer | null> {
    for (;;) {
      const c = this.src.read() as Buffer | null;
      if (c !== null) {
        if (c.length > max) {
          this.src.unshift(c.subarray(max));
          return c.subarray(0, max);
        }
        return c;
      }
      if (this.ended) return null;
      if (this.error) throw this.error;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** One line without its "\n" (null at the end); the bytes after it stay unread. */
  async line(limit = 4096): Promise<string | null> {
    const parts: Buffer[] = [];
    let len = 0;
    for (;;) {
      const c = await this.chunk();
      if (c === null) return len ? Buffer.concat(parts).toString() : null;
      const nl = c.indexOf(10);
      if (nl >= 0) {
        parts.push(c.subarray(0, nl));
        if (nl + 1 < c.length) this.src.unshift(c.subarray(nl + 1));
        return Buffer.concat(parts).toString();
      }
      parts.push(c);
      len += c.length;
      if (len > limit) throw new Error('line too long');
    }
  }

  /** Reads to the end (or `limit` bytes): sha256 and count; `onChunk` sees each piece. */
  async drain(limit = Infinity, onChunk?: (c: Buffer) => void): Promise<{ sha256: string; bytes: number }> {
    const d = new DigestCounter();
    while (d.bytes < limit) {
      const c = await this.chunk(limit - d.bytes);
      if (c === null) break;
      d.update(c);
      onChunk?.(c);
    }
    return { sha256: d.hex(), bytes: d.bytes };
  }

  /** Everything up to the end as one buffer. */
  async all(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (let c = await this.chunk(); c !== null; c = await this.chunk()) parts.push(c);
    return Buffer.concat(parts);
  }
}

/** write() with back-pressure: resolves once the stream wants more; rejects if it fails. */
export function writeChunk(stream: Writable, chunk: Buffer): Promise<void> {
  if (stream.destroyed) return Promise.reject(stream.errored ?? new Error('write to a destroyed stream'));
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(stream.errored ?? new Error('stream closed while writing'));
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/** Writes the first `n` bytes of generator stream `seed`; returns their sha256. */
export async function writeSource(stream: Writable, n: number, seed: number, chunkSize = 64 * 1024): Promise<string> {
  const gen = new SourceGenerator(seed);
  const d = new DigestCounter();
  for (let left = n; left > 0; ) {
    const k = Math.min(chunkSize, left);
    const c = gen.next(k);
    d.update(c);
    left -= k;
    await writeChunk(stream, c);
  }
  return d.hex();
}

/** end() and wait until everything (and the FIN) was handed over. */
export function endStream(stream: Writable): Promise<void> {
  if (stream.writableFinished) return Promise.resolve();
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}

export interface ServiceReport {
  service: string;
  args: string[];
  in: number;
  out: number;
  inSha256: string;
  /** What the client sent after we had ended our side. */
  afterFin?: { bytes: number; sha256: string };
  error?: Error;
}

export interface ServeOptions {
  /** `hold` waits for this before reading. */
  release?: Promise<void>;
  onReport?: (r: ServiceReport) => void;
}

/** Serves one stream: reads the service line and runs it. Never rejects: errors go in the report. */
export async function serveService(stream: Duplex, opts: ServeOptions = {}): Promise<ServiceReport> {
  const r = new ByteReader(stream);
  const rep: ServiceReport = { service: '?', args: [], in: 0, out: 0, inSha256: '' };
  stream.on('error', () => {}); // reported through the reader / writer
  const inHash = new DigestCounter();
  const count = (c: Buffer) => inHash.update(c);
  const write = async (c: Buffer) => {
    rep.out += c.length;
    await writeChunk(stream, c);
  };
  try {
    const line = await r.line();
    if (line === null) throw new Error('no service line');
    const [service = '', ...args] = line.trim().split(/\s+/);
    rep.service = service;
    rep.args = args;
    const num = (i: number) => (args[i] === undefined ? -1 : Number(args[i]));
    const reply = () => write(Buffer.from(`${inHash.hex()} ${inHash.bytes}\n`));
    switch (service) {
      case 'echo': {
        const n = num(0);
        while (n < 0 || inHash.bytes < n) {
          const c = await r.chunk(n < 0 ? Infinity : n - inHash.bytes);
          if (c === null) break;
          count(c);
          await write(c);
        }
        break;
      }
      case 'sink':
        await r.drain(num(0) < 0 ? Infinity : num(0), count);
        await reply();
        break;
      case 'hold':
        await opts.release;
        await r.drain(Infinity, count);
        await reply();
        break;
      case 'source':
      case 'fin-first':
        rep.out = num(0);
        await writeSource(stream, num(0), num(1));
        break;
      default:
        throw new Error(`unknown service ${JSON.stringify(service)}`);
    }
    await endStream(stream);
    const after = await r.drain();
    if (after.bytes > 0 || service !== 'echo') rep.afterFin = after;
  } catch (err) {
    rep.error = err as Error;
    stream.destroy(); // a yamux stream: RST
  }
  rep.in = inHash.bytes;
  rep.inSha256 = inHash.hex();
  opts.onReport?.(rep);
  return rep;
}

// ---- the client side, against a Go `serve` or a TS serveService -------------------------

export interface ExchangeResult {
  bytesIn: number;
  bytesOut: number;
}

function mismatch(what: string, got: unknown, want: unknown): Error {
  return new Error(`${what}: got ${String(got)}, want ${String(want)}`);
}

/**
 * "echo" (until EOF: we end() first and keep reading) or "echo <n>" (`withLength`: the server
 * ends after n bytes). Throws unless the bytes that come back are exactly the bytes sent.
 */
export async function echoExchange(
  stream: Duplex,
  size: number,
  seed: number,
  opts: { withLength?: boolean } = {},
): Promise<ExchangeResult> {
  const reader = new ByteReader(stream);
  await writeChunk(stream, Buffer.from(opts.withLength ? `echo ${size}\n` : 'echo\n'));
  const reading = reader.drain();
  reading.catch(() => {});
  const sent = await writeSource(stream, size, seed);
  await endStream(stream);
  const got = await reading;
  if (got.bytes !== size) throw mismatch('echo byte count', got.bytes, size);
  if (got.sha256 !== sent) throw mismatch('echo sha256', got.sha256, sent);
  return { bytesIn: got.bytes, bytesOut: size };
}

/** "sink": send `size` bytes, end(), read the "<sha256> <count>" reply and check it. */
export async function sinkExchange(
  stream: Duplex,
  size: number,
  seed: number,
  opts: { withLength?: boolean; service?: string } = {},
): Promise<ExchangeResult> {
  const reader = new ByteReader(stream);
  const service = opts.service ?? 'sink';
  await writeChunk(stream, Buffer.from(opts.withLength ? `${service} ${size}\n` : `${service}\n`));
  const replying = reader.all();
  replying.catch(() => {});
  const sent = await writeSource(stream, size, seed);
  await endStream(stream);
  const reply = (await replying).toString();
  if (reply !== `${sent} ${size}\n`) throw mismatch('sink reply', JSON.stringify(reply), `${sent} ${size}`);
  return { bytesIn: reply.length, bytesOut: size };
}

/** "source <n> <seed>": read n bytes to EOF and check them against the generator. */
export async function sourceExchange(
  stream: Duplex,
  size: number,
  seed: number,
  opts: { endFirst?: boolean } = {},
): Promise<ExchangeResult> {
  const reader = new ByteReader(stream);
  await writeChunk(stream, Buffer.from(`source ${size} ${seed}\n`));
  if (opts.endFirst ?? true) await endStream(stream);
  const got = await reader.drain();
  if (!(opts.endFirst ?? true)) await endStream(stream);
  if (got.bytes !== size) throw mismatch('source byte count', got.bytes, size);
  if (got.sha256 !== sourceDigest(size, seed)) throw mismatch('source sha256', got.sha256, sourceDigest(size, seed));
  return { bytesIn: size, bytesOut: 0 };
}
