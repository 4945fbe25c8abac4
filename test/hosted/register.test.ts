// Registration against the real host (`kata-proxy host`): the handles send the runtime's argv and
// the host reads it with the daemon's own option code. The native handle needs no Node to
// register (it runs with a PATH where there is none); usage errors come back as the daemon
// prints them, with status 2; help and version keep bin/kata-proxy's outputs.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/host/control-client.js';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { echoChecked } from '../helpers/clients.js';
import { BIN, runtimeArgv, spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { createTempDir } from '../helpers/tmp.js';
import { HANDLE_KINDS, HOSTED_BIN, NATIVE_HANDLE, spawnHandle, type HandleKind } from './handles.js';

const run = (cmd: string, argv: string[], env: NodeJS.ProcessEnv) =>
  promisify(execFile)(cmd, argv, { env }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

describe('registration with a real host', () => {
  const dir = createTempDir('kprg');
  const control = dir.socket('host');
  let host: Daemon;
  const guest = new SimulatedGuest({ muxSocket: dir.socket('kata') });

  beforeAll(async () => {
    await guest.start();
    host = spawnDaemon(['host', '-control-socket', control, '-state-file', dir.file('pods.json'), '-log', 'warn']);
    while (!(await controlRequest(control, 'GET', '/pods', undefined, 2000).then((r) => r.status === 200, () => false))) {
      if (host.proc.exitCode !== null) throw new Error(`host exited:\n${host.lines.join('\n')}`);
      await sleep(20);
    }
  });
  afterAll(async () => {
    await host?.stop();
    await guest.stop();
    dir.cleanup();
  });

  const env = { ...process.env, KATA_PROXY_CONTROL_SOCKET: control };

  describe.each(HANDLE_KINDS.filter((k) => k.available))('$name', (kind) => {
    const tag = kind.name.split(' ')[0]!;

    it('registers the pod from the argv, serves it, and takes it along when stopped', async () => {
      const paths = { listen: dir.socket(`${tag}-ok`), mux: dir.socket('kata'), sandbox: `${tag}-ok` };
      // The native handle must not need Node to register: no node on its PATH.
      const handleEnv = kind.name === 'native handle' ? { PATH: '/nonexistent' } : {};
      const handle = spawnHandle(kind, runtimeArgv(paths), { ...handleEnv, KATA_PROXY_CONTROL_SOCKET: control }, { stderr: true });
      try {
        await handle.untilServing(paths.listen);
        expect(await echoChecked(paths.listen, 50_000)).toBe(true);
        const view = async () => (await controlRequest(control, 'GET', `/pods/${paths.sandbox}`, undefined, 2000)).body as { handle?: { attached: boolean } };
        for (let i = 0; !(await view()).handle?.attached && i < 200; i++) await sleep(10);
        expect(await view()).toMatchObject({ id: paths.sandbox, state: 'serving', handle: { pid: handle.pid, attached: true }, settings: { logLevel: 'debug' } });
      } finally {
        handle.proc.kill('SIGTERM');
        await handle.exited;
      }
      for (let i = 0; existsSync(paths.listen) && i < 200; i++) await sleep(10);
      expect(existsSync(paths.listen)).toBe(false);
      expect(handle.stderr).toBe('');
    });

    it("a usage error: the daemon's own message, status 2, nothing registered", async () => {
      const bad = [
        ['-listen-socket', `unix://${dir.socket('u')}`, '-mux-socket', dir.socket('kata'), '-sandbox', `${tag}-u`, '-bogus'],
        ['-listen-socket', `unix://${dir.socket('u')}`, '-sandbox', `${tag}-u`], // missing -mux-socket: the message carries the usage text
        ['-listen-socket', 'tcp://x', '-mux-socket', dir.socket('kata'), '-sandbox', `${tag}-u`, '-heartbeat', 'x'],
      ];
      for (const argv of bad) {
        const daemon = await run(BIN, argv, process.env);
        const [cmd, args] = kind.command(argv);
        const hosted = await run(cmd, args, env);
        expect(daemon.code).toBe(2);
        expect(hosted).toEqual({ code: 2, stdout: '', stderr: daemon.stderr });
      }
      const missingSandbox = await run(...kind.command(['-listen-socket', `unix://${dir.socket('u')}`, '-mux-socket', dir.socket('kata')]), env);
      expect(missingSandbox).toMatchObject({ code: 2, stderr: expect.stringContaining('missing required flag -sandbox') });
      const pods = (await controlRequest(control, 'GET', '/pods', undefined, 2000)).body as { pods: { id: string }[] };
      expect(pods.pods.map((p) => p.id)).not.toContain(`${tag}-u`);
    });

    it('-version and -help print what bin/kata-proxy prints, with the host up', async () => {
      for (const flag of ['-version', '-help']) {
        const daemon = await run(BIN, [flag], process.env);
        expect(await run(...kind.command([flag]), env)).toEqual(daemon);
      }
    });

    it('a pod the host refuses (same id, other settings): status 1 and the reason', async () => {
      const paths = { listen: dir.socket(`${tag}-c`), mux: dir.socket('kata'), sandbox: `${tag}-c` };
      const first = spawnHandle(kind, runtimeArgv(paths), { KATA_PROXY_CONTROL_SOCKET: control });
      try {
        await first.untilServing(paths.listen);
        const other = await run(...kind.command([...runtimeArgv({ ...paths, listen: dir.socket(`${tag}-c2`) })]), env);
        expect(other.code).toBe(1);
        expect(other.stderr).toMatch(/refused the pod.*(409|conflict)/s);
      } finally {
        first.proc.kill('SIGTERM');
        await first.exited;
      }
    });

    it('no host: status 1; with -fallback a per-pod daemon serves the pod', async () => {
      const paths = { listen: dir.socket(`${tag}-f`), mux: dir.socket('kata'), sandbox: `${tag}-f` };
      const noHost = { ...process.env, KATA_PROXY_CONTROL_SOCKET: dir.socket('none') };
      const alone = await run(...kind.command(runtimeArgv(paths)), noHost);
      expect(alone).toMatchObject({ code: 1, stderr: expect.stringContaining('no kata-proxy host answers') });
      const daemon = spawnHandle(kind, ['-fallback', ...runtimeArgv(paths)], { KATA_PROXY_CONTROL_SOCKET: dir.socket('none') }, { stderr: true });
      try {
        await daemon.untilServing(paths.listen);
        expect(await echoChecked(paths.listen, 50_000)).toBe(true);
        expect(daemon.stderr).toContain('serving the pod with a per-pod daemon');
      } finally {
        daemon.proc.kill('SIGTERM');
      }
      expect(await daemon.exited).toMatchObject({ code: 0 });
    });
  });

  it('POST /pods refuses what is not a command line, and changes nothing', async () => {
    const post = (query: string, body: unknown) => controlRequest(control, 'POST', `/pods${query}`, body, 2000);
    const refusals = [
      [await post('?pid=1', { argv: 'no' }), 400, 'bad-command-line'],
      [await post('?pid=1', { argv: [], env: { A: 1 } }), 400, 'bad-command-line'],
      [await post('?pid=1', { argv: [], other: true }), 400, 'unknown-field'],
      [await post('', { argv: [] }), 400, 'bad-pid'],
      [await post(`?pid=${process.pid}&attach=2`, { argv: runtimeArgv({ listen: dir.socket('q'), mux: dir.socket('kata'), sandbox: 'q' }) }), 400, 'bad-query'],
      [await post(`?pid=${process.pid}`, { argv: ['-version'] }), 422, 'not-a-pod'],
    ] as const;
    for (const [answer, status, code] of refusals) expect(answer).toMatchObject({ status, body: { code } });
    const pods = (await controlRequest(control, 'GET', '/pods', undefined, 2000)).body as { pods: { id: string }[] };
    expect(pods.pods.map((p) => p.id)).not.toContain('q');
  });

  it('the native frame: refusals are one line and change nothing; a usage error is the daemon\'s text', async () => {
    const frame = (...fields: string[]) => Buffer.from(`\0${fields.map((f) => `${f}\0`).join('')}`);
    const answer = (bytes: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(control, () => socket.end(bytes));
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    const q = runtimeArgv({ listen: dir.socket('fq'), mux: dir.socket('kata'), sandbox: 'fq' });
    const pid = String(process.pid);
    expect(await answer(frame('kata-proxy-register 2', pid, '0', ''))).toMatch(/^refused 400 bad-frame /);
    expect(await answer(frame('kata-proxy-register 1', '0', '0', ''))).toMatch(/^refused 400 bad-frame .*pid/);
    expect(await answer(frame('kata-proxy-register 1', pid, String(q.length), ...q, 'NOEQUALS', ''))).toMatch(/^refused 400 bad-frame /);
    expect(await answer(frame('kata-proxy-register 1', pid, '1', '-version', ''))).toBe('not-a-pod\n');
    const usage = await answer(frame('kata-proxy-register 1', pid, '3', '-sandbox', 'fq', '-no-such-flag', ''));
    expect(usage).toMatch(/^usage\n/);
    expect(usage.slice(6)).toBe((await run(HOSTED_BIN, ['-sandbox', 'fq', '-no-such-flag'], env)).stderr);
    const pods = (await controlRequest(control, 'GET', '/pods', undefined, 2000)).body as { pods: { id: string }[] };
    expect(pods.pods.map((p) => p.id)).not.toContain('fq');
  });

  /** Starts `kind` with the runtime's argv for pod `sandbox` (no node on PATH), serves one checked echo through it, stops it. */
  async function servedOnce(kind: HandleKind, sandbox: string, atStart: (pid: number) => void = () => {}): Promise<void> {
    const paths = { listen: dir.socket(sandbox), mux: dir.socket('kata'), sandbox };
    const handle = spawnHandle(kind, runtimeArgv(paths), { PATH: '/nonexistent', KATA_PROXY_CONTROL_SOCKET: control }, { stderr: true });
    try {
      atStart(handle.pid);
      await handle.untilServing(paths.listen);
      expect(await echoChecked(paths.listen, 10_000)).toBe(true);
    } finally {
      handle.proc.kill('SIGTERM');
      await handle.exited;
    }
  }

  it('the native handle started directly (the runtime pointed at dist/native/kata-proxy-handle): same registration, same Node step', async () => {
    const native = HANDLE_KINDS.find((k) => k.name === 'native handle')!;
    if (!native.available) return;
    await servedOnce({ ...native, command: (argv) => [NATIVE_HANDLE, argv] }, 'direct');
    // -version is the Node step's, found beside the handle.
    expect(await run(NATIVE_HANDLE, ['-version'], env)).toEqual(await run(BIN, ['-version'], process.env));
  });

  it('bin/kata-proxy-hosted is the native handle itself where one was built: the runtime starts no shell', async () => {
    const native = HANDLE_KINDS.find((k) => k.name === 'native handle')!;
    if (!native.available) return;
    expect(readFileSync(HOSTED_BIN).equals(readFileSync(NATIVE_HANDLE))).toBe(true);
    // The spawned pid is the handle from its first instruction (no exec of a shell before).
    await servedOnce(native, 'bin', (pid) => expect(readlinkSync(`/proc/${pid}/exe`)).toBe(realpathSync(HOSTED_BIN)));
    // The Node step is found from bin/ as from dist/native/.
    expect(await run(HOSTED_BIN, ['-version'], env)).toEqual(await run(BIN, ['-version'], process.env));
  });

  it('the native handle takes -control-socket from its argv in every Go form', async () => {
    const native = HANDLE_KINDS.find((k) => k.name === 'native handle')!;
    if (!native.available) return;
    for (const [i, flag] of [['-control-socket', control], [`--control-socket=${control}`]].entries()) {
      const paths = { listen: dir.socket(`cs${i}`), mux: dir.socket('kata'), sandbox: `cs${i}` };
      const handle = spawnHandle(native, [...flag, ...runtimeArgv(paths)], { PATH: '/nonexistent', KATA_PROXY_CONTROL_SOCKET: dir.socket('none') }, { stderr: true });
      await handle.untilServing(paths.listen);
      handle.proc.kill('SIGTERM');
      await handle.exited;
    }
    expect(await run(HOSTED_BIN, ['-control-socket'], env)).toMatchObject({ code: 2, stderr: expect.stringContaining('-control-socket') });
  });
});
