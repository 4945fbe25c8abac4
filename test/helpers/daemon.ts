// The real daemon (bin/kata-proxy, built to dist/ by `npm test`) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connectWithRetry } from '../../src/channel/unix-socket.js';

export const BIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'bin', 'kata-proxy');

/** The argv the Kata 1.x runtime uses (virtcontainers/kata_proxy.go), with our paths. */
export function runtimeArgv(p: { listen: string; mux: string; sandbox: string; console?: string }): string[] {
  const argv = ['-listen-socket', `unix://${p.listen}`, '-mux-socket', p.mux, '-sandbox', p.sandbox, '-log', 'debug'];
  if (p.console) argv.push('-agent-logs-socket', p.console);
  return argv;
}

export class Daemon {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout = '';
  private watchers: ((line: string) => void)[] = [];

  constructor(readonly proc: ChildProcess) {
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      this.lines.push(line);
      for (const w of this.watchers) w(line);
    });
    proc.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.exited = new Promise((r) => proc.once('close', (code, signal) => r({ code, signal })));
  }

  /** Log records as parsed JSON (lines that are not JSON are skipped). */
  records(): Record<string, unknown>[] {
    return this.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  waitForLine(match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching log line in ${timeoutMs} ms:\n${this.lines.slice(-20).join('\n')}`)), timeoutMs);
      this.watchers.push((line) => {
        if (match(line)) {
          clearTimeout(timer);
          resolvePromise(line);
        }
      });
    });
  }

  async waitForListen(socketPath: string): Promise<void> {
    const socket = await connectWithRetry(socketPath, { timeoutMs: 15_000 });
    socket.destroy();
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    const { code } = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** `bin` is another kata-proxy than this checkout's (an installed one). */
export function spawnDaemon(argv: string[], env: NodeJS.ProcessEnv = {}, bin = BIN): Daemon {
  const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  return new Daemon(proc);
}
