import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';

/**
 * The simulated guest's services. A stream names its service in its first line:
 *   echo          every byte back until EOF, then FIN
 *   sink          read to EOF, answer "<sha256 hex> <byte count>\n", then FIN
 *   source N      N bytes of the pattern below, then FIN
 * Anything else gets a one-line help and FIN.
 */
export const SERVICE_HELP = 'unknown service; first line must be one of: echo | sink | source <bytes>\n';
const MAX_COMMAND_LINE = 256;

export function serveStream(stream: Duplex): void {
  stream.on('error', () => {}); // a client reset is routine here
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const nl = head.indexOf(0x0a);
    if (nl < 0) {
      if (head.length > MAX_COMMAND_LINE) dispatch('', Buffer.alloc(0));
      return;
    }
    dispatch(head.subarray(0, nl).toString('latin1').replace(/\r$/, '').trim(), head.subarray(nl + 1));
  };
  const dispatch = (command: string, rest: Buffer) => {
    stream.off('data', onData);
    stream.off('end', onEarlyEnd);
    const [name, arg] = command.split(/\s+/);
    if (name === 'echo') return echo(stream, rest);
    if (name === 'sink') return sink(stream, rest);
    if (name === 'source' && /^\d+$/.test(arg ?? '')) return source(stream, Number(arg));
    stream.end(SERVICE_HELP);
  };
  const onEarlyEnd = () => stream.end();
  stream.on('data', onData);
  stream.once('end', onEarlyEnd);
}

function echo(stream: Duplex, rest: Buffer): void {
  if (rest.length > 0) stream.write(rest);
  stream.pipe(stream);
}

function sink(stream: Duplex, rest: Buffer): void {
  const hash = createHash('sha256').update(rest);
  let bytes = rest.length;
  stream.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  stream.once('end', () => stream.end(`${hash.digest('hex')} ${bytes}\n`));
}

function source(stream: Duplex, total: number): void {
  const pattern = new PatternStream(1);
  let left = total;
  const pump = () => {
    while (left > 0) {
      const chunk = pattern.next(Math.min(left, 64 * 1024));
      left -= chunk.length;
      if (!stream.write(chunk)) return void stream.once('drain', pump);
    }
    stream.end();
  };
  // Whatever the client sends is read and dropped, so its FIN is seen.
  stream.resume();
  pump();
}

/** Deterministic bytes (xorshift32) so a client can check what `source` sent without a digest. */
export class PatternStream {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }

  next(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    let x = this.state;
    for (let i = 0; i < length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
    this.state = x;
    return out;
  }
}
