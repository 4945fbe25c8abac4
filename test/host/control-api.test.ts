// The control API of an in-process Host over a real Unix socket, pods with simulated guests.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { serveControl } from '../../src/host/control-server.js';
import { Host } from '../../src/host/host.js';
import { processStartTime } from '../../src/host/process-identity.js';
import { StateFile } from '../../src/host/state-file.js';
import { createLoggers } from '../../src/log/logger.js';
import { podConfigFromJson } from '../../src/proxy/pod-settings.js';
import { SimulatedGuest } from '../../src/sim/guest.js';
import { echoChecked } from '../helpers/clients.js';
import { perTest } from '../helpers/per-test.js';
import { attachRaw, control, eventually, inProcessHost, podBody } from './helpers.js';

const t = perTest('kph');

async function setup(guests: string[] = ['a'], podThreads = 0) {
  const h = await inProcessHost(t.tmp, podThreads);
  t.cleanups.push(() => h.close());
  for (const name of guests) {
    const guest = new SimulatedGuest({ muxSocket: t.tmp.socket(`g-${name}`) });
    await guest.start();
    t.cleanups.push(() => guest.stop());
  }
  return h;
}

function sleeper() {
  const proc = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.cleanups.push(() => proc.kill('SIGKILL'));
  return proc;
}

/** Pod "a" serving, with a handle (a sleeping process) attached to it. */
async function attachedPod() {
  const h = await setup();
  await control(h.socket, 'PUT', '/pods/a?wait=serving', podBody(t.tmp, 'a'));
  const handle = sleeper();
  const link = await attachRaw(h.socket, 'a', handle.pid!);
  await eventually(() => link.text().endsWith('attached\n'));
  return { h, handle, link };
}

