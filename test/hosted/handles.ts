// Starting kata-proxy-hosted as the Kata runtime does (its own session, stdio on /dev/null unless
// a test reads stderr), with the native handle or the Node one.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isLive } from '../../src/proxy/listener.js';
import { REPO_ROOT } from '../helpers/go-peer.js';

export const HOSTED_BIN = join(REPO_ROOT, 'bin', 'kata-proxy-hosted');
export const NATIVE_HANDLE = join(REPO_ROOT, 'dist', 'native', 'kata-proxy-handle');
const NODE_HANDLE = join(REPO_ROOT, 'dist', 'src', 'hosted', 'node-handle.js');

export interface HandleKind {
  name: string;
  available: boolean;
  /** Whether a stop signal during registration still removes the pod (the Node handle just dies). */
  stopsDuringRegistration: boolean;
  command(argv: string[]): [string, string[]];
}

export const HANDLE_KINDS: HandleKind[] = [
  { name: 'native handle', available: existsSync(NATIVE_HANDLE), stopsDuringRegistration: true, command: (argv) => [HOSTED_BIN, argv] },
  { name: 'Node handle', available: true, stopsDuringRegistration: false, command: (argv) => [process.execPath, [NODE_HANDLE, ...argv]] },
];

export class Handle {
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;

  constructor(readonly proc: ChildProcess) {
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => proc.once('close', (code, signal) => r({ code, signal, at: Date.now() })));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /**
   * Until the pod's listen socket accepts. Not until its file exists: a per-pod daemon (-fallback)
   * binds a moment before it listens, and a connect in between is refused.
   */
  async untilServing(listenSocket: string): Promise<void> {
    while (!(await isLive(listenSocket))) {
      if (!this.alive) throw new Error(`handle exited: ${this.stderr}`);
      await sleep(5);
    }
  }

  async kill(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** Spawns a handle with setsid and /dev/null stdio (stderr piped when `stderr` is set). */
export function spawnHandle(kind: HandleKind, argv: string[], env: NodeJS.ProcessEnv, opts: { stderr?: boolean } = {}): Handle {
  const [cmd, args] = kind.command(argv);
  const proc = spawn(cmd, args, {
    detached: true,
    stdio: ['ignore', 'ignore', opts.stderr ? 'pipe' : 'ignore'],
    env: { ...process.env, ...env },
  });
  return new Handle(proc);
}
