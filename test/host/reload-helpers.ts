// Reload fixtures: a host process whose successors are followed by pid, and client connections
// that check every byte of their exchange and notice any EOF, reset or EPIPE.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { BIN } from '../helpers/daemon.js';
import { sourceBytes, sourceDigest } from '../helpers/data.js';
import { control, eventually } from './helpers.js';

/** The host, started by the test; after a reload the serving process is another pid. */
export class HostProcess {
  readonly lines: string[] = [];
  readonly first: ChildProcess;
  /** Exit status of the first process (the others are not our children: see gone()). */
  readonly firstExit: Promise<number | null>;
  pid: number;

  /** `program`: an installed program (installProgram) run by node, instead of the launcher. */
  constructor(readonly socket: string, argv: string[], env: NodeJS.ProcessEnv = {}, program?: string) {
    const [command, args] = program ? [process.execPath, [program, ...argv]] : [BIN, argv];
    this.first = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    this.pid = this.first.pid!;
    createInterface({ input: this.first.stderr! }).on('line', (l) => this.lines.push(l));
    // 'exit', not 'close': the successor inherits stderr and keeps the pipe open.
    this.firstExit = new Promise((r) => this.first.once('exit', (code) => r(code)));
  }

  async ready(): Promise<void> {
    await eventually(() => control(this.socket, 'GET', '/pods').then((r) => r.status === 200, () => false), 15_000, 'the host');
  }

  /** POST /upgrade; on success the serving pid is the reported one. */
  async reload(): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await control(this.socket, 'POST', '/upgrade');
    if (r.status === 200) this.pid = r.json.pid;
    return r;
  }

  /** Kills whichever process serves now (a test's cleanup). */
  kill(): void {
    for (const pid of new Set([this.first.pid!, this.pid])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/**
 * Installs a kata-proxy program at `path` (what a reload starts: the program now at the running
 * host's path): the real build, after `preload`, JavaScript run first in that process (to break
 * it at a chosen moment of the handover). Call again to install another version over it.
 */
export function installProgram(path: string, preload = ''): string {
  mkdirSync(dirname(path), { recursive: true });
  const main = pathToFileURL(join(dirname(BIN), '..', 'dist', 'bundle', 'kata-proxy.cjs')).href;
  writeFileSync(path, `${preload}\nimport(${JSON.stringify(main)}).then((m) => m.main(process.argv.slice(2)));\n`);
  return path;
}

/**
 * A preload (installProgram) that runs `code` on each handover message `m` before the program
 * sees it. It wraps process.emit rather than adding a listener: a listener present before the
 * program's own would let Node deliver messages nobody else hears yet.
 */
export function onMessage(code: string): string {
  return `const emit = process.emit; process.emit = function (event, m, ...rest) { if (event === 'message' && m) { ${code} } return emit.call(this, event, m, ...rest); };`;
}

/** Resolves once process `pid` no longer exists. */
export function gone(pid: number, timeoutMs = 10_000): Promise<true> {
  return eventually(() => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true as const;
    }
  }, timeoutMs, `process ${pid} to exit`);
}

/** What a checked connection saw go wrong (none: a clean exchange). */
export interface Exchange {
  name: string;
  problems: string[];
  done: Promise<void>;
  stop(): void;
}

function connect(path: string, name: string, problems: string[]): net.Socket {
  const s = net.connect({ path, allowHalfOpen: true });
  s.on('error', (err) => problems.push(`${name}: ${err.message}`));
  return s;
}

/** 64-byte requests echoed back one at a time until stop(); every answer compared. */
export function rpcLoop(path: string, name: string, rounds: { n: number; lastMs: number[] }): Exchange {
  const problems: string[] = [];
  const s = connect(path, name, problems);
  let stopped = false;
  let buf = Buffer.alloc(0);
  let expect: Buffer | null = null;
  let sentAt = 0;
  let i = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const next = () => {
    if (stopped) {
      s.end();
      return;
    }
    expect = Buffer.from(`${name}:${i++}:`.padEnd(64, '.'));
    sentAt = performance.now();
    s.write(expect);
  };
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (expect && buf.length >= 64) {
      if (!buf.subarray(0, 64).equals(expect)) problems.push(`${name}: answer ${i} differs`);
      buf = buf.subarray(64);
      rounds.n++;
      rounds.lastMs.push(performance.now() - sentAt);
      next();
    }
  });
  s.on('end', () => {
    if (!stopped) problems.push(`${name}: EOF before the end`);
    resolveDone();
  });
  s.on('close', () => resolveDone());
  s.once('connect', () => {
    s.write('echo\n');
    next();
  });
  return { name, problems, done, stop: () => (stopped = true) };
}

/** Downloads `n` bytes of generator stream `seed` ("source"), reading in paced bursts. */
export function download(path: string, name: string, n: number, seed: number, paceMs = 2): Exchange {
  const problems: string[] = [];
  const s = connect(path, name, problems);
  const hash = createHash('sha256');
  let got = 0;
  const done = new Promise<void>((resolve) => {
    s.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
      s.pause();
      setTimeout(() => s.resume(), paceMs);
    });
    s.on('end', () => {
      if (got !== n) problems.push(`${name}: ${got} of ${n} bytes`);
      else if (hash.digest('hex') !== sourceDigest(n, seed)) problems.push(`${name}: digest differs`);
      s.end();
      resolve();
    });
  });
  s.once('connect', () => s.write(`source ${n} ${seed}\n`));
  return { name, problems, done, stop: () => {} };
}

/** Uploads `n` bytes ("sink n") in paced pieces; the guest's digest must match. */
export function upload(path: string, name: string, n: number, seed: number, paceMs = 2): Exchange {
  const problems: string[] = [];
  const s = connect(path, name, problems);
  const data = sourceBytes(n, seed);
  let reply = '';
  s.setEncoding('utf8');
  const done = new Promise<void>((resolve) => {
    s.on('data', (d: string) => (reply += d));
    s.on('end', () => {
      const want = `${createHash('sha256').update(data).digest('hex')} ${n}\n`;
      if (reply !== want) problems.push(`${name}: guest answered ${JSON.stringify(reply)}`);
      s.end();
      resolve();
    });
  });
  s.once('connect', async () => {
    s.write(`sink ${n}\n`);
    for (let at = 0; at < n && !s.destroyed; at += 32 * 1024) {
      if (!s.write(data.subarray(at, at + 32 * 1024))) await new Promise((r) => s.once('drain', r));
      await new Promise((r) => setTimeout(r, paceMs));
    }
  });
  return { name, problems, done, stop: () => {} };
}
