// A Unix-socket relay between whoever connects to `listenPath` (side "a") and a server at
// `targetPath` (side "b"). Bytes are forwarded both ways cut into random pieces of
// minPiece..maxPiece bytes (default 1..7), each a separate socket write; between batches of
// `piecesPerTurn` pieces the relay yields to the event loop so that the receiver gets a chance
// to read them apart (otherwise the kernel would glue them together again). Back-pressure is
// respected: a full socket pauses the source until 'drain'. With `rechunk: false` it is a
// plain (tapping) relay. `tap` sees every chunk as it was received, e.g. for a LinkChecker.
import { once } from 'node:events';
import net from 'node:net';
import { prng } from './data.js';

export type RelaySide = 'a' | 'b';

export interface RelayOptions {
  listenPath: string;
  targetPath: string;
  rechunk?: boolean;
  minPiece?: number;
  maxPiece?: number;
  /** Pieces written before yielding to the event loop (default 1). */
  piecesPerTurn?: number;
  seed?: number;
  tap?: (from: RelaySide, chunk: Buffer, connection: number) => void;
}

export interface Relay {
  readonly path: string;
  /** Bytes forwarded from a to b and from b to a. */
  readonly bytes: { a: number; b: number };
  readonly connections: number;
  close(): Promise<void>;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

async function waitDrain(sock: net.Socket): Promise<boolean> {
  if (sock.destroyed) return false;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      sock.off('drain', onDrain);
      sock.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    sock.on('drain', onDrain);
    sock.on('close', onClose);
  });
}

export async function startRechunkRelay(opts: RelayOptions): Promise<Relay> {
  const rnd = prng(opts.seed ?? 7);
  const min = opts.minPiece ?? 1;
  const max = opts.maxPiece ?? 7;
  const perTurn = opts.piecesPerTurn ?? 1;
  const rechunk = opts.rechunk ?? true;
  const sockets = new Set<net.Socket>();
  const bytes = { a: 0, b: 0 };
  let connections = 0;

  /** Forwards src -> dst; src is paused while its last chunk is being written out. */
  function pump(from: RelaySide, src: net.Socket, dst: net.Socket, conn: number): void {
    const queue: Buffer[] = [];
    let busy = false;
    let ended = false;
    const forward = async () => {
      busy = true;
      while (queue.length > 0) {
        const chunk = queue.shift()!;
        if (!rechunk) {
          if (!dst.write(chunk) && !(await waitDrain(dst))) return void src.destroy();
          continue;
        }
        let pieces = 0;
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(chunk.length - off, min + Math.floor(rnd() * (max - min + 1)));
          const ok = dst.write(chunk.subarray(off, off + n));
          off += n;
          if (!ok && !(await waitDrain(dst))) return void src.destroy();
          if (++pieces % perTurn === 0) await turn();
          if (dst.destroyed) return void src.destroy();
        }
      }
      busy = false;
      if (ended) dst.end();
      else src.resume();
    };
    src.on('data', (chunk: Buffer) => {
      opts.tap?.(from, chunk, conn);
      bytes[from] += chunk.length;
      queue.push(chunk);
      src.pause();
      if (!busy) void forward();
    });
    src.on('end', () => {
      ended = true;
      if (!busy) dst.end();
    });
  }

  const server = net.createServer({ allowHalfOpen: true }, (a) => {
    const conn = ++connections;
    const b = net.connect({ path: opts.targetPath, allowHalfOpen: true });
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        a.destroy();
        b.destroy();
      });
    }
    a.pause();
    b.once('connect', () => {
      pump('a', a, b, conn);
      pump('b', b, a, conn);
      a.resume();
    });
  });
  server.listen(opts.listenPath);
  await once(server, 'listening');
  return {
    path: opts.listenPath,
    bytes,
    get connections() {
      return connections;
    },
    async close() {
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
