import { chmod as chmodCallback, stat as statCallback } from 'node:fs';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { ReadPacer } from '../yamux/index.js';
import { LastLine } from './last-line.js';
import { LineSplitter } from './line-splitter.js';
import { resumeReading, stopReading } from './socket-handover.js';
import { RateLimiter } from './rate-limiter.js';
import { connectWithRetry } from './unix-socket.js';

// Not node:fs/promises: imported, it loads a dozen more of Node's modules (readline among them) at every pod start.
const stat = promisify(statCallback);
const chmod = promisify(chmodCallback);

export const READ_BYTES = 16 * 1024;

/** At least this long between two connections to the console. */
const RECONNECT_MIN_MS = 1000;

/** How often a line kept from a flood checks whether the log takes lines again. */
const HELD_LINE_CHECK_MS = 20;

/**
 * A console connection that has given nothing for this long is reported once: QEMU's chardev
 * serves one client at a time and leaves the next in its socket's backlog, connected as far as
 * that client can tell, until the first one goes.
 */
const SILENT_CONSOLE_MS = 60_000;

/** About what a record adds to its message (time, level, name, pid, source, sandbox). */
export const RECORD_BYTES = 256;

export interface ConsoleRelayOptions {
  socketPath: string;
  /** Logger for the relayed lines: a child with source=agent. */
  agentLog: Logger;
  /** Logger for the relay's own messages (source=proxy). */
  log: Logger;
  retryTimeoutMs: number;
  /** Lines per second relayed at most; 0 = unlimited. Dropped lines are counted and reported. */
  ratePerSecond?: number;
  /**
   * Whether the log can take a line of this size now (LogWriter.admit('agent', n), which counts
   * a refusal as a drop): under a flood a line is dropped before it costs a decode and a record.
   */
  admit?: (bytes: number) => boolean;
  /**
   * Whether the log refuses every console line now (its queue is full), and where lines passed
   * over for that are counted: a flood then costs a scan for line ends, not a call per line.
   */
  shedding?: { active(): boolean; count(lines: number): void };
  /** The pod's share of the event loop: a flooding console waits for the next turn, not its neighbours. */
  pacer?: ReadPacer;
  /** Lines the rate limit lets through at once after a quiet period; default one second's worth. */
  rateBurst?: number;
  /**
   * Where reads land. Each read is split (and its lines decoded or copied) before the callback
   * returns, so the consoles of many pods in one process can share one buffer; default its own.
   */
  readBuffer?: Buffer;
  /** After how long a console connection that gave nothing is reported (default 60 s; 0: never). */
  silentReportMs?: number;
}

/** What a relay hands to its successor besides the connection. */
export interface ConsoleRelayState {
  /** The line in progress (base64). */
  partialLine: string;
  lines: number;
  limiter: { tokens: number; last: number; dropped: number };
  /** The last line of a read passed over, not relayed yet (base64; absent: none). */
  heldLine?: string;
}

/**
 * Relays the guest console (QEMU's console.sock) into the log: one info record per line with
 * source=agent. It keeps draining whatever happens (a full console buffer stalls the guest) and
 * reconnects while it runs.
 */
export class ConsoleRelay {
  private socket: net.Socket | null = null;
  private readonly abort = new AbortController();
  private readonly limiter: RateLimiter;
  private reportTimer: NodeJS.Timeout | null = null;
  private readonly splitter = new LineSplitter((line, truncated) => this.relay(line, truncated));
  /** Every read lands here: a flood allocates nothing per read (lines are decoded or copied at once). */
  private readonly readBuffer: Buffer;
  private readonly lastPassed = new LastLine();
  private heldTimer: NodeJS.Timeout | null = null;
  private silentTimer: NodeJS.Timeout | null = null;
  private receivedOnConnection = false;
  lines = 0;

  constructor(private readonly options: ConsoleRelayOptions) {
    this.limiter = new RateLimiter(options.ratePerSecond ?? 0, options.rateBurst);
    this.readBuffer = options.readBuffer ?? Buffer.allocUnsafe(READ_BYTES);
  }

  /** Runs until stop(); resolves when stopped, rejects only if the first connect fails. */
  async start(): Promise<void> {
    await this.restrictPermissions();
    const first = await this.connect();
    void this.run(first);
  }

  // ---- handover (a host handing its pods to its successor) ---------------------------------

