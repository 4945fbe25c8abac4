// An exception thrown inside one pod's code ends that pod alone, logged with its sandbox id; the
// host process and its other pods carry on. The host runs as a child process (its last-resort
// handlers are process-wide) with faults injected into three pods' code paths: the connection
// handler (a socket event), a timer, and a promise nobody awaits.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { connect, echoChecked } from '../helpers/clients.js';
import { Daemon } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { control, eventually, podBody } from './helpers.js';

const t = perTest('kpf');
const dist = (p: string) => JSON.stringify(join(REPO_ROOT, 'dist/src', p));

const FAULTY_HOST = `
  import { Proxy } from ${dist('proxy/proxy.js')};
  import { Heartbeat } from ${dist('proxy/heartbeat.js')};
  import { main } from ${dist('cli/main.js')};
  const sandbox = (logger) => logger.bindings().sandbox;
  const serve = Proxy.prototype.serve;
  Proxy.prototype.serve = function (client) {
    if (sandbox(this.options.logger) === 'bad-socket') throw new Error('injected in the connection handler');
    return serve.call(this, client);
  };
  const start = Heartbeat.prototype.start;
  Heartbeat.prototype.start = function (session) {
    if (sandbox(this.log) === 'bad-timer') setTimeout(() => { throw new Error('injected in a timer'); }, 100);
    if (sandbox(this.log) === 'bad-promise') setTimeout(() => void Promise.reject(new Error('injected rejection')), 100);
    return start.call(this, session);
  };
  await main(JSON.parse(process.argv[1]));`;

describe('faults inside one pod', () => {
  it('end only that pod (reason failed, logged with its sandbox id); the host and the other pods carry on', async () => {
    const socket = t.tmp.socket('host');
    const argv = ['host', '-control-socket', socket, '-state-file', t.tmp.file('pods.json'), '-log', 'info', '-log-format', 'json', '-log-sink', 'stderr'];
    const host = new Daemon(spawn(process.execPath, ['--input-type=module', '-e', FAULTY_HOST, JSON.stringify(argv)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    t.cleanups.push(() => host.stop());
    const ids = ['good', 'bad-socket', 'bad-timer', 'bad-promise'];
    for (const id of ids) {
      const guest = new SimulatedGuest({ muxSocket: t.tmp.socket(`g-${id}`) });
      await guest.start();
      t.cleanups.push(() => guest.stop());
    }
    await eventually(() => control(socket, 'GET', '/pods').then((r) => r.status === 200, () => false));
    for (const id of ids) expect((await control(socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id))).status).toBe(201);

    const victim = await connect(t.tmp.socket('p-bad-socket'));
    victim.on('error', () => {});
    victim.resume();
    const ended = await eventually(async () => {
      const pods = (await control(socket, 'GET', '/pods')).json.pods as { id: string; state: string; end?: { reason: string; error: string } }[];
      return pods.filter((p) => p.state === 'stopped').length === 3 ? pods : undefined;
    });
    const byId = Object.fromEntries(ended.map((p) => [p.id, p]));
    expect(byId['bad-socket']!.end).toMatchObject({ reason: 'failed', error: 'injected in the connection handler', status: 1 });
    expect(byId['bad-timer']!.end).toMatchObject({ reason: 'failed', error: 'injected in a timer' });
    expect(byId['bad-promise']!.end).toMatchObject({ reason: 'failed', error: 'injected rejection' });
    expect(byId.good!.state).toBe('serving');
    expect(await echoChecked(t.tmp.socket('p-good'), 500_000)).toBe(true);
    expect(host.proc.exitCode).toBeNull();

    const failures = host.records().filter((r) => r.msg === 'internal error; ending this pod');
    expect(failures.map((r) => r.sandbox).sort()).toEqual(['bad-promise', 'bad-socket', 'bad-timer']);
    for (const r of failures) expect(String(r.stack)).toMatch(/injected/);
    expect(host.records().some((r) => r.level === 'fatal')).toBe(false);
  });
});
