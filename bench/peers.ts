// Everything the bench starts as a separate process: the hashicorp/yamux Go peer (the guest that
// is never the bottleneck), the simulated guest, the plain-socket baseline server, the daemon
// itself (bin/kata-proxy with the Kata runtime's argv) and the load generator.
import { execFile, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Direction, Job, JobResult, Request, Response, ThroughputResult } from './protocol.js';
import { sleep } from './proc.js';

/** dist/bench/peers.js -> the repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BENCH_DIST = dirname(fileURLToPath(import.meta.url));
export const LAUNCHER = join(REPO_ROOT, 'bin', 'kata-proxy');

// ---- a child process with JSON-line events on stdout -------------------------------------------

export class Child {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderrTail: string[] = [];
  readonly events: Record<string, unknown>[] = [];
  private readonly waiters: { match: (e: Record<string, unknown>) => boolean; resolve: () => void }[] = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    opts: { keepEvents?: (e: Record<string, unknown>) => boolean } = {},
  ) {
    this.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    if (proc.stdout) {
      createInterface({ input: proc.stdout }).on('line', (line) => {
        let e: Record<string, unknown>;
        try {
          e = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        if (opts.keepEvents?.(e) ?? true) this.events.push(e);
        for (const w of [...this.waiters]) {
          if (w.match(e)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve();
          }
        }
      });
    }
    if (proc.stderr) {
      createInterface({ input: proc.stderr }).on('line', (line) => {
        this.stderrTail.push(line);
        if (this.stderrTail.length > 50) this.stderrTail.shift();
      });
    }
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Waits for a {"event":"ready"} line (or another event). */
  waitFor(match: (e: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<void> {
    if (this.events.some(match)) return Promise.resolve();
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no ready event in ${timeoutMs} ms\n${this.stderrTail.join('\n')}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: () => {
          clearTimeout(timer);
          resolvePromise();
        },
      });
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? signal}) before it was ready\n${this.stderrTail.join('\n')}`));
      });
    });
  }

  async stop(graceMs = 5000): Promise<number | null> {
    if (this.alive) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.alive && this.proc.kill('SIGKILL'), graceMs);
    const { code } = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

const isReady = (e: Record<string, unknown>) => e.event === 'ready';

// ---- the Go peer -------------------------------------------------------------------------------

export async function startGoPeer(bin: string, listenPath: string): Promise<Child> {
  const proc = spawn(bin, ['serve', '-listen', listenPath], { stdio: ['pipe', 'pipe', 'pipe'] });
  // Per-stream events are only kept when they report an error.
  const child = new Child('go-peer', proc, { keepEvents: (e) => e.event !== 'stream' || Boolean(e.err) });
  await child.waitFor(isReady);
  return child;
}

/**
 * One run of the Go peer's own bench (Go client <-> Go server, hashicorp/yamux at both ends, over
 * a Unix socket in one process): what hashicorp/yamux itself achieves on this machine.
 */
export function goGoBench(
  bin: string,
  dir: Direction,
  streams: number,
  bytesPerStream: number,
  verify: boolean,
): Promise<ThroughputResult> {
  const mib = Math.max(1, Math.round(bytesPerStream / (1 << 20)));
  const args = ['bench', '-mib', String(mib), '-streams', String(streams), '-dir', dir, `-verify=${verify}`];
  return new Promise((resolvePromise, reject) => {
    execFile(bin, args, { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) return reject(err);
      const line = stdout.split('\n').find((l) => l.includes('"event":"bench"'));
      if (!line) return reject(new Error(`go bench printed no result: ${stdout.slice(0, 200)}`));
      const e = JSON.parse(line) as { seconds: number; errors: number };
      resolvePromise({ seconds: e.seconds, bytes: mib * (1 << 20) * streams, errors: e.errors ? [`${e.errors} streams failed`] : [] });
    });
  });
}

/** Streams the Go peer reported as failed (a served stream that ended with an error). */
export function goPeerErrors(peer: Child): string[] {
  return peer.events.filter((e) => e.event === 'stream' && e.err).map((e) => `${e.service}: ${e.err}`);
}

// ---- Node children -------------------------------------------------------------------------------

export async function startNodeChild(
  name: string,
  script: string,
  args: string[],
  nodeFlags: string[] = [],
  env: Record<string, string> = {},
): Promise<Child> {
  const proc = spawn(process.execPath, [...nodeFlags, join(BENCH_DIST, script), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const child = new Child(name, proc);
  await child.waitFor(isReady);
  return child;
}

// ---- the daemon ------------------------------------------------------------------------------------

/** How node is started for the daemon: extra node flags and environment. */
export interface NodeVariant {
  name: string;
  nodeFlags: string[];
  env: Record<string, string>;
}

/** The node flags and environment bin/kata-proxy starts node with (its `export VAR=x` and `flags='...'` lines). */
export function launcherVariant(): NodeVariant {
  const text = readFileSync(LAUNCHER, 'utf8');
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export ([A-Z_][A-Z0-9_]*)=(\S*)$/gm)) env[m[1]!] = m[2]!;
  const nodeFlags = (/^flags='([^']*)'$/m.exec(text)?.[1] ?? '').split(/\s+/).filter(Boolean);
  return { name: 'launcher', nodeFlags, env };
}

/**
 * What bin/kata-proxy starts a per-pod daemon from: the V8 startup snapshot (scripts/snapshot.mjs)
 * when the node on PATH built it, else the bundle (dist/bundle) while it is at least as new as
 * tsc's output, else dist/src.
 */
export function launcherEntry(launcher = LAUNCHER): 'snapshot' | 'dist/bundle' | 'dist/src' {
  try {
    // The launcher's own trace shows the node command line it execs.
    const trace = spawnSync('sh', ['-x', launcher, '-version'], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] }).stderr;
    if (/exec \S+ .*--snapshot-blob/.test(trace)) return 'snapshot';
  } catch {
    // not started: the figures will say so
  }
  const mtime = (rel: string) => {
    try {
      return statSync(join(dirname(launcher), rel)).mtimeMs;
    } catch {
      return -1;
    }
  };
  return mtime('../dist/bundle/kata-proxy.cjs') >= mtime('../dist/src/cli/main.js') ? 'dist/bundle' : 'dist/src';
}

/** How bin/kata-proxy starts node, for the report. */
export function shebangLine(): string {
  const v = launcherVariant();
  return `bin/kata-proxy: ${Object.entries(v.env).map(([k, x]) => `${k}=${x} `).join('')}node ${v.nodeFlags.join(' ')} (from the startup snapshot when the node on PATH built it, else the bundle)`;
}

export interface DaemonPaths {
  listen: string;
  mux: string;
  sandbox: string;
}

/** The argv of the Kata 1.x runtime (virtcontainers/kata_proxy.go) at log level warn. */
export function runtimeArgv(p: DaemonPaths): string[] {
  return ['-listen-socket', `unix://${p.listen}`, '-mux-socket', p.mux, '-sandbox', p.sandbox, '-log', 'warn'];
}

