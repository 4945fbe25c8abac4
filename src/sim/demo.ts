import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../package-root.js';
import { SimulatedGuest } from './guest.js';
import { runWorkload } from './workload.js';

const BIN = path.join(packageRoot(), 'bin', 'kata-proxy');

/**
 * `kata-proxy demo`: a simulated guest in a temporary directory, the real daemon started against
 * it with the Kata runtime's own argv, a short workload through it, and a summary.
 */
export async function runDemo(options: { stay: boolean; out?: NodeJS.WritableStream }): Promise<number> {
  const out = options.out ?? process.stdout;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kata-proxy-demo-'));
  const sockets = {
    mux: path.join(dir, 'kata.sock'),
    console: path.join(dir, 'console.sock'),
    listen: path.join(dir, 'proxy.sock'),
  };
  const guest = new SimulatedGuest({ muxSocket: sockets.mux, consoleSocket: sockets.console, consoleIntervalMs: 5000 });
  await guest.start();
  const argv = [
    '-listen-socket', `unix://${sockets.listen}`,
    '-mux-socket', sockets.mux,
    '-sandbox', 'demo',
    '-log', 'info',
    '-agent-logs-socket', sockets.console,
  ];
  out.write(`simulated guest: ${sockets.mux}\nstarting: kata-proxy ${argv.join(' ')}\n\n`);
  // The launcher itself, as the Kata runtime starts it (its flags, its snapshot when it has one).
  const daemon = spawn(BIN, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number>((resolve) => daemon.once('exit', (code) => resolve(code ?? 1)));
  const cleanup = async () => {
    daemon.kill('SIGTERM');
    const code = await exited;
    await guest.stop();
    rmSync(dir, { recursive: true, force: true });
    return code;
  };
  try {
    await waitForSocket(sockets.listen, exited);
    const result = await runWorkload(sockets.listen);
    const mib = result.bytes / (1 << 20);
    out.write(
      [
        '',
        'kata-proxy demo: workload through the proxy',
        `  streams           ${result.streams}`,
        `  bytes             ${mib.toFixed(1)} MiB (both directions)`,
        `  throughput        ${(mib / result.seconds).toFixed(1)} MiB/s`,
        `  latency 64 B      p50 ${result.latencyMs.p50.toFixed(3)} ms, p99 ${result.latencyMs.p99.toFixed(3)} ms (${result.latencyMs.samples} round trips)`,
        `  checksums         ${result.checksumsOk} ok, ${result.checksumsBad} bad`,
        '',
      ].join('\n'),
    );
    if (options.stay) {
      out.write(`proxy socket: ${sockets.listen}\ntry:  socat - UNIX-CONNECT:${sockets.listen}   (then type "echo" and a line)\nCtrl-C to stop.\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        void exited.then(() => resolve());
      });
    }
    const code = await cleanup();
    const ok = result.checksumsBad === 0 && code === 0;
    out.write(ok ? 'demo passed: every checksum verified, proxy stopped cleanly\n' : `demo FAILED (proxy exit ${code})\n`);
    return ok ? 0 : 1;
  } catch (err) {
    out.write(`demo failed: ${(err as Error).message}\n`);
    await cleanup();
    return 1;
  }
}

async function waitForSocket(socketPath: string, exited: Promise<number>): Promise<void> {
  const { connectWithRetry } = await import('../channel/unix-socket.js');
  const failed = exited.then((code) => {
    throw new Error(`the proxy exited early with status ${code}`);
  });
  const socket = await Promise.race([connectWithRetry(socketPath, { timeoutMs: 15_000 }), failed]);
  socket.destroy();
}
