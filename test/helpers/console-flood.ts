// A guest console that floods (the QEMU console.sock the daemon connects to) and a slow reader
// for the daemon's stderr (a lagging journald): shared by the flood tests and the bench's floods.
import net from 'node:net';
import type { Readable } from 'node:stream';

/** A console socket serving one client, like QEMU's chardev; `client` resolves on its connection. */
export class FloodConsole {
  readonly client: Promise<net.Socket>;
  private readonly server: net.Server;
  private stopped = false;

  private constructor(server: net.Server, client: Promise<net.Socket>) {
    this.server = server;
    this.client = client;
  }

  static async listen(path: string): Promise<FloodConsole> {
    let resolveClient!: (s: net.Socket) => void;
    const client = new Promise<net.Socket>((r) => (resolveClient = r));
    const server = net.createServer((s) => {
      s.on('error', () => {});
      resolveClient(s);
    });
    await new Promise<void>((r, reject) => server.once('error', reject).listen(path, r));
    return new FloodConsole(server, client);
  }

  /**
   * Writes `bytes` of console output as fast as the reader takes it (or at `bytesPerSecond`), in
   * lines of `lineBytes` (with their LF; 0: one line of `bytes`), until `until` says stop.
   * Resolves with the bytes written.
   */
  async flood(bytes: number, lineBytes: number, o: { until?: () => boolean; bytesPerSecond?: number } = {}): Promise<number> {
    const socket = await this.client;
    const lineEnd = lineBytes || bytes;
    const short = lineEnd <= CHUNK;
    const chunk = short ? linesChunk(lineEnd) : Buffer.alloc(CHUNK, 'x');
    let sent = 0;
    let inLine = 0;
    const t0 = performance.now();
    const write = async (piece: Buffer) => {
      sent += piece.length;
      if (!socket.write(piece)) await drained(socket);
      const ahead = o.bytesPerSecond ? (sent / o.bytesPerSecond) * 1000 - (performance.now() - t0) : 0;
      if (ahead >= 1) await new Promise((r) => setTimeout(r, ahead));
    };
    while (sent < bytes && !this.stopped && !socket.destroyed && !(o.until?.() ?? false)) {
      if (short) {
        await write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
        continue;
      }
      const n = Math.min(chunk.length, lineEnd - 1 - inLine, bytes - sent - 1);
      if (n > 0) await write(chunk.subarray(0, n));
      inLine += n;
      if (inLine === lineEnd - 1 || sent === bytes - 1) {
        await write(LF);
        inLine = 0;
      }
    }
    return sent;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.server.close();
    (await Promise.race([this.client, Promise.resolve(null)]))?.destroy();
  }
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done).off('close', done);
      resolve();
    };
    socket.on('drain', done).on('close', done);
  });
}

const CHUNK = 1 << 20;
const LF = Buffer.from('\n');

/** Whole lines of `lineBytes` (LF included), about 1 MiB of them. */
function linesChunk(lineBytes: number): Buffer {
  const chunk = Buffer.alloc(CHUNK - (CHUNK % lineBytes), 'x');
  for (let end = lineBytes - 1; end < chunk.length; end += lineBytes) chunk[end] = 0x0a;
  return chunk;
}

/**
 * Reads a stream slowly, `bytesPerSecond` at most, as a lagging log reader would; keeps the lines
 * `keep` selects and counts the rest. finish() reads the rest at full speed.
 */
export class SlowReader {
  readonly kept: string[] = [];
  lines = 0;
  bytes = 0;
  private partial = '';
  private fast = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stream: Readable,
    bytesPerSecond: number,
    private readonly keep: (line: string) => boolean,
  ) {
    stream.pause();
    const perTick = Math.max(1, Math.round(bytesPerSecond / 100));
    this.timer = setInterval(() => {
      const n = Math.min(perTick, stream.readableLength);
      if (n > 0) this.take(stream.read(n) as Buffer | null);
    }, 10);
  }

  /** From now on reads at full speed (a reader catching up). */
  speedUp(): void {
    if (this.fast) return;
    this.fast = true;
    clearInterval(this.timer);
    this.stream.on('data', (chunk: Buffer) => this.take(chunk));
    this.stream.resume();
  }

  /** Reads everything left at full speed; resolves at the end of the stream. */
  finish(): Promise<void> {
    const ended = this.stream.readableEnded ? Promise.resolve() : new Promise<void>((r) => this.stream.once('end', r));
    this.speedUp();
    return ended.then(() => this.take(null));
  }

  private take(chunk: Buffer | null): void {
    if (!chunk) {
      if (this.partial) this.line(this.partial);
      this.partial = '';
      return;
    }
    this.bytes += chunk.length;
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop()!;
    for (const line of parts) this.line(line);
  }

  private line(line: string): void {
    this.lines++;
    if (this.keep(line)) this.kept.push(line);
  }
}