describe('control API', () => {
  it('PUT creates (201), the same settings again answer 200, other settings 409; the pod serves', async () => {
    const h = await setup();
    const body = podBody(t.tmp, 'a');
    const created = await control(h.socket, 'PUT', '/pods/a?wait=serving', body);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ id: 'a', state: 'serving', settings: { listenSocket: t.tmp.socket('p-a'), heartbeat: 1, listenMode: '0660' } });
    // Defaults spelled out are the same settings.
    expect((await control(h.socket, 'PUT', '/pods/a', { ...body, heartbeat: 1, drainTimeout: '5' })).status).toBe(200);
    const conflict = await control(h.socket, 'PUT', '/pods/a', { ...body, heartbeat: 2 });
    expect(conflict.status).toBe(409);
    expect(conflict.json).toMatchObject({ code: 'conflict' });
    expect(await echoChecked(t.tmp.socket('p-a'), 100_000)).toBe(true);
    expect(statSync(t.tmp.socket('host')).mode & 0o777).toBe(0o600);
    expect(statSync(t.tmp.socket('p-a')).mode & 0o777).toBe(0o660);
  });

  it.each([0, 2])('GET /pods, GET /pods/ID (with streams) and /metrics show every pod with its counters (pod threads: %i)', async (threads) => {
    const h = await setup(['a', 'b'], threads);
    for (const id of ['a', 'b']) expect((await control(h.socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id))).status).toBe(201);
    expect(await echoChecked(t.tmp.socket('p-a'), 50_000)).toBe(true);
    const list = await control(h.socket, 'GET', '/pods');
    expect(list.json.pods.map((p: { id: string }) => p.id)).toEqual(['a', 'b']);
    const a = list.json.pods[0];
    expect(a).toMatchObject({ state: 'serving', clients: 0, streams: 0, connectionsServed: 1 });
    expect(a.bytesIn).toBeGreaterThanOrEqual(50_000);
    expect(a.bytesOut).toBeGreaterThanOrEqual(50_000);
    expect(a.uptimeMs).toBeGreaterThanOrEqual(0);
    expect(a.end).toBeUndefined();

    const held = await import('../helpers/clients.js').then((c) => c.connect(t.tmp.socket('p-b')));
    t.cleanups.push(() => held.destroy());
    held.write('echo\nxyz');
    const detail = await eventually(async () => {
      const r = await control(h.socket, 'GET', '/pods/b');
      return r.json.streamDetail[0]?.bytesOut === 8 ? r.json : undefined;
    });
    expect(detail).toMatchObject({ id: 'b', clients: 1, streams: 1, session: { role: 'client' } });
    expect(detail.streamDetail[0]).toMatchObject({ id: 1, bytesOut: 8 });

    const metrics = await control(h.socket, 'GET', '/metrics');
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.text).toMatch(/^kata_proxy_pod_up\{sandbox="a"\} 1$/m);
    expect(metrics.text).toMatch(/^kata_proxy_pod_streams\{sandbox="b"\} 1$/m);
    expect(metrics.text).toMatch(/^kata_proxy_pods\{state="serving"\} 2$/m);
    expect(metrics.text).toMatch(/^# TYPE kata_proxy_pod_received_bytes_total counter$/m);
    // The host's memory reclaims: none yet, no pod has ended.
    for (const outcome of ['skipped', 'collected', 'trimmed']) expect(metrics.text).toMatch(new RegExp(`^kata_proxy_host_memory_reclaims_total\\{outcome="${outcome}"\\} 0$`, 'm'));
    for (const line of metrics.text.trimEnd().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[a-z]+="[^"]*"\})? [\d.e+]+)$/);
    if (threads === 0) {
      expect(list.json.pods.map((p: { thread?: number }) => p.thread)).toEqual([undefined, undefined]);
      expect(metrics.text).not.toMatch(/kata_proxy_host_thread/);
    } else {
      // One pod per thread (the one with fewest pods gets the next), each thread's work counted.
      expect(list.json.pods.map((p: { thread?: number }) => p.thread)).toEqual([1, 2]);
      expect(metrics.text).toMatch(/^kata_proxy_host_thread_pods\{thread="1"\} 1$/m);
      expect(metrics.text).toMatch(/^kata_proxy_host_thread_pods\{thread="2"\} 1$/m);
      const busy = Number(/^kata_proxy_host_thread_busy_seconds_total\{thread="1"\} ([\d.e+]+)$/m.exec(metrics.text)?.[1]);
      expect(busy).toBeGreaterThan(0);
    }
  });

  it('DELETE stops the pod in order, removes its socket and answers its final state; unknown pods 404', async () => {
    const h = await setup();
    await control(h.socket, 'PUT', '/pods/a?wait=serving', podBody(t.tmp, 'a'));
    const removed = await control(h.socket, 'DELETE', '/pods/a');
    expect(removed.status).toBe(200);
    expect(removed.json).toMatchObject({ id: 'a', state: 'stopped', end: { reason: 'stopped', status: 0 } });
    expect(() => statSync(t.tmp.socket('p-a'))).toThrow();
    expect((await control(h.socket, 'GET', '/pods')).json.pods).toEqual([]);
    for (const [method, path] of [['DELETE', '/pods/a'], ['GET', '/pods/a'], ['GET', '/pods/a/attach?pid=1']]) {
      const r = await control(h.socket, method!, path!);
      expect(r.status).toBe(404);
      expect(r.json).toMatchObject({ code: 'unknown-pod' });
    }
    expect(JSON.parse(readFileSync(h.stateFile, 'utf8')).pods).toEqual([]);
  });

  it('bad requests get a 4xx with {error, code} and change nothing', async () => {
    const h = await setup();
    await control(h.socket, 'PUT', '/pods/a', podBody(t.tmp, 'a'));
    const before = readFileSync(h.stateFile, 'utf8');
    const listBefore = (await control(h.socket, 'GET', '/pods')).json.pods.map((p: { id: string; settings: unknown }) => [p.id, p.settings]);
    const body = podBody(t.tmp, 'b');
    const cases: [string, string, string | object, number, string][] = [
      ['PUT', '/pods/b', '{"listenSocket": ', 400, 'malformed-json'],
      ['PUT', '/pods/b', '[1,2]', 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, bogus: 1 }, 400, 'unknown-field'],
      ['PUT', '/pods/b', { ...body, heartbeat: -1 }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, heartbeat: 3e6 }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, listenMode: '999' }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, logLevel: 'loud' }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, listenSocket: 'tcp://1.2.3.4:5' }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { listenSocket: body.listenSocket }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, muxDevice: '/dev/ttyS1' }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...body, listenSocket: `/${'x'.repeat(120)}` }, 400, 'bad-settings'],
      ['PUT', '/pods/b', { ...podBody(t.tmp, 'a'), muxSocket: body.muxSocket }, 409, 'listen-socket-taken'],
      ['PUT', '/pods/b', 'x'.repeat(70_000), 413, 'body-too-large'],
      ['PUT', '/pods/b?wait=forever', body, 400, 'bad-query'],
      ['PUT', '/pods/b%2Fc', body, 400, 'bad-id'],
      ['PUT', '/pods/-x', body, 400, 'bad-id'],
      ['POST', '/pods/b', body, 405, 'method-not-allowed'],
      ['DELETE', '/pods', '', 405, 'method-not-allowed'],
      ['GET', '/nothing', '', 404, 'not-found'],
      ['GET', '/pods/a/attach?pid=x', '', 400, 'bad-pid'],
      ['GET', '/pods/a/attach?pid=999999999', '', 400, 'bad-pid'],
    ];
    for (const [method, path, data, status, code] of cases) {
      const r = await control(h.socket, method, path, data === '' ? undefined : data);
      expect({ path, data, status: r.status, code: r.json?.code }).toEqual({ path, data, status, code });
      expect(typeof r.json.error).toBe('string');
    }
    expect(readFileSync(h.stateFile, 'utf8')).toBe(before);
    const listAfter = (await control(h.socket, 'GET', '/pods')).json.pods.map((p: { id: string; settings: unknown }) => [p.id, p.settings]);
    expect(listAfter).toEqual(listBefore);
  });

  it('a listen path another process serves is refused with 409 and nothing is added', async () => {
    const h = await setup();
    const other = await import('node:net').then((net) => net.createServer().listen(t.tmp.socket('p-x')));
    t.cleanups.push(() => other.close());
    await new Promise((r) => other.once('listening', r));
    const r = await control(h.socket, 'PUT', '/pods/x', podBody(t.tmp, 'x'));
    expect(r.status).toBe(409);
    expect(r.json.code).toBe('listen-socket-unavailable');
    expect((await control(h.socket, 'GET', '/pods')).json.pods).toEqual([]);
  });

  it('?wait=serving answers 502 with the end when the guest cannot be reached; the pod stays listed as ended; PUT re-creates it', async () => {
    const h = await setup([]);
    const body = podBody(t.tmp, 'late', { retryTimeout: 0.2 });
    const r = await control(h.socket, 'PUT', '/pods/late?wait=serving', body);
    expect(r.status).toBe(502);
    expect(r.json).toMatchObject({ code: 'pod-ended', pod: { id: 'late', state: 'stopped', end: { reason: 'failed', status: 1 } } });
    expect(r.json.pod.end.error).toMatch(/gave up after 200 ms/);
    const listed = (await control(h.socket, 'GET', '/pods/late')).json;
    expect(listed).toMatchObject({ state: 'stopped', end: { reason: 'failed' } });
    expect(() => statSync(t.tmp.socket('p-late'))).toThrow(); // its listen socket is gone
    const guest = new SimulatedGuest({ muxSocket: t.tmp.socket('g-late') });
    await guest.start();
    t.cleanups.push(() => guest.stop());
    const again = await control(h.socket, 'PUT', '/pods/late?wait=serving', body);
    expect(again.status).toBe(201);
    expect(again.json.state).toBe('serving');
    expect(await echoChecked(t.tmp.socket('p-late'), 1000)).toBe(true);
  });

  it('a pod whose guest ends: clients closed, listen socket removed, GET /pods says why', async () => {
    const h = await setup([]);
    const guest = new SimulatedGuest({ muxSocket: t.tmp.socket('g-a') });
    await guest.start();
    await control(h.socket, 'PUT', '/pods/a?wait=serving', podBody(t.tmp, 'a'));
    const { connect } = await import('../helpers/clients.js');
    const client = await connect(t.tmp.socket('p-a'));
    client.on('error', () => {});
    client.resume();
    const closed = new Promise((r) => client.once('end', r)); // allowHalfOpen: the proxy's side ended
    await guest.stop();
    await closed;
    const pod = await eventually(async () => {
      const p = (await control(h.socket, 'GET', '/pods/a')).json;
      return p.state === 'stopped' ? p : undefined;
    });
    expect(pod.end).toMatchObject({ reason: 'guest-ended', status: 3 });
    expect(() => statSync(t.tmp.socket('p-a'))).toThrow();
    await eventually(() => JSON.parse(readFileSync(h.stateFile, 'utf8')).pods[0].end?.reason === 'guest-ended', 5000, 'the end in the state file');
  });

  describe('attach (the per-pod handle of issue 10)', () => {
    it('"attached", then "ended 0 stopped" when the pod is removed; the pid and start time are recorded', async () => {
      const { h, handle, link } = await attachedPod();
      expect(link.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      const head = link.text().split('\r\n\r\n')[0]!;
      expect(head).toMatch(/\r\ncontent-type: text\/plain/i);
      expect(head).toMatch(/\r\nconnection: close/i);
      expect(head).not.toMatch(/content-length|transfer-encoding/i);
      expect(link.text().split('\r\n\r\n')[1]).toBe('attached\n');
      const record = JSON.parse(readFileSync(h.stateFile, 'utf8')).pods[0];
      expect(record.handle.pid).toBe(handle.pid);
      const stat = readFileSync(`/proc/${handle.pid}/stat`, 'utf8');
      expect(record.handle.startTime).toBe(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      expect((await control(h.socket, 'GET', '/pods/a')).json.handle).toEqual({ pid: handle.pid, attached: true });

      const second = await control(h.socket, 'GET', `/pods/a/attach?pid=${handle.pid}`);
      expect(second.status).toBe(409);
      expect(second.json.code).toBe('handle-attached');

      expect((await control(h.socket, 'DELETE', '/pods/a')).status).toBe(200);
      await link.closed;
      expect(link.text().split('\r\n\r\n')[1]).toBe('attached\nended 0 stopped\n');
    });

    it('the guest ends: "ended 3 guest-ended" and the pod is removed with it', async () => {
      const h = await setup([]);
      const guest = new SimulatedGuest({ muxSocket: t.tmp.socket('g-a') });
      await guest.start();
      await control(h.socket, 'PUT', '/pods/a?wait=serving', podBody(t.tmp, 'a'));
      const link = await attachRaw(h.socket, 'a', sleeper().pid!);
      await eventually(() => link.text().endsWith('attached\n'));
      await guest.stop();
      await link.closed;
      expect(link.text()).toMatch(/\r\n\r\nattached\nended 3 guest-ended\n$/);
      await eventually(async () => (await control(h.socket, 'GET', '/pods')).json.pods.length === 0);
    });

    it('the handle goes away: the pod is removed with the orderly stop at once', async () => {
      const h = await setup(['a', 'b']);
      for (const id of ['a', 'b']) await control(h.socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id));
      const link = await attachRaw(h.socket, 'a', sleeper().pid!);
      await eventually(() => link.text().endsWith('attached\n'));
      link.socket.destroy();
      await eventually(async () => (await control(h.socket, 'GET', '/pods')).json.pods.length === 1);
      expect((await control(h.socket, 'GET', '/pods')).json.pods[0].id).toBe('b');
      expect(() => statSync(t.tmp.socket('p-a'))).toThrow();
      expect(await echoChecked(t.tmp.socket('p-b'), 1000)).toBe(true);
    });

    it('a handle named by PUT ?pid= that dies before it attaches takes its pod along', async () => {
      const h = await setup(['a', 'b']);
      const handle = sleeper();
      const put = await control(h.socket, 'PUT', `/pods/a?wait=serving&pid=${handle.pid}`, podBody(t.tmp, 'a'));
      expect(put.status).toBe(201);
      expect(put.json.handle).toEqual({ pid: handle.pid, attached: false });
      await control(h.socket, 'PUT', '/pods/b?wait=serving', podBody(t.tmp, 'b'));
      expect((await control(h.socket, 'PUT', '/pods/c?pid=0', podBody(t.tmp, 'c'))).json.code).toBe('bad-pid');
      handle.kill('SIGKILL');
      await eventually(async () => (await control(h.socket, 'GET', '/pods')).json.pods.length === 1, 5_000, 'pod a removed');
      expect((await control(h.socket, 'GET', '/pods')).json.pods[0].id).toBe('b');
      expect(() => statSync(t.tmp.socket('p-a'))).toThrow();
    });

    it('a handle that goes while its attach waits behind another operation on the pod: the pod is removed, not held by a dead link', async () => {
      const h = await setup();
      const body = podBody(t.tmp, 'a', { drainTimeout: 2 });
      await control(h.socket, 'PUT', '/pods/a?wait=serving', body);
      const { connect } = await import('../helpers/clients.js');
      const client = await connect(t.tmp.socket('p-a'));
      client.on('error', () => {});
      client.write('source 100000000\n'); // unread: the stream cannot finish, the DELETE below waits for it (drain)
      await eventually(async () => (await control(h.socket, 'GET', '/pods/a')).json.streams === 1);
      const pause = () => new Promise((r) => setTimeout(r, 150));
      const removed = control(h.socket, 'DELETE', '/pods/a');
      await pause();
      const added = control(h.socket, 'PUT', '/pods/a', body);
      await pause();
      const link = await attachRaw(h.socket, 'a', sleeper().pid!);
      await pause();
      link.socket.destroy(); // the handle dies while its attach is queued
      expect((await removed).status).toBe(200);
      expect((await added).status).toBe(201);
      await eventually(async () => (await control(h.socket, 'GET', '/pods/a')).status === 404, 5000, 'the pod removed with its handle');
    });
  });

  describe('shutdown and state file failures', () => {
    it('the host shutting down disconnects handles without removing their pods: the state file keeps them', async () => {
      const { h, handle, link } = await attachedPod();
      await h.close(); // as runHost on SIGTERM: the control server, then the host
      await link.closed;
      await new Promise((r) => setTimeout(r, 300)); // time for a removal to be written, were one under way
      expect(h.host.size).toBe(1);
      expect(link.text()).not.toMatch(/ended/);
      const pods = JSON.parse(readFileSync(h.stateFile, 'utf8')).pods;
      expect(pods).toMatchObject([{ id: 'a', handle: { pid: handle.pid } }]);
      expect(pods[0].end).toBeUndefined();
    });

    it('a PUT still starting its pod when the host shuts down is refused (503) and its pod stopped', async () => {
      const h = await setup();
      const put = h.host.put('a', podConfigFromJson(podBody(t.tmp, 'a'))).then(
        () => null,
        (err: unknown) => err,
      );
      await h.close();
      expect(await put).toMatchObject({ status: 503, code: 'shutting-down' });
      expect(existsSync(t.tmp.socket('p-a'))).toBe(false);
    });

    it('a pod restored as ended keeps its handle record: the handle hears the end, or the pod goes when the handle dies', async () => {
      const h = await setup([]);
      const settings = podConfigFromJson(podBody(t.tmp, 'a'));
      const handles = [sleeper(), sleeper()];
      const record = (id: string, pid: number) => ({ id, settings: { ...settings, listenSocket: t.tmp.socket(`p-${id}`) }, handle: { pid, startTime: processStartTime(pid)! }, end: { reason: 'guest-ended' as const, status: 3 as const } });
      await h.host.restore([record('a', handles[0]!.pid!), record('b', handles[1]!.pid!)]);
      expect((await control(h.socket, 'GET', '/pods/a')).json.handle).toEqual({ pid: handles[0]!.pid, attached: false });
      const link = await attachRaw(h.socket, 'a', handles[0]!.pid!);
      await link.closed;
      expect(link.text()).toMatch(/\r\n\r\nattached\nended 3 guest-ended\n$/);
      handles[1]!.kill('SIGKILL');
      await eventually(async () => (await control(h.socket, 'GET', '/pods')).json.pods.length === 0, 5000, 'the pod removed with its dead handle');
    });

    it('an unwritable state file: the host still starts, a PUT answers 500 and adds nothing', async () => {
      const records: string[] = [];
      const loggers = createLoggers({ level: 'info', format: 'json', sink: 'stderr', stderr: { write: (l: string) => records.push(l) } });
      const notADirectory = t.tmp.file('plain');
      writeFileSync(notADirectory, '');
      const host = new Host({ loggers, stateFile: new StateFile(`${notADirectory}/pods.json`) });
      await host.restore([]);
      const socket = t.tmp.socket('host');
      const server = await serveControl(host, { path: socket }, loggers.proxy);
      t.cleanups.push(() => host.close(), () => server.close());
      expect(records.join('')).toMatch(/cannot write the state file/);
      const r = await control(socket, 'PUT', '/pods/a', podBody(t.tmp, 'a'));
      expect(r.status).toBe(500);
      expect(r.json.code).toBe('state-file');
      expect((await control(socket, 'GET', '/pods')).json.pods).toEqual([]);
      expect(existsSync(t.tmp.socket('p-a'))).toBe(false);
    });
  });
});