  /** Stops reading the console at its handle; the connection and the relay's state to carry on. */
  suspend(): { socket: net.Socket | null; state: ConsoleRelayState } {
    if (this.socket) stopReading(this.socket);
    // The held line goes with the state: relayed here meanwhile, it would be relayed twice.
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.heldTimer = null;
    this.unwatchSilence();
    return {
      socket: this.socket && !this.socket.destroyed ? this.socket : null,
      state: {
        partialLine: this.splitter.partialLine.toString('base64'),
        lines: this.lines,
        limiter: this.limiter.state,
        ...(this.lastPassed.held ? { heldLine: this.lastPassed.copy()!.toString('base64') } : {}),
      },
    };
  }

  resume(): void {
    if (this.socket) resumeReading(this.socket);
    if (this.lastPassed.held) this.watchHeld();
  }

  /** The console connection now (a reload passes it to the next host at its start). */
  get connection(): net.Socket | null {
    return this.socket && !this.socket.destroyed ? this.socket : null;
  }

  /** Handed over: lets go of the connection (its new owner reads it) and stops. */
  release(): void {
    this.end();
    this.lastPassed.drop();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      socket.destroy(); // closes this process's descriptor only: no shutdown reaches QEMU
    }
  }

  /** Carries on with a connection and state another process's relay had (null: reconnects). */
  adopt(socket: net.Socket | null, state: ConsoleRelayState): void {
    this.splitter.restorePartial(Buffer.from(state.partialLine, 'base64'));
    this.lines = state.lines;
    this.limiter.state = state.limiter;
    if (state.heldLine !== undefined) {
      this.lastPassed.hold(Buffer.from(state.heldLine, 'base64'));
      this.watchHeld();
    }
    if (socket) {
      socket.on('data', (chunk: Buffer) => {
        if (!this.takeChunk(chunk)) socket.pause();
      });
      void this.run(socket, true);
    } else {
      void this.reconnect().then((next) => next && this.run(next));
    }
  }

  stop(): void {
    this.end();
    this.socket?.destroy();
    if (this.lastPassed.drop()) this.countPassed(1, this.options.shedding ? 'log' : 'rate');
    this.reportDropped();
  }

  /** Stops the relay's loop and its timers (stop, release). */
  private end(): void {
    this.abort.abort();
    if (this.reportTimer) clearInterval(this.reportTimer);
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.unwatchSilence();
  }

  /** `adopted`: the first connection was another process's, which has read from it already. */
  private async run(socket: net.Socket, adopted = false): Promise<void> {
    for (let current: net.Socket | null = socket; current && !this.abort.signal.aborted; adopted = false) {
      const connectedAt = Date.now();
      await this.drain(current, !adopted);
      if (this.abort.signal.aborted) return;
      this.options.log.info({ console: this.options.socketPath }, 'guest console closed; reconnecting');
      // A console that closes as soon as it is opened is not reopened in a tight loop.
      const wait = RECONNECT_MIN_MS - (Date.now() - connectedAt);
      if (wait > 0) await sleep(wait, undefined, { signal: this.abort.signal }).catch(() => {});
      current = await this.reconnect();
    }
  }

  private async reconnect(): Promise<net.Socket | null> {
    while (!this.abort.signal.aborted) {
      try {
        return await this.connect();
      } catch (err) {
        if (this.abort.signal.aborted) return null;
        this.options.log.debug({ err: (err as Error).message }, 'guest console not available yet');
        await sleep(1000, undefined, { signal: this.abort.signal }).catch(() => {});
      }
    }
    return null;
  }

  private connect(): Promise<net.Socket> {
    return connectWithRetry(this.options.socketPath, {
      timeoutMs: this.options.retryTimeoutMs,
      signal: this.abort.signal,
      onread: { buffer: this.readBuffer, callback: (n) => this.take(n) },
    });
  }

  private drain(socket: net.Socket, watchSilence: boolean): Promise<void> {
    this.socket = socket;
    this.receivedOnConnection = false;
    if (watchSilence) this.watchSilence();
    if (this.options.ratePerSecond && !this.reportTimer) {
      this.reportTimer = setInterval(() => this.reportDropped(), 1000);
      this.reportTimer.unref();
    }
    return new Promise((resolve) => {
      socket.on('error', (err) => this.options.log.debug({ err: err.message }, 'guest console read error'));
      socket.once('close', () => {
        this.unwatchSilence();
        this.splitter.flush();
        resolve();
      });
    });
  }

  /** One read: false stops reading (libuv's readStop) until the pacer's next slice. */
  private take(n: number): boolean {
    return this.takeChunk(this.readBuffer.subarray(0, n));
  }

  private takeChunk(chunk: Buffer): boolean {
    this.receivedOnConnection = true;
    const pacer = this.options.pacer;
    const startedAt = pacer ? performance.now() : 0;
    if (this.options.shedding?.active()) {
      this.pass(chunk, 'log');
    } else if (this.limiter.exhausted()) {
      this.pass(chunk, 'rate');
    } else {
      this.relayHeld();
      this.splitter.push(chunk);
    }
    if (!pacer || pacer.charge(startedAt)) return true;
    pacer.later(this.resumePaced);
    return false;
  }

  /**
   * A read no line of which would be kept (the log's queue is full, or the rate is spent): its
   * lines are only counted, a flood costs a scan for line ends. Its last line is kept aside.
   */
  private pass(chunk: Buffer, why: 'log' | 'rate'): void {
    const lines = this.splitter.skip(chunk);
    this.lines += lines;
    const kept = this.lastPassed.keep(chunk);
    this.countPassed(lines - (kept === 'none' ? 0 : 1) + (kept === 'replaced' ? 1 : 0), why);
    if (kept !== 'none') this.watchHeld();
  }

  private countPassed(lines: number, why: 'log' | 'rate'): void {
    if (lines <= 0) return;
    if (why === 'log') this.options.shedding?.count(lines);
    else this.limiter.dropped += lines;
  }

  private watchSilence(): void {
    const ms = this.options.silentReportMs ?? SILENT_CONSOLE_MS;
    if (ms <= 0) return;
    this.unwatchSilence();
    this.silentTimer = setTimeout(() => {
      this.silentTimer = null;
      if (this.receivedOnConnection || this.abort.signal.aborted) return;
      this.options.log.warn(
        { console: this.options.socketPath, silentSeconds: ms / 1000 },
        'nothing received from the guest console since it was connected: QEMU serves it to one client at a time, another may hold it (ss -xp | grep console)',
      );
    }, ms);
    this.silentTimer.unref();
  }

  private unwatchSilence(): void {
    if (this.silentTimer) clearTimeout(this.silentTimer);
    this.silentTimer = null;
  }

  /** Relays the held line as soon as the log would take it (the console may have gone quiet). */
  private watchHeld(): void {
    if (this.heldTimer || this.abort.signal.aborted) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = null;
      if (!this.lastPassed.held) return;
      if (this.options.shedding?.active() || this.limiter.exhausted()) this.watchHeld();
      else this.relayHeld();
    }, HELD_LINE_CHECK_MS);
    this.heldTimer.unref();
  }

  private relayHeld(): void {
    this.lastPassed.take((line) => this.record(line, false));
  }

  private readonly resumePaced = (): void => {
    if (!this.abort.signal.aborted) this.socket?.resume();
  };

  private relay(bytes: Buffer, truncated: boolean): void {
    this.lines++;
    this.record(bytes, truncated);
  }

  private record(bytes: Buffer, truncated: boolean): void {
    if (!this.limiter.allow() || (this.options.admit && !this.options.admit(bytes.length + RECORD_BYTES))) return;
    const line = bytes.toString('utf8');
    if (truncated) this.options.agentLog.info({ truncated: true }, line);
    else this.options.agentLog.info(line);
  }

  private reportDropped(): void {
    const dropped = this.limiter.takeDropped();
    if (dropped > 0) this.options.log.warn({ dropped }, 'agent log lines dropped by the rate limit');
  }

  /** The Go proxy clears "other" permission bits on the console socket (mode & 0770). */
  private async restrictPermissions(): Promise<void> {
    const deadline = Date.now() + this.options.retryTimeoutMs;
    for (;;) {
      try {
        const { mode } = await stat(this.options.socketPath);
        if (mode & 0o007) {
          const restricted = mode & 0o770;
          await chmod(this.options.socketPath, restricted);
          this.options.log.info(
            { console: this.options.socketPath, mode: (restricted & 0o777).toString(8) },
            'removed permissions for others on the console socket',
          );
        }
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || Date.now() > deadline) return;
        await sleep(50, undefined, { signal: this.abort.signal });
      }
    }
  }
}
