// Deterministic test data and sha256 helpers. The generator lives in src/sim/pattern.ts (the
// simulated guest's `source` service uses it) and matches the Go peer's GENERATOR.
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';

import { PatternGenerator as SourceGenerator } from '../../src/sim/pattern.js';

export { SourceGenerator };
export { ZERO_SEED_REPLACEMENT } from '../../src/sim/pattern.js';

/** The first `n` bytes of stream `seed` in one buffer (keep n moderate). */
export function sourceBytes(n: number, seed: number): Buffer {
  return new SourceGenerator(seed).next(n);
}

/** A Readable of the first `n` bytes of stream `seed`, in chunks of `chunkSize`. */
export function sourceReadable(n: number, seed: number, chunkSize = 64 * 1024): Readable {
  const gen = new SourceGenerator(seed);
  let left = n;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const k = Math.min(chunkSize, left);
      left -= k;
      this.push(gen.next(k));
    },
  });
}

/** Calls `fn` with successive chunks of the sequence (synchronously). */
export function forEachSourceChunk(n: number, seed: number, fn: (chunk: Buffer) => void, chunkSize = 64 * 1024): void {
  const gen = new SourceGenerator(seed);
  for (let left = n; left > 0; left -= Math.min(chunkSize, left)) fn(gen.next(Math.min(chunkSize, left)));
}

const digestCache = new Map<string, string>();

/** sha256 (hex) of the first `n` bytes of stream `seed`; cached. */
export function sourceDigest(n: number, seed: number): string {
  const key = `${n}:${seed >>> 0}`;
  let d = digestCache.get(key);
  if (!d) {
    const h = createHash('sha256');
    forEachSourceChunk(n, seed, (c) => h.update(c), 1 << 20);
    d = h.digest('hex');
    digestCache.set(key, d);
  }
  return d;
}

export function sha256Hex(...parts: (Buffer | string)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** Running sha256 and byte count. */
export class DigestCounter {
  private readonly h: Hash = createHash('sha256');
  private result: string | null = null;
  bytes = 0;
  update(chunk: Buffer): void {
    if (this.result !== null) throw new Error('DigestCounter: update after hex()');
    this.h.update(chunk);
    this.bytes += chunk.length;
  }
  /** The digest of everything so far; no update() after the first call. */
  hex(): string {
    this.result ??= this.h.digest('hex');
    return this.result;
  }
}

/** Reads `readable` to its end: sha256 and byte count of everything it produced. */
export async function digestReadable(readable: AsyncIterable<Buffer>): Promise<{ sha256: string; bytes: number }> {
  const d = new DigestCounter();
  for await (const chunk of readable) d.update(chunk);
  return { sha256: d.hex(), bytes: d.bytes };
}

/** Small deterministic PRNG (mulberry32) for sizes, piece lengths and seeds in tests. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` sizes: `big` of them near `bigSize`, the rest log-uniform in [0, maxSize]. Shuffled. */
export function testSizes(
  count: number,
  opts: { maxSize: number; big?: number; bigSize?: number; seed?: number },
): number[] {
  const rnd = prng(opts.seed ?? 1);
  const sizes: number[] = [];
  const bigSize = opts.bigSize ?? 16 * 1024 * 1024;
  for (let i = 0; i < count; i++) {
    if (i < (opts.big ?? 0)) sizes.push(bigSize - Math.floor(rnd() * (bigSize / 16)));
    else sizes.push(Math.floor(Math.exp(rnd() * Math.log(opts.maxSize + 1))) - 1);
  }
  if (count > (opts.big ?? 0) + 1) sizes[count - 1] = 0; // always include an empty stream
  for (let i = sizes.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [sizes[i], sizes[j]] = [sizes[j]!, sizes[i]!];
  }
  return sizes;
}
