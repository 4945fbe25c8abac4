/**
 * Splits a byte stream into lines (LF, with a trailing CR stripped). A line longer than
 * maxLineBytes is cut there: a guest that never sends a newline cannot grow our memory. Lines
 * are handed over as bytes, valid only during the call (decode or copy them there): a line's
 * start waits in one buffer, allocated the first time a read ends mid-line and grown up to
 * maxLineBytes as needed, so splitting allocates nothing however much flows, and an idle pod's
 * console costs nothing (host mode holds thousands).
 */
const EMPTY = Buffer.alloc(0);

export class LineSplitter {
  private partial: Buffer = EMPTY;
  private partialBytes = 0;

  constructor(
    private readonly onLine: (line: Buffer, truncated: boolean) => void,
    private readonly maxLineBytes = 16 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      this.take(chunk, start, nl, true);
      start = nl + 1;
    }
    if (start < chunk.length) this.take(chunk, start, chunk.length, false);
  }

  /**
   * Like push, for when no line would be kept: the lines this chunk completes are only counted
   * (the one in progress among them), none is handed over. What follows the last LF starts the
   * next line as usual. Returns how many lines were passed over.
   */
  skip(chunk: Buffer): number {
    let lines = 0;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      lines++;
      start = nl + 1;
    }
    if (lines === 0) {
      this.take(chunk, 0, chunk.length, false);
      return 0;
    }
    this.partialBytes = 0;
    if (start < chunk.length) this.take(chunk, start, chunk.length, false);
    return lines;
  }

  /** The start of the line in progress (a handover takes it along). */
  get partialLine(): Buffer {
    return Buffer.from(this.partial.subarray(0, this.partialBytes));
  }

  /** Starts with the line in progress another splitter had. */
  restorePartial(line: Buffer): void {
    const n = Math.min(line.length, this.maxLineBytes);
    this.partialBytes = 0;
    this.reserve(n);
    line.copy(this.partial, 0, 0, n);
    this.partialBytes = n;
  }

  /** Emits what is left as a last line (the console closed mid-line). */
  flush(): void {
    if (this.partialBytes > 0) this.emitPartial(false);
  }

  private take(chunk: Buffer, start: number, end: number, complete: boolean): void {
    while (this.partialBytes + (end - start) > this.maxLineBytes) {
      const room = this.maxLineBytes - this.partialBytes;
      if (this.partialBytes === 0) {
        this.emit(chunk.subarray(start, start + room), true);
      } else {
        this.reserve(this.maxLineBytes);
        chunk.copy(this.partial, this.partialBytes, start, start + room);
        this.partialBytes += room;
        this.emitPartial(true);
      }
      start += room;
    }
    if (complete && this.partialBytes === 0) return this.emit(chunk.subarray(start, end), false);
    this.reserve(this.partialBytes + (end - start));
    chunk.copy(this.partial, this.partialBytes, start, end);
    this.partialBytes += end - start;
    if (complete) this.emitPartial(false);
  }

  /** Room for `bytes` in the partial-line buffer (never more than maxLineBytes are asked for). */
  private reserve(bytes: number): void {
    if (bytes <= this.partial.length) return;
    const grown = Buffer.allocUnsafe(Math.min(this.maxLineBytes, Math.max(bytes, 2 * this.partial.length, 256)));
    this.partial.copy(grown, 0, 0, this.partialBytes);
    this.partial = grown;
  }

  private emitPartial(truncated: boolean): void {
    const line = this.partial.subarray(0, this.partialBytes);
    this.partialBytes = 0;
    this.emit(line, truncated);
  }

  private emit(line: Buffer, truncated: boolean): void {
    this.onLine(line.at(-1) === 0x0d ? line.subarray(0, -1) : line, truncated);
  }
}
