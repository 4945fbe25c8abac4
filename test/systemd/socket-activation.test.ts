// systemd socket activation with systemd's own tool: systemd-socket-activate holds the listen
// socket, starts the daemon on the first connection and passes the socket as fd 3.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { echoChecked } from '../helpers/clients.js';
import { BIN, runtimeArgv } from '../helpers/daemon.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';

const TOOL = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v systemd-socket-activate'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
})();
if (!TOOL) console.warn('[systemd] systemd-socket-activate not found (apt install systemd): skipping');

const { cleanups } = perTest();

describe.skipIf(!TOOL)('socket activation', () => {
  it('serves the inherited socket; connections made before the daemon runs are answered', async () => {
    const { paths } = await simPod(cleanups, 'activated');
    const tool = spawn(TOOL, ['-l', paths.listen, '--fdname=proxy', BIN, ...runtimeArgv(paths)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const lines: string[] = [];
    createInterface({ input: tool.stderr! }).on('line', (l) => lines.push(l));
    const exited = new Promise<number | null>((r) => tool.once('close', (code) => r(code)));
    cleanups.push(async () => {
      tool.kill('SIGTERM');
      await exited;
    });
    // Wait for the tool to bind, then connect at once: the daemon is started by this connection.
    const { connectWithRetry } = await import('../../src/channel/unix-socket.js');
    (await connectWithRetry(paths.listen, { timeoutMs: 5000 })).destroy();
    const results = await Promise.all(Array.from({ length: 20 }, () => echoChecked(paths.listen, 50_000)));
    expect(results.every(Boolean)).toBe(true);
    expect(lines.some((l) => l.includes('serving the listen socket passed by systemd') && l.includes('name=proxy'))).toBe(true);
    tool.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
