// The hashicorp/yamux Go peer (test/go-peer/main.go): build it once, start it, read its JSON
// events, send it stdin commands, stop it. Used by the interop tests, the proxy end-to-end
// tests and the benchmarks.
//
// Availability: without `go` (or Debian's golang-github-hashicorp-yamux-dev) findGoPeer()
// returns null and prints a notice, so suites skip; with KATA_PROXY_REQUIRE_GO_PEER=1 (CI) it
// throws instead, failing the test file.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { buildGoPeer } from '../go-peer/build.js';

export function goPeerRequired(): boolean {
  return process.env.KATA_PROXY_REQUIRE_GO_PEER === '1';
}

export { REPO_ROOT } from '../go-peer/build.js';

let found: Promise<string | null> | null = null;

/**
 * The peer binary, or null (after a console.warn) when it cannot be built. Throws instead when
 * KATA_PROXY_REQUIRE_GO_PEER=1. Use at the top of a test file:
 *   const GO_PEER = await findGoPeer();
 *   describe.skipIf(!GO_PEER)('...', () => { ... });
 */
export function findGoPeer(): Promise<string | null> {
  found ??= buildGoPeer().then(
    (bin) => bin,
    (err: Error) => {
      if (goPeerRequired()) {
        throw new Error(`KATA_PROXY_REQUIRE_GO_PEER=1 but the Go peer is unavailable: ${err.message}`);
      }
      console.warn(`[go-peer] skipping hashicorp/yamux interop tests: ${err.message}`);
      return null;
    },
  );
  return found;
}

export interface GoPeerEvent {
  event: string;
  [key: string]: unknown;
}

export type EventPredicate = string | ((e: GoPeerEvent) => boolean);

const live = new Set<GoPeer>();
process.once('exit', () => {
  for (const p of live) p.proc.kill('SIGKILL');
});

/** A running yamux-peer process. */
export class GoPeer {
  readonly events: GoPeerEvent[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { pred: (e: GoPeerEvent) => boolean; resolve: (e: GoPeerEvent) => void }[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(
    readonly proc: ChildProcessWithoutNullStreams,
    readonly args: string[],
  ) {
    live.add(this);
    createInterface({ input: proc.stdout }).on('line', (line) => {
      let e: GoPeerEvent;
      try {
        e = JSON.parse(line) as GoPeerEvent;
      } catch {
        e = { event: 'stdout', line };
      }
      this.events.push(e);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(e)) return true;
        w.resolve(e);
        return false;
      });
    });
    proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    proc.stdin.on('error', () => {}); // the peer may exit before reading its stdin
    this.exited = new Promise((r) =>
      proc.once('close', (code, signal) => {
        live.delete(this);
        this.exitInfo = { code, signal };
        r({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get hasExited(): boolean {
    return this.exitInfo !== null;
  }

  /** Events of one kind (or matching a predicate) seen so far. */
  find(pred: EventPredicate): GoPeerEvent[] {
    const p = toPredicate(pred);
    return this.events.filter(p);
  }

  /** The first event (already seen or future) matching `pred`; rejects on timeout or exit. */
  waitFor(pred: EventPredicate, timeoutMs = 10_000, opts: { onlyNew?: boolean } = {}): Promise<GoPeerEvent> {
    const p = toPredicate(pred);
    if (!opts.onlyNew) {
      const seen = this.events.find(p);
      if (seen) return Promise.resolve(seen);
    }
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`go peer: no ${describe(pred)} event within ${timeoutMs} ms\n${this.transcript()}`));
      }, timeoutMs);
      const waiter = {
        pred: p,
        resolve: (e: GoPeerEvent) => {
          clearTimeout(timer);
          resolvePromise(e);
        },
      };
      this.waiters.push(waiter);
      void this.exited.then(() => {
        // Let the last stdout lines be parsed first.
        setTimeout(() => {
          if (!this.waiters.includes(waiter)) return;
          this.waiters = this.waiters.filter((w) => w !== waiter);
          clearTimeout(timer);
          reject(new Error(`go peer exited before a ${describe(pred)} event\n${this.transcript()}`));
        }, 50);
      });
    });
  }

  /** Sends a stdin command (see main.go STDIN COMMANDS). */
  command(line: string): void {
    this.proc.stdin.write(`${line}\n`);
  }

  /** Sends a command and waits for the next event matching `pred`. */
  async request(line: string, pred: EventPredicate, timeoutMs = 10_000): Promise<GoPeerEvent> {
    const next = this.waitFor(pred, timeoutMs, { onlyNew: true });
    this.command(line);
    return next;
  }

  /** hashicorp's [ERR] log lines (a session it tore down, a protocol violation it saw...). */
  errorLogs(): string[] {
    return this.find((e) => e.event === 'log' && String(e.msg).includes('[ERR]')).map((e) => String(e.msg));
  }

  /** Waits until `count` sessions exist: stdin commands reach a session only from then on. */
  async waitForSessions(count = 1, timeoutMs = 10_000): Promise<void> {
    let seen = 0;
    await this.waitFor((e) => e.event === 'session' && ++seen >= count, timeoutMs);
  }

  /** Sessions that ended ("session-closed" / "session-end" events). */
  sessionEnds(): GoPeerEvent[] {
    return this.find((e) => e.event === 'session-closed' || e.event === 'session-end');
  }

  /** Everything the peer printed, for failure messages. */
  transcript(max = 60): string {
    const lines = this.events.slice(-max).map((e) => JSON.stringify(e));
    return `--- go peer ${this.args.join(' ')} (pid ${this.proc.pid})\n${lines.join('\n')}\n--- stderr\n${this.stderr.slice(-4000)}`;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.hasExited) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

function toPredicate(pred: EventPredicate): (e: GoPeerEvent) => boolean {
  return typeof pred === 'string' ? (e) => e.event === pred : pred;
}

function describe(pred: EventPredicate): string {
  return typeof pred === 'string' ? `"${pred}"` : 'matching';
}

/** Spawns `yamux-peer <args>` without waiting for anything. */
export function spawnGoPeer(binary: string, args: string[], env: NodeJS.ProcessEnv = {}): GoPeer {
  const proc = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  return new GoPeer(proc, args);
}

/** Spawns the peer and waits for its {"event":"ready"} (serve; load/ping with -connect). */
export async function startGoPeer(binary: string, args: string[], readyTimeoutMs = 10_000): Promise<GoPeer> {
  const peer = spawnGoPeer(binary, args);
  try {
    await peer.waitFor('ready', readyTimeoutMs);
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return peer;
}

/** Runs the peer to completion (load, bench, ping, record): exit code and events. */
export async function runGoPeer(
  binary: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number | null; events: GoPeerEvent[]; peer: GoPeer }> {
  const peer = spawnGoPeer(binary, args);
  const timer = setTimeout(() => peer.proc.kill('SIGKILL'), timeoutMs);
  const { code } = await peer.exited;
  clearTimeout(timer);
  await new Promise((r) => setImmediate(r));
  return { code, events: peer.events, peer };
}
