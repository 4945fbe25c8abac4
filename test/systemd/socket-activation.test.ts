// systemd socket activation with systemd's own tool: systemd-socket-activate holds the listen
// socket, starts the daemon on the first connection and passes the socket as fd 3. The same for
// the host and its control socket (kata-proxy-host.socket).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
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

/** Runs systemd-socket-activate on `socket` with `argv`, stopped after the test; its stderr lines are kept. */
function activate(socket: string, fdName: string, argv: string[]) {
  const tool = spawn(TOOL, ['-l', socket, `--fdname=${fdName}`, BIN, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  createInterface({ input: tool.stderr! }).on('line', (l) => lines.push(l));
  const exited = new Promise<number | null>((r) => tool.once('close', (code) => r(code)));
  cleanups.push(async () => {
    tool.kill('SIGTERM');
    await exited;
  });
  return { tool, lines, exited };
}

describe.skipIf(!TOOL)('socket activation', () => {
  it('serves the inherited socket; connections made before the daemon runs are answered', async () => {
    const { paths } = await simPod(cleanups, 'activated');
    const { tool, lines, exited } = activate(paths.listen, 'proxy', runtimeArgv(paths));
    // Wait for the tool to bind, then connect at once: the daemon is started by this connection.
    const { connectWithRetry } = await import('../../src/channel/unix-socket.js');
    (await connectWithRetry(paths.listen, { timeoutMs: 5000 })).destroy();
    const results = await Promise.all(Array.from({ length: 20 }, () => echoChecked(paths.listen, 50_000)));
    expect(results.every(Boolean)).toBe(true);
    expect(lines.some((l) => l.includes('serving the listen socket passed by systemd') && l.includes('name=proxy'))).toBe(true);
    tool.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('the host serves the inherited control socket: pod add started by the first connection, pods serve', async () => {
    const { dir, paths } = await simPod(cleanups, 'hosted');
    const control = dir.socket('host');
    const { tool, lines, exited } = activate(control, 'control', ['host', '-state-file', dir.file('pods.json'), '-log', 'info']);
    const { connectWithRetry } = await import('../../src/channel/unix-socket.js');
    // Bound by the tool (the host is not running yet): this `pod add` is the connection that starts it.
    (await connectWithRetry(control, { timeoutMs: 5000 })).destroy();
    const add = await promisify(execFile)(BIN, ['pod', 'add', 'p1', '-control-socket', control, '-listen-socket', `unix://${paths.listen}`, '-mux-socket', paths.mux]);
    expect(add.stdout).toContain('pod p1 added (serving)');
    const results = await Promise.all(Array.from({ length: 10 }, () => echoChecked(paths.listen, 50_000)));
    expect(results.every(Boolean)).toBe(true);
    const ls = await promisify(execFile)(BIN, ['pod', 'ls'], { env: { ...process.env, KATA_PROXY_CONTROL_SOCKET: control } });
    expect(ls.stdout).toMatch(/p1\s+serving/);
    expect(lines.some((l) => l.includes('serving the listen socket passed by systemd') && l.includes('name=control'))).toBe(true);
    tool.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
