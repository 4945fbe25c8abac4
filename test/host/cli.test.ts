// The command line of host mode, end to end with the real binary: `kata-proxy host`, the
// `pod add|rm|ls|show` client (Go and GNU flag forms, exit statuses) and the per-pod daemon's
// read-only -control-socket.
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../src/cli/command-line.js';
import { echoChecked } from '../helpers/clients.js';
import { BIN, runtimeArgv, spawnDaemon } from '../helpers/daemon.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';
import { control, eventually, guestFarm } from './helpers.js';

const t = perTest('kpc');

function kp(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('host mode command line', () => {
  it('parses host and pod subcommands in Go and GNU forms; usage errors are status 2', () => {
    expect(parseCommandLine(['host', '-control-socket', '/c.sock', '-state-file=/s.json', '-log', 'debug'])).toEqual({
      kind: 'host',
      options: { controlSocket: '/c.sock', stateFile: '/s.json', logLevel: 'debug', logFormat: 'logfmt', logSink: 'auto', podLogRate: 1000, podSliceMs: 0.5, podConnRate: 100, podThreads: expect.any(Number), podThreadNice: 0, podRebalanceMs: 0 },
    });
    expect(parseCommandLine(['host'])).toMatchObject({ options: { controlSocket: '/run/kata-proxy/host.sock', stateFile: '/run/kata-proxy/pods.json' } });
    expect(parseCommandLine(['host', '-pod-log-rate', '0', '--pod-slice=2', '-pod-conn-rate', '0'])).toMatchObject({ options: { podLogRate: 0, podSliceMs: 2, podConnRate: 0 } });
    expect(parseCommandLine(['host', '-pod-threads', '0'])).toMatchObject({ options: { podThreads: 0 } });
    expect(parseCommandLine(['host', '--pod-threads=3'])).toMatchObject({ options: { podThreads: 3 } });
    expect(parseCommandLine(['host', '-pod-rebalance', '500'])).toMatchObject({ options: { podRebalanceMs: 500 } });
    expect(parseCommandLine(['host', '-pod-thread-nice', '0'])).toMatchObject({ options: { podThreadNice: 0 } });
    expect(parseCommandLine(['host', '--pod-thread-nice=19'])).toMatchObject({ options: { podThreadNice: 19 } });
    for (const bad of ['20', '2.5', '-1']) expect(parseCommandLine(['host', '-pod-thread-nice', bad])).toMatchObject({ kind: 'exit', code: 2 });
    expect(parseCommandLine(['host', '-pod-conn-rate', '-1'])).toMatchObject({ kind: 'exit', code: 2 });
    expect(parseCommandLine(['host', '-pod-slice', 'fast'])).toMatchObject({ kind: 'exit', code: 2 });
    for (const argv of [
      ['pod', 'add', 'p1', '-listen-socket', 'unix:///a.sock', '-mux-socket', '/b.sock', '-heartbeat', '2', '-listen-mode', '0600', '-no-wait'],
      ['pod', 'add', 'p1', '--listen-socket=/a.sock', '--mux-socket', 'unix:///b.sock', '--heartbeat=2', '--listen-mode=600', '--no-wait'],
    ]) {
      expect(parseCommandLine(argv)).toEqual({
        kind: 'pod',
        command: { action: 'add', id: 'p1', wait: false, body: { listenSocket: '/a.sock', muxSocket: '/b.sock', heartbeat: 2, listenMode: '0600' } },
      });
    }
    expect(parseCommandLine(['pod', 'add', 'p1', '-listen-socket', '/a', '-mux-socket', '/b', '-listen-mode', '0006'])).toMatchObject({
      command: { body: { listenMode: '0006' } },
    });
    expect(parseCommandLine(['pod', 'ls', '-control-socket', '/c.sock'])).toEqual({ kind: 'pod', command: { action: 'ls', controlSocket: '/c.sock' } });
    expect(parseCommandLine(['pod', 'rm', 'p1'])).toEqual({ kind: 'pod', command: { action: 'rm', id: 'p1' } });
    expect(parseCommandLine(['-listen-socket', '/a', '-mux-socket', '/b', '-control-socket', '/c'])).toMatchObject({ kind: 'daemon', options: { controlSocket: '/c' } });
    for (const argv of [
      ['pod', 'add', 'p1', '-mux-socket', '/b'], // no listen socket
      ['pod', 'add', 'p1', '-listen-socket', '/a'], // no guest channel
      ['pod', 'add', 'p1', '-listen-socket', '/a', '-mux-socket', '/b', '-heartbeat', 'soon'],
      ['pod', 'add', 'p1', '-listen-socket', '/a', '-mux-socket', '/b', '-heartbeat', '3000000'], // a timer turns 2^31 ms and more into 1 ms
      ['-listen-socket', '/a', '-mux-socket', '/b', '-drain-timeout', '3000000'],
      ['pod', 'add', 'bad/id', '-listen-socket', '/a', '-mux-socket', '/b'],
      ['pod', 'show'],
      ['pod', 'frobnicate'],
      ['host', '-bogus'],
    ]) {
      expect(parseCommandLine(argv)).toMatchObject({ kind: 'exit', code: 2 });
    }
  });

  it('kata-proxy host with pod add / ls / show / rm, exit statuses 0 and 1', async () => {
    const socket = t.tmp.socket('host');
    const host = spawnDaemon(['host', '-control-socket', socket, '-state-file', t.tmp.file('pods.json')]);
    t.cleanups.push(() => host.stop());
    const farm = await guestFarm([t.tmp.socket('g1'), t.tmp.socket('g2')]);
    t.cleanups.push(() => farm.stop());
    await eventually(() => control(socket, 'GET', '/pods').then((r) => r.status === 200, () => false), 15_000, 'the host');

    const add1 = kp(['pod', 'add', 'pod-1', '-listen-socket', `unix://${t.tmp.socket('p1')}`, '-mux-socket', t.tmp.socket('g1'), '-control-socket', socket]);
    expect(add1).toMatchObject({ code: 0, stdout: 'pod pod-1 added (serving)\n' });
    const env = { KATA_PROXY_CONTROL_SOCKET: socket };
    const add2 = kp(['pod', 'add', 'pod-2', '--listen-socket', t.tmp.socket('p2'), '--mux-socket', t.tmp.socket('g2'), '--heartbeat', '2'], env);
    expect(add2.code).toBe(0);
    expect(kp(['pod', 'add', 'pod-2', '--listen-socket', t.tmp.socket('p2'), '--mux-socket', t.tmp.socket('g2'), '--heartbeat', '2'], env)).toMatchObject({
      code: 0,
      stdout: 'pod pod-2 already present (serving)\n',
    });
    const conflict = kp(['pod', 'add', 'pod-2', '--listen-socket', t.tmp.socket('p2'), '--mux-socket', t.tmp.socket('g2')], env);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/other settings.*\(conflict\)/);
    expect(await echoChecked(t.tmp.socket('p1'), 200_000)).toBe(true);

    const ls = kp(['pod', 'ls'], env);
    expect(ls.code).toBe(0);
    const rows = ls.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/));
    expect(rows[0]).toEqual(['ID', 'STATE', 'CLIENTS', 'STREAMS', 'IN', 'OUT', 'UPTIME', 'END']);
    expect(rows.slice(1).map((r) => r.slice(0, 4))).toEqual([
      ['pod-1', 'serving', '0', '0'],
      ['pod-2', 'serving', '0', '0'],
    ]);
    expect(rows[1]![4]).toMatch(/^\d+\.\dKiB$/);

    const show = kp(['pod', 'show', 'pod-2', '--control-socket', socket]);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ id: 'pod-2', settings: { heartbeat: 2 }, streamDetail: [] });

    expect(kp(['pod', 'rm', 'pod-1'], env)).toMatchObject({ code: 0, stdout: 'pod pod-1 removed\n' });
    expect(kp(['pod', 'rm', 'pod-1'], env)).toMatchObject({ code: 1, stderr: 'kata-proxy: no pod pod-1 (unknown-pod)\n' });
    expect(kp(['pod', 'show', 'pod-1'], env).code).toBe(1);
    const unreachable = kp(['pod', 'ls', '-control-socket', t.tmp.socket('nobody')]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach the host at .*nobody\.sock/);
    expect(kp(['pod', 'add', 'pod-3', '-mux-socket', '/x'], env).code).toBe(2);
    const noGuest = kp(['pod', 'add', 'pod-4', '-listen-socket', t.tmp.socket('p4'), '-mux-socket', t.tmp.socket('g4'), '-retry-timeout', '0.2'], env);
    expect(noGuest.code).toBe(1);
    expect(noGuest.stderr).toMatch(/ended before its session was up \(pod-ended\): .*gave up after 200 ms/);
  });

  it('pod add waiting for its guest while the host stops: says the host went away, status 1', async () => {
    const socket = t.tmp.socket('host');
    const host = spawnDaemon(['host', '-control-socket', socket, '-state-file', t.tmp.file('pods.json')]);
    t.cleanups.push(() => host.stop());
    await eventually(() => control(socket, 'GET', '/pods').then((r) => r.status === 200, () => false), 15_000, 'the host');
    const add = spawn(BIN, ['pod', 'add', 'late', '-control-socket', socket, '-listen-socket', t.tmp.socket('p-late'), '-mux-socket', t.tmp.socket('g-late')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    add.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => add.once('close', r));
    await eventually(async () => (await control(socket, 'GET', '/pods')).json.pods.length === 1, 10_000, 'the pod registered');
    host.proc.kill('SIGTERM');
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/the host closed the connection before answering: .*check with `kata-proxy pod show late` once it is back/);
  });

  it('the per-pod daemon serves GET /pods, /pods/ID and /metrics on -control-socket, read-only', async () => {
    const { paths } = await simPod(t.cleanups, 'sb-1');
    const socket = t.tmp.socket('ctl');
    const daemon = spawnDaemon([...runtimeArgv(paths), '-control-socket', socket]);
    t.cleanups.push(() => daemon.stop());
    await daemon.waitForListen(paths.listen);
    expect(await echoChecked(paths.listen, 10_000)).toBe(true);
    const list = await eventually(async () => {
      const r = await control(socket, 'GET', '/pods').catch(() => null);
      return r?.status === 200 ? r.json : undefined;
    });
    expect(list.pods).toHaveLength(1);
    expect(list.pods[0]).toMatchObject({
      id: 'sb-1',
      state: 'serving',
      connectionsServed: 2, // waitForListen's probe and the echo
      settings: { listenSocket: paths.listen, muxSocket: paths.mux, heartbeat: 1, listenMode: '0660', logLevel: 'debug' },
    });
    expect((await control(socket, 'GET', '/pods/sb-1')).json).toMatchObject({ id: 'sb-1', streamDetail: [] });
    expect((await control(socket, 'GET', '/pods/other')).status).toBe(404);
    expect((await control(socket, 'GET', '/metrics')).text).toMatch(/^kata_proxy_pod_connections_total\{sandbox="sb-1"\} 2$/m);
    for (const [method, path] of [['PUT', '/pods/x'], ['DELETE', '/pods/sb-1']] as const) {
      const r = await control(socket, method, path, method === 'PUT' ? { listenSocket: '/a', muxSocket: '/b' } : undefined);
      expect(r.status).toBe(405);
      expect(r.json.code).toBe('read-only');
    }
    expect(await daemon.stop()).toBe(0);
  });
});
