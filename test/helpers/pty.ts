// A real pseudo-terminal pair from socat (raw, no echo) standing in for a serial guest channel.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TempDir } from './tmp.js';

export const HAVE_SOCAT = spawnSync('socat', ['-V']).status === 0;

/** Two linked ttys at `dir`/`name`-a and -b; socat is stopped by the cleanup pushed to `cleanups`. */
export async function ptyPair(dir: TempDir, cleanups: (() => unknown)[], name = 'tty'): Promise<{ a: string; b: string; socat: ChildProcess }> {
  const a = dir.file(`${name}-a`);
  const b = dir.file(`${name}-b`);
  const socat = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  const exited = new Promise((r) => socat.once('close', r));
  cleanups.push(async () => {
    socat.kill();
    await exited;
  });
  const deadline = Date.now() + 5000;
  while (!(existsSync(a) && existsSync(b))) {
    if (Date.now() > deadline) throw new Error('socat did not create the pty pair');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { a, b, socat };
}
