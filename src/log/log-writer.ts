/** Whose record it is: relayed console lines ('agent') are refused before the daemon's own. */
export type Priority = 'proxy' | 'agent';

export type WriteResult = 'written' | 'busy' | 'failed';

/** Where records go: stderr (fd-sink.ts), syslog (syslog-sink.ts) or a test's function. */
export interface Sink {
  /**
   * Takes `data` now if it can without waiting. 'written': taken (the sink may still hold the
   * unwritten tail of a partial write, counted in `held`); 'busy': not taken, `onReady` is called
   * once it can take more; 'failed': taken and lost (the sink is broken). `priority` and
   * `owner` say whose record it is (a sink that passes records on to another writer keeps them).
   */
  write(data: string | Buffer, severity: number, priority?: Priority, owner?: string | null): WriteResult;
  /** Bytes taken but not out yet. */
  readonly held: number;
  /** Whether several records may be joined into one write. */
  readonly joins: boolean;
  onReady: () => void;
  /** Writes what it holds, waiting until `deadline` (Date.now() ms) at most; false if it cannot wait synchronously. */
  flushSync(deadline: number): boolean;
}

export interface LogWriterOptions {
  /** Bytes queued at most while the sink is slow; default 1 MiB. */
  budgetBytes?: number;
  /** Share of the budget relayed agent lines may fill; the rest is kept for the daemon's records. */
  agentShare?: number;
  /** Share of the agent lines' part one console (one pod, in host mode) may fill; default 1/4. */
  ownerShare?: number;
  /** How often a summary of dropped records is logged while records are being dropped. */
  reportIntervalMs?: number;
}

export interface DropReport {
  dropped: number;
  /** Of which relayed console lines. */
  agentLines: number;
  reason: 'sink slow' | 'sink error';
}

interface Entry {
  data: Buffer;
  severity: number;
  priority: Priority;
  /** The console (pod) whose line this is, when queued under a share of its own. */
  owner: string | null;
}

const JOIN_BYTES = 64 * 1024;

/**
 * The process-wide writer every logger writes through: it never waits on the main thread. What
 * the sink cannot take at once waits in a queue bounded in bytes; beyond it records are dropped,
 * relayed console lines first (they may fill `agentShare` of it), and every drop is counted and
 * reported about once a second by a summary record. One writer can serve many pods' loggers.
 */
export class LogWriter {
  private readonly queue: Entry[] = [];
  private head = 0;
  private queuedBytes = 0;
  private readonly budget: number;
  private readonly agentLimit: number;
  private readonly ownerLimit: number;
  /** Queued bytes of each console that has lines waiting. */
  private readonly ownerBytes = new Map<string, number>();
  /** Set by admit() for the write() that follows it at once (the record it admitted). */
  private admittedOwner: string | null = null;
  private readonly drops = new Map<DropReport['reason'], { dropped: number; agentLines: number }>();
  private reportTimer: NodeJS.Timeout | null = null;
  private reporter: ((report: DropReport) => void) | null = null;
  private reporting = false;

  constructor(
    private readonly sink: Sink,
    private readonly options: LogWriterOptions = {},
  ) {
    this.budget = options.budgetBytes ?? 1 << 20;
    this.agentLimit = Math.floor(this.budget * (options.agentShare ?? 0.75));
    this.ownerLimit = Math.floor(this.agentLimit * (options.ownerShare ?? 0.25));
    sink.onReady = () => this.pump();
  }

  /** Bytes waiting (queued or held by the sink). */
  get pending(): number {
    return this.queuedBytes + this.sink.held;
  }

  /** Records dropped so far and not yet reported, by reason. */
  get unreported(): DropReport[] {
    return [...this.drops].map(([reason, d]) => ({ reason, ...d }));
  }

  /** Where drop summaries go (a logger of the daemon's own, which writes back through this writer). */
  reportDropsTo(reporter: (report: DropReport) => void): void {
    this.reporter = reporter;
  }

  /**
   * Whether a record of this priority and about this size would be taken now; a refusal counts
   * as a drop. Lets a caller skip formatting a record that would be dropped anyway.
   */
  admit(priority: Priority, bytes: number, owner?: string): boolean {
    // The logger's destination checks again, without an owner: the relay's own admit named it.
    const whose = owner ?? (priority === 'agent' ? (this.admittedOwner ?? undefined) : undefined);
    if (!this.refuses(priority, bytes, whose)) {
      this.admittedOwner = whose ?? null;
      return true;
    }
    this.countDrop('sink slow', priority);
    return false;
  }

