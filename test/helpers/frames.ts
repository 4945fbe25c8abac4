// Raw Yamux frames for tests, written independently of src/yamux so that it can judge the
// engine: header encoding by hand, a whole-frame parser, a checker of the rules hashicorp
// enforces by killing the session, and a raw-frame socket peer.
import { once } from 'node:events';
import net from 'node:net';

export const T = { Data: 0, WindowUpdate: 1, Ping: 2, GoAway: 3 } as const;
export const F = { SYN: 1, ACK: 2, FIN: 4, RST: 8 } as const;
export const HEADER_BYTES = 12;
export const INITIAL_WINDOW = 256 * 1024;

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  /** Payload length (Data), window delta, ping value or GoAway code. */
  length: number;
  /** Data payload (copied); empty for other types. */
  payload: Buffer;
}

/** version u8 = 0, type u8, flags u16, stream id u32, length u32, all big-endian; then payload. */
export function encodeFrame(type: number, flags: number, streamId: number, length: number, payload?: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h[0] = 0;
  h[1] = type;
  h.writeUInt16BE(flags, 2);
  h.writeUInt32BE(streamId >>> 0, 4);
  h.writeUInt32BE(length >>> 0, 8);
  return payload && payload.length > 0 ? Buffer.concat([h, payload]) : h;
}

export function dataFrame(streamId: number, payload: Buffer | string, flags = 0): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return encodeFrame(T.Data, flags, streamId, p.length, p);
}

export function windowUpdate(streamId: number, flags: number, delta = 0): Buffer {
  return encodeFrame(T.WindowUpdate, flags, streamId, delta);
}

export function flagNames(flags: number): string {
  const n = (['SYN', 'ACK', 'FIN', 'RST'] as const).filter((_, i) => flags & (1 << i));
  return n.join('|') || '-';
}

/** "WindowUpdate SYN #1 0", "Data - #1 5 'hello'" — stable text for comparisons. */
export function describeFrame(f: RawFrame, opts: { payload?: boolean } = {}): string {
  const type = ['Data', 'WindowUpdate', 'Ping', 'GoAway'][f.type] ?? `Type${f.type}`;
  let s = `${type} ${flagNames(f.flags)} #${f.streamId} ${f.length}`;
  if (opts.payload !== false && f.type === T.Data && f.payload.length > 0 && f.payload.length <= 32) {
    s += ` ${JSON.stringify(f.payload.toString('latin1'))}`;
  }
  return s;
}

/** Gathers whole frames (header + payload) from chunks of any size. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);
  /** Whole frames found so far, in order. */
  readonly frames: RawFrame[] = [];

  push(chunk: Buffer): RawFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RawFrame[] = [];
    for (;;) {
      if (this.buf.length < HEADER_BYTES) break;
      if (this.buf[0] !== 0) throw new Error(`bad yamux version ${this.buf[0]}`);
      const type = this.buf[1]!;
      const length = this.buf.readUInt32BE(8);
      const payloadLen = type === T.Data ? length : 0;
      if (this.buf.length < HEADER_BYTES + payloadLen) break;
      const f: RawFrame = {
        type,
        flags: this.buf.readUInt16BE(2),
        streamId: this.buf.readUInt32BE(4),
        length,
        payload: Buffer.from(this.buf.subarray(HEADER_BYTES, HEADER_BYTES + payloadLen)),
      };
      this.buf = this.buf.subarray(HEADER_BYTES + payloadLen);
      out.push(f);
      this.frames.push(f);
    }
    return out;
  }

  /** Bytes of an incomplete frame still held. */
  get pending(): number {
    return this.buf.length;
  }
}

export type Side = 'a' | 'b';

interface StreamTrack {
  fin: Record<Side, boolean>;
  rst: Record<Side, boolean>;
  /** What each side may still send (credit granted by the other side). */
  credit: Record<Side, number>;
  /** Bytes each side sent on the stream. */
  sent: Record<Side, number>;
}

/**
 * Watches both directions of one link (a = one end, b = the other) and records every breach of
 * the rules hashicorp/yamux enforces by tearing down the session: a second FIN for a stream, a
 * Data frame beyond the receive window; plus data after the sender's own FIN or RST. The credit
 * a side may use grows with the window updates the observer has seen from the other side, which
 * the sender cannot have seen earlier, so a correct sender never trips it.
 */
