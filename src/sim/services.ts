import { createHash, type Hash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { PatternGenerator } from './pattern.js';

/**
 * The simulated guest's services (the same as the Go test peer's). A stream names its service
 * in its first line:
 *   echo [N]          every byte back until EOF (or N bytes), then FIN
 *   sink [N]          read to EOF (or N bytes), answer "<sha256 hex> <byte count>\n", then FIN
 *   discard [N]       like sink without hashing, for timed benchmarks: answer "<byte count>\n"
 *   source N [SEED]   N bytes of the pattern stream SEED (pattern.ts), then FIN
 * Anything else gets a one-line help and FIN.
 */
export const SERVICE_HELP = 'unknown service; first line must be one of: echo [bytes] | sink [bytes] | discard [bytes] | source <bytes> [seed]\n';
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
    const [name, ...args] = command.split(/\s+/);
    if (!args.every((a) => /^\d+$/.test(a))) return void stream.end(SERVICE_HELP);
    const [n, seed] = args.map(Number);
    if (name === 'echo' && args.length <= 1) return echo(stream, rest, n);
    if (name === 'sink' && args.length <= 1) return sink(stream, rest, n, createHash('sha256'));
    if (name === 'discard' && args.length <= 1) return sink(stream, rest, n, null);
    if (name === 'source' && n !== undefined && args.length <= 2) return source(stream, n, seed ?? 0);
    stream.end(SERVICE_HELP);
  };
  const onEarlyEnd = () => stream.end();
  stream.on('data', onData);
  stream.once('end', onEarlyEnd);
}

function echo(stream: Duplex, rest: Buffer, limit?: number): void {
  if (limit === undefined) {
    if (rest.length > 0) stream.write(rest);
    stream.pipe(stream);
    return;
  }
  let left = limit;
  const take = (chunk: Buffer) => {
    const piece = chunk.subarray(0, left);
    left -= piece.length;
    if (piece.length > 0 && !stream.write(piece)) {
      stream.pause();
      stream.once('drain', () => stream.resume());
    }
    if (left === 0) {
      stream.end();
      stream.off('data', take);
      stream.resume(); // drain to the peer's FIN
    }
  };
  stream.on('data', take);
  if (limit === 0) take(Buffer.alloc(0));
  else if (rest.length > 0) take(rest);
}

function sink(stream: Duplex, rest: Buffer, limit: number | undefined, hash: Hash | null): void {
  let bytes = 0;
  let replied = false;
  const reply = () => {
    if (replied) return;
    replied = true;
    stream.end(hash ? `${hash.digest('hex')} ${bytes}\n` : `${bytes}\n`);
  };
  const take = (chunk: Buffer) => {
    if (replied) return;
    const piece = limit === undefined ? chunk : chunk.subarray(0, limit - bytes);
    hash?.update(piece);
    bytes += piece.length;
    if (limit !== undefined && bytes >= limit) reply();
  };
  take(rest);
  stream.on('data', take);
  stream.once('end', reply);
}

function source(stream: Duplex, total: number, seed: number): void {
  const pattern = new PatternGenerator(seed);
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
