/**
 * Deterministic test bytes, shared with the Go peer (test/go-peer/main.go, GENERATOR):
 * xorshift32 with x = seed (0 means 0x9E3779B9); per 4 bytes x ^= x << 13; x ^= x >>> 17;
 * x ^= x << 5; emit x little-endian; a read may end mid-word and the next continues there.
 */
export const ZERO_SEED_REPLACEMENT = 0x9e3779b9;

export class PatternGenerator {
  private x: number;
  private readonly word = Buffer.alloc(4);
  private wordOffset = 4;

  constructor(seed: number) {
    this.x = seed >>> 0 || ZERO_SEED_REPLACEMENT;
  }

  next(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n && this.wordOffset < 4) out[off++] = this.word[this.wordOffset++]!;
    let x = this.x;
    while (n - off >= 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out.writeUInt32LE(x >>> 0, off);
      off += 4;
    }
    if (off < n) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.word.writeUInt32LE(x >>> 0, 0);
      this.wordOffset = 0;
      while (off < n) out[off++] = this.word[this.wordOffset++]!;
    }
    this.x = x >>> 0;
    return out;
  }
}