export class LinkChecker {
  readonly violations: string[] = [];
  readonly streams = new Map<number, StreamTrack>();
  readonly frames: { from: Side; frame: RawFrame }[] = [];
  private readonly parsers = { a: new FrameParser(), b: new FrameParser() };

  constructor(private readonly keepFrames = false) {}

  /** Feed raw bytes sent by `from`. */
  observe(from: Side, chunk: Buffer): void {
    for (const f of this.parsers[from].push(chunk)) this.frame(from, f);
  }

  frame(from: Side, f: RawFrame): void {
    if (this.keepFrames) this.frames.push({ from, frame: f });
    if (f.type !== T.Data && f.type !== T.WindowUpdate) return;
    const other: Side = from === 'a' ? 'b' : 'a';
    let s = this.streams.get(f.streamId);
    if (!s) {
      s = {
        fin: { a: false, b: false },
        rst: { a: false, b: false },
        credit: { a: INITIAL_WINDOW, b: INITIAL_WINDOW },
        sent: { a: 0, b: 0 },
      };
      this.streams.set(f.streamId, s);
    }
    const what = `${from}: ${describeFrame(f, { payload: false })}`;
    if (f.type === T.WindowUpdate) s.credit[other] += f.length;
    if (f.type === T.Data && f.length > 0) {
      if (s.fin[from]) this.violations.push(`${what}: data after own FIN`);
      if (s.rst[from]) this.violations.push(`${what}: data after own RST`);
      if (f.length > s.credit[from]) {
        this.violations.push(`${what}: exceeds the window (credit ${s.credit[from]})`);
      }
      s.credit[from] -= f.length;
      s.sent[from] += f.length;
    }
    if (f.flags & F.FIN) {
      if (s.fin[from]) this.violations.push(`${what}: second FIN`);
      s.fin[from] = true;
    }
    if (f.flags & F.RST) s.rst[from] = true;
  }
}

/**
 * A socket peer that speaks raw frames: send exact bytes, see every frame that arrives. Used for
 * what hashicorp cannot emit (ACK|FIN in one frame, data with FIN...) and to capture what an
 * engine emits.
 */
export class RawPeer {
  readonly parser = new FrameParser();
  private waiters: { pred: (f: RawFrame) => boolean; resolve: (f: RawFrame) => void }[] = [];
  readonly ended: Promise<void>;
  /** Answer Ping SYN with Ping ACK automatically. */
  autoPong = true;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.parser.push(chunk)) {
        if (this.autoPong && f.type === T.Ping && f.flags & F.SYN) socket.write(encodeFrame(T.Ping, F.ACK, 0, f.length));
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(f)) return true;
          w.resolve(f);
          return false;
        });
      }
    });
    socket.on('error', () => {});
    this.ended = new Promise((r) => socket.once('close', () => r()));
  }

  static async connect(path: string): Promise<RawPeer> {
    const s = net.connect(path);
    await once(s, 'connect');
    return new RawPeer(s);
  }

  get frames(): RawFrame[] {
    return this.parser.frames;
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** The first frame (already received or future) matching `pred`. */
  waitFor(pred: (f: RawFrame) => boolean, timeoutMs = 5000, what = 'frame'): Promise<RawFrame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`raw peer: no ${what} within ${timeoutMs} ms; got:\n${this.frames.map((f) => describeFrame(f)).join('\n')}`));
      }, timeoutMs);
      const waiter = {
        pred,
        resolve: (f: RawFrame) => {
          clearTimeout(timer);
          resolvePromise(f);
        },
      };
      this.waiters.push(waiter);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A Unix-socket server handing each connection to a RawPeer. */
export async function listenRaw(path: string): Promise<{ server: net.Server; next(): Promise<RawPeer>; close(): void }> {
  const queue: RawPeer[] = [];
  const takers: ((p: RawPeer) => void)[] = [];
  const peers: RawPeer[] = [];
  const server = net.createServer((sock) => {
    const p = new RawPeer(sock);
    peers.push(p);
    const t = takers.shift();
    if (t) t(p);
    else queue.push(p);
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    server,
    next: () => {
      const p = queue.shift();
      return p ? Promise.resolve(p) : new Promise((r) => takers.push(r));
    },
    close: () => {
      server.close();
      for (const p of peers) p.close();
    },
  };
}