/** More `kata-proxy host` flags for an experiment: $BENCH_HOST_ARGS (e.g. "-pod-threads 0"). */
export function extraHostArgs(): string[] {
  return (process.env.BENCH_HOST_ARGS ?? '').split(' ').filter(Boolean);
}

/** The bench's environment without what would change how node runs the daemon. */
export function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  delete env.NODE_OPTIONS;
  return env;
}

/**
 * Starts the daemon. Without a variant it is exactly what the runtime runs: bin/kata-proxy (its
 * shebang supplies the node flags; env execs node, so the pid is node's). With a variant:
 * `node <variant flags> bin/kata-proxy <argv>` with the variant's environment only.
 * Resolves once an echo round trip through it works (listen socket up and yamux session live).
 */
export async function startDaemon(
  paths: DaemonPaths,
  variant?: NodeVariant,
  extraNodeFlags: string[] = [],
  /** Another checkout's bin/kata-proxy (for --ab: a change measured against this tree in the same run). */
  launcher = LAUNCHER,
): Promise<Child> {
  const main = join(dirname(launcher), '..', 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(main)) {
    throw new Error(`${main} does not exist: the CLI entry point is not built`);
  }
  const argv = runtimeArgv(paths);
  const env = daemonEnv();
  let proc: ChildProcess;
  if (!variant && extraNodeFlags.length === 0) {
    proc = spawn(launcher, argv, { stdio: ['ignore', 'ignore', 'pipe'], env, cwd: REPO_ROOT });
  } else {
    const v = variant ?? launcherVariant();
    proc = spawn(process.execPath, [...v.nodeFlags, ...extraNodeFlags, launcher, ...argv], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...env, ...v.env },
      cwd: REPO_ROOT,
    });
  }
  return untilServing(new Child(`kata-proxy${variant ? ` (${variant.name})` : ''}`, proc), paths.listen);
}

/**
 * Starts another proxy binary with the runtime's argv: the Go reference proxy
 * (test/go-peer/proxy) or a real Go kata-proxy (`--kata-proxy PATH`).
 */
export function startProxyBinary(name: string, bin: string, paths: DaemonPaths): Promise<Child> {
  const proc = spawn(bin, runtimeArgv(paths), { stdio: ['ignore', 'ignore', 'pipe'], cwd: REPO_ROOT });
  return untilServing(new Child(name, proc), paths.listen);
}

async function untilServing(child: Child, listen: string): Promise<Child> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!child.alive) throw new Error(`${child.name} exited during start-up\n${child.stderrTail.join('\n')}`);
    if (await probe(listen)) return child;
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`${child.name} did not serve within 20 s\n${child.stderrTail.join('\n')}`);
    }
    await sleep(25);
  }
}

/**
 * One "echo 1" exchange: true when it comes back (the whole path is up). `seen.connected` tells
 * a refused connect from an accepted connection that got no answer.
 */
export function probe(path: string, timeoutMs = 2000, seen: { connected: boolean } = { connected: false }): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = net.connect({ path, allowHalfOpen: true });
    socket.once('connect', () => (seen.connected = true));
    let got = 0;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('error', () => done(false));
    socket.on('data', (c: Buffer) => (got += c.length));
    socket.on('end', () => done(got === 1));
    socket.write('echo 1\nx');
  });
}

// ---- the load generator ------------------------------------------------------------------------

export class LoadClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;

  private constructor(readonly proc: ChildProcess) {
    let markReady!: () => void;
    this.ready = new Promise((r) => (markReady = r));
    proc.on('message', (msg: Response) => {
      if (msg.id === 0) return markReady();
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`load client: ${msg.error}`));
    });
    proc.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`load client exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  static async start(nodeFlags: string[] = []): Promise<LoadClient> {
    const proc = fork(join(BENCH_DIST, 'load-client.js'), [], { execArgv: nodeFlags, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const client = new LoadClient(proc);
    await client.ready;
    return client;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  run<T extends JobResult>(job: Job): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise as (r: JobResult) => void, reject });
      this.proc.send({ id, job } satisfies Request);
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    await this.run({ type: 'exit' }).catch(() => {});
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
