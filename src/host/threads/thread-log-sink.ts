import type { Priority, Sink, WriteResult } from '../../log/log-writer.js';
import type { LogRecord } from './thread-protocol.js';

/**
 * A pod thread's log sink: records go to the main thread, which writes them through the host's
 * one writer (pod shares and drop counts included). At most `windowBytes` travel unacknowledged;
 * beyond that the sink is busy and the thread's own writer queues, then drops, and counts.
 */
export class ThreadLogSink implements Sink {
  readonly joins = false;
  onReady: () => void = () => {};
  private unacknowledged = 0;
  private busy = false;

  constructor(
    private readonly send: (record: LogRecord, bytes: number) => void,
    private readonly windowBytes = 256 * 1024,
  ) {}

  get held(): number {
    return this.unacknowledged;
  }

  write(data: string | Buffer, severity: number, priority: Priority = 'proxy', owner: string | null = null): WriteResult {
    if (this.unacknowledged >= this.windowBytes) {
      this.busy = true;
      return 'busy';
    }
    const text = typeof data === 'string' ? data : data.toString();
    this.unacknowledged += text.length;
    this.send({ text, severity, agent: priority === 'agent', owner }, text.length);
    return 'written';
  }

  /** The main thread wrote (or dropped) `bytes` of what was sent. */
  acknowledge(bytes: number): void {
    this.unacknowledged = Math.max(0, this.unacknowledged - bytes);
    if (this.busy && this.unacknowledged < this.windowBytes) {
      this.busy = false;
      this.onReady();
    }
  }

  /** Acknowledgements come by message: nothing can be waited for synchronously (LogWriter.flush waits). */
  flushSync(): boolean {
    return false;
  }
}
