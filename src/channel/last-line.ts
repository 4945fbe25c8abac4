/**
 * The last complete line of the console reads a relay passed over (log queue full, rate spent),
 * copied aside: the line that ends a flood is often the one an operator needs ("panic: ...",
 * "agent exiting"), so it is relayed once the log takes lines again instead of being shed with
 * the flood. One line at most: each new one replaces the last.
 */
export class LastLine {
  /** Allocated on the first line kept, grown as lines need it (up to maxLineBytes). */
  private buffer = Buffer.alloc(0);
  private bytes = -1;

  constructor(private readonly maxLineBytes = 16 * 1024) {}

  get held(): boolean {
    return this.bytes >= 0;
  }

  /**
   * Keeps the last complete line of `chunk` (its tail if it began in an earlier read).
   * 'replaced': the one held before is gone (count it as dropped).
   */
  keep(chunk: Buffer): 'none' | 'kept' | 'replaced' {
    const end = chunk.lastIndexOf(0x0a);
    if (end < 0) return 'none';
    const start = end === 0 ? 0 : chunk.lastIndexOf(0x0a, end - 1) + 1;
    const lineEnd = end > start && chunk[end - 1] === 0x0d ? end - 1 : end;
    const replaced = this.held;
    const from = Math.max(start, lineEnd - this.maxLineBytes);
    if (lineEnd - from > this.buffer.length) this.buffer = Buffer.allocUnsafe(Math.max(lineEnd - from, 256));
    this.bytes = chunk.copy(this.buffer, 0, from, lineEnd);
    return replaced ? 'replaced' : 'kept';
  }

  /** Hands the held line over (valid during the call only) and forgets it. */
  take(use: (line: Buffer) => void): void {
    if (!this.held) return;
    const line = this.buffer.subarray(0, this.bytes);
    this.bytes = -1;
    use(line);
  }

  /** A copy of the held line, or null (a handover carries it to the next process). */
  copy(): Buffer | null {
    return this.held ? Buffer.from(this.buffer.subarray(0, this.bytes)) : null;
  }

  /** Holds `line` as the last one passed over (from the process that had it). */
  hold(line: Buffer): void {
    this.buffer = Buffer.from(line);
    this.bytes = line.length;
  }

  /** Forgets the held line; true if there was one. */
  drop(): boolean {
    const had = this.held;
    this.bytes = -1;
    return had;
  }
}
