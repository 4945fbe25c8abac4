/**
 * Splits a byte stream into lines (LF, with a trailing CR stripped). A line longer than
 * maxLineBytes is cut there: a guest that never sends a newline cannot grow our memory.
 */
export class LineSplitter {
  private partial: Buffer[] = [];
  private partialBytes = 0;

  constructor(
    private readonly onLine: (line: string, truncated: boolean) => void,
    private readonly maxLineBytes = 16 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      this.take(chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < chunk.length) this.take(chunk.subarray(start), false);
  }

  /** Emits what is left as a last line (the console closed mid-line). */
  flush(): void {
    if (this.partialBytes > 0) this.emit(false);
  }

  private take(piece: Buffer, complete: boolean): void {
    let rest = piece;
    while (this.partialBytes + rest.length > this.maxLineBytes) {
      const room = this.maxLineBytes - this.partialBytes;
      this.partial.push(rest.subarray(0, room));
      this.partialBytes += room;
      this.emit(true);
      rest = rest.subarray(room);
    }
    if (rest.length > 0) {
      // Copy: the chunk's memory must not be pinned by a line that waits for its end.
      this.partial.push(complete ? rest : Buffer.from(rest));
      this.partialBytes += rest.length;
    }
    if (complete) this.emit(false);
  }

  private emit(truncated: boolean): void {
    let line = (this.partial.length === 1 ? this.partial[0]! : Buffer.concat(this.partial)).toString('utf8');
    this.partial = [];
    this.partialBytes = 0;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.onLine(line, truncated);
  }
}
