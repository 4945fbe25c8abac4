/**
 * Deterministic test bytes, shared with the Go peer (test/go-peer/main.go, GENERATOR):
 * xorshift32 with x = seed (0 means 0x9E3779B9); per 4 bytes x ^= x << 13; x ^= x >>> 17;
 * x ^= x << 5; emit x little-endian; a read may end mid-word and the next continues there.
 */
export const ZERO_SEED_REPLACEMENT = 0x9e3779b9;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class PatternGenerator {
  private x: number;
  private readonly spare = Buffer.alloc(4);
  private spareOff = 4;

  constructor(seed: number) {
    this.x = seed >>> 0 || ZERO_SEED_REPLACEMENT;
  }

  /** The next `n` bytes of the sequence. */
  next(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n && this.spareOff < 4) out[off++] = this.spare[this.spareOff++]!;
    const words = Math.floor((n - off) / 4);
    let x = this.x;
    if (words > 0) {
      if (LITTLE_ENDIAN && (out.byteOffset + off) % 4 === 0) {
        const view = new Uint32Array(out.buffer, out.byteOffset + off, words);
        for (let i = 0; i < words; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          view[i] = x;
        }
      } else {
        for (let i = 0; i < words; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          out.writeUInt32LE(x >>> 0, off + i * 4);
        }
      }
      off += words * 4;
    }
    if (off < n) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.spare.writeUInt32LE(x >>> 0, 0);
      this.spareOff = 0;
      while (off < n) out[off++] = this.spare[this.spareOff++]!;
    }
    this.x = x;
    return out;
  }
}