  /**
   * Whether `admit` would refuse any record of this priority and size now (nothing is counted).
   * With an owner (a pod's console), also when that console already fills its own share: one
   * flooding guest cannot crowd out every other pod's console lines.
   */
  refuses(priority: Priority, bytes: number, owner?: string): boolean {
    if (this.reporting) return false;
    if (this.pending + bytes > (priority === 'agent' ? this.agentLimit : this.budget)) return true;
    return owner !== undefined && (this.ownerBytes.get(owner) ?? 0) + bytes > this.ownerLimit;
  }

  /** Counts records the caller passed over because `refuses` said so. */
  dropped(priority: Priority, count: number): void {
    if (count > 0) this.countDrop('sink slow', priority, count);
  }

  /** Writes a record `admit` let through; only the whole budget can refuse it now. */
  write(text: string, severity: number, priority: Priority): void {
    const owner = priority === 'agent' ? this.admittedOwner : null;
    this.admittedOwner = null;
    if (this.queuedBytes === 0) {
      const result = this.sink.write(text, severity, priority, owner);
      if (result === 'written') return;
      if (result === 'failed') return this.countDrop('sink error', priority);
    }
    const data = Buffer.from(text); // flat, and its size in bytes is exact
    if (!this.reporting && this.pending + data.length > this.budget) return this.countDrop('sink slow', priority);
    this.queue.push({ data, severity, priority, owner });
    this.queuedBytes += data.length;
    if (owner !== null) this.ownerBytes.set(owner, (this.ownerBytes.get(owner) ?? 0) + data.length);
  }

  /** Writes everything out synchronously (at exit, on a fatal error), giving up after `timeoutMs`. */
  flushSync(timeoutMs = 1000): void {
    const deadline = Date.now() + timeoutMs;
    this.reportNow();
    for (;;) {
      if (!this.sink.flushSync(deadline)) return;
      if (this.queuedBytes === 0 || Date.now() > deadline) return;
      this.pump();
    }
  }

  /** flushSync, then (for a sink that cannot wait synchronously, syslog) waits until it is idle. */
  async flush(timeoutMs = 1000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.flushSync(timeoutMs);
    while (this.pending > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      this.pump();
    }
  }

  private pump(): void {
    while (this.head < this.queue.length) {
      const first = this.queue[this.head]!;
      let count = 1;
      let data = first.data;
      if (this.sink.joins) {
        let bytes = data.length;
        while (this.head + count < this.queue.length && bytes + this.queue[this.head + count]!.data.length <= JOIN_BYTES) {
          bytes += this.queue[this.head + count]!.data.length;
          count++;
        }
        if (count > 1) data = Buffer.concat(this.queue.slice(this.head, this.head + count).map((e) => e.data), bytes);
      }
      const result = this.sink.write(data, first.severity, first.priority, first.owner);
      if (result === 'busy') break;
      if (result === 'failed') this.countDrop('sink error', 'proxy', count);
      for (let i = this.head; i < this.head + count; i++) this.release(this.queue[i]!);
      this.head += count;
      this.queuedBytes -= data.length;
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private release(entry: Entry): void {
    if (entry.owner === null) return;
    const left = (this.ownerBytes.get(entry.owner) ?? 0) - entry.data.length;
    if (left > 0) this.ownerBytes.set(entry.owner, left);
    else this.ownerBytes.delete(entry.owner);
  }

  private countDrop(reason: DropReport['reason'], priority: Priority, count = 1): void {
    let d = this.drops.get(reason);
    if (!d) this.drops.set(reason, (d = { dropped: 0, agentLines: 0 }));
    d.dropped += count;
    if (priority === 'agent') d.agentLines += count;
    if (!this.reportTimer) {
      this.reportTimer = setInterval(() => this.reportNow(), this.options.reportIntervalMs ?? 1000);
      this.reportTimer.unref();
    }
  }

  /** The summary goes through even when the queue is full: it is small and at most once a second. */
  private reportNow(): void {
    if (this.drops.size === 0) {
      if (this.reportTimer) clearInterval(this.reportTimer);
      this.reportTimer = null;
      return;
    }
    if (!this.reporter) return;
    const reports = this.unreported;
    this.drops.clear();
    this.reporting = true;
    try {
      for (const report of reports) this.reporter(report);
    } finally {
      this.reporting = false;
    }
  }
}
