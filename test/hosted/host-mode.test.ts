// Host mode end to end: one `kata-proxy host`, 20 pods started as the Kata runtime starts its
// proxy (bin/kata-proxy-hosted with the runtime's argv, setsid, stdio on /dev/null), real
// hashicorp/yamux guests, checksummed traffic. A handle stopped, a guest killed, the host killed
// with SIGKILL and started again: only what should go goes.
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/host/control-client.js';
import { echoChecked } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { findGoPeer, startGoPeer, type GoPeer } from '../helpers/go-peer.js';
import { createTempDir } from '../helpers/tmp.js';
import { HANDLE_KINDS, spawnHandle, type Handle } from './handles.js';

const GO_PEER = await findGoPeer();
const NATIVE = HANDLE_KINDS.find((k) => k.name === 'native handle')!;
const PODS = 20;

interface Pod {
  id: string;
  listen: string;
  guest: GoPeer;
  handle: Handle;
}

describe.skipIf(!GO_PEER || !NATIVE.available)('host mode with per-pod handles, as the Kata runtime runs it', () => {
  const dir = createTempDir('kphm');
  const control = dir.socket('host');
  const hostArgv = ['host', '-control-socket', control, '-state-file', dir.file('pods.json'), '-log', 'warn'];
  let host: Daemon;
  const pods: Pod[] = [];

  const api = (method: string, path: string) => controlRequest(control, method, path, undefined, 5000);
  async function startHost(): Promise<Daemon> {
    const d = spawnDaemon(hostArgv);
    for (;;) {
      if (d.proc.exitCode !== null) throw new Error(`host exited:\n${d.lines.join('\n')}`);
      if (await api('GET', '/pods').then((r) => r.status === 200, () => false)) return d;
      await sleep(20);
    }
  }
  /** Polls `check` until it holds; after `timeoutMs`, fails with what `describe` says. */
  async function until(check: () => Promise<boolean>, describe: () => Promise<string>, timeoutMs = 10_000): Promise<void> {
    for (const deadline = Date.now() + timeoutMs; !(await check()); await sleep(20)) {
      if (Date.now() > deadline) throw new Error(`${await describe()}\n--- host log\n${host.lines.slice(-30).join('\n')}`);
    }
  }
  const show = async (p: Pod) => `${p.id}: ${JSON.stringify(await api('GET', `/pods/${p.id}`))}, listen socket ${existsSync(p.listen) ? 'exists' : 'gone'}`;
  async function podGone(p: Pod): Promise<void> {
    const gone = async () => {
      const r = await api('GET', `/pods/${p.id}`);
      return (r.status === 404 || (r.body as { state?: string }).state === 'stopped') && !existsSync(p.listen);
    };
    await until(gone, () => show(p));
  }
  /** One checked echo round; false when it fails or takes over 5 s (then `stuck` names the pod). */
  const stuck: string[] = [];
  let phase = 'up';
  async function echo(p: Pod, size = 64 * 1024): Promise<boolean> {
    const began = phase;
    let timer!: NodeJS.Timeout;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => (stuck.push(`${p.id} (began ${began})`), r(false)), 5000)));
    const ok = await Promise.race([echoChecked(p.listen, size).catch(() => false), late]);
    clearTimeout(timer);
    return ok;
  }
  /** Checked echo rounds on every pod given until `stop` resolves; counts the bad ones. */
  function traffic(on: Pod[], stop: Promise<unknown>): Promise<{ ok: number; bad: number }> {
    let done = false;
    void stop.then(() => (done = true));
    const counts = { ok: 0, bad: 0 };
    return Promise.all(
      on.map(async (p) => {
        while (!done) {
          if (await echo(p)) counts.ok++;
          else (counts.bad++, await sleep(20));
        }
      }),
    ).then(() => counts);
  }
  const alive = () => pods.filter((p) => p.handle.alive);

  beforeAll(async () => {
    host = await startHost();
    for (let i = 0; i < PODS; i++) {
      const id = `pod-${i}`;
      const paths = { listen: dir.socket(`proxy${i}`), mux: dir.socket(`kata${i}`), sandbox: id };
      const guest = await startGoPeer(GO_PEER!, ['serve', '-listen', paths.mux]);
      pods.push({ id, listen: paths.listen, guest, handle: spawnHandle(NATIVE, runtimeArgv(paths), { KATA_PROXY_CONTROL_SOCKET: control }) });
    }
  });

  afterAll(async () => {
    await Promise.all(pods.map((p) => p.handle.kill()));
    await host?.stop();
    await Promise.all(pods.map((p) => p.guest.stop()));
    dir.cleanup();
  });

  it('20 pods serve checksummed traffic through one host', async () => {
    for (const p of pods) await p.handle.untilServing(p.listen);
    const ok = await Promise.all(pods.map((p) => echoChecked(p.listen, 300_000)));
    expect(ok.every(Boolean)).toBe(true);
    const list = (await api('GET', '/pods')).body as { pods: { id: string; state: string }[] };
    expect(list.pods.filter((p) => p.state === 'serving')).toHaveLength(PODS);
    expect(alive()).toHaveLength(PODS);
  });

  it('SIGTERM to one handle removes only its pod; the other 19 keep serving', async () => {
    const [victim, ...others] = pods as [Pod, ...Pod[]];
    let gone!: () => void;
    const load = traffic(others, new Promise<void>((r) => (gone = r)));
    await sleep(200);
    victim.handle.proc.kill('SIGTERM');
    const { code, signal } = await victim.handle.exited;
    expect(code === 0 || signal === 'SIGTERM').toBe(true);
    await podGone(victim);
    await sleep(200);
    gone();
    const counts = await load;
    expect(counts.bad).toBe(0);
    expect(counts.ok).toBeGreaterThan(others.length);
    expect(alive()).toHaveLength(PODS - 1);
  });

  it('a guest killed: only its handle exits, with status 3', async () => {
    const victim = pods[1]!;
    victim.guest.proc.kill('SIGKILL');
    expect(await victim.handle.exited).toMatchObject({ code: 3, signal: null });
    const others = alive();
    expect(others).toHaveLength(PODS - 2);
    expect((await Promise.all(others.map((p) => echoChecked(p.listen, 100_000)))).every(Boolean)).toBe(true);
  });

  it('the host killed with SIGKILL mid-traffic and started again: every handle lives, every pod serves again', async () => {
    const survivors = alive();
    let stopLoad!: () => void;
    const load = traffic(survivors, new Promise<void>((r) => (stopLoad = r)));
    await sleep(300);
    host.proc.kill('SIGKILL');
    phase = 'killed';
    await host.exited;
    // A handle that dies while the host is down: its pod is removed when the host is back.
    const orphan = survivors[0]!;
    orphan.handle.proc.kill('SIGKILL');
    await orphan.handle.exited;
    await sleep(300);
    expect(survivors.slice(1).every((p) => p.handle.alive)).toBe(true);

    const t0 = Date.now();
    phase = 'restarting';
    host = await startHost();
    phase = 'restarted';
    const rest = survivors.slice(1);
    await Promise.all(
      rest.map(async (p) => {
        while (!(await echo(p))) await sleep(20);
      }),
    );
    const backMs = Date.now() - t0;
    stopLoad();
    await load;
    // A round that hangs is a client accepted and then never served.
    expect(stuck, 'echo rounds that hung').toEqual([]);
    console.log(`[hosted] host restarted: all ${rest.length} pods serving new connections ${backMs} ms after the restart began`);
    await podGone(orphan);
    expect(rest.every((p) => p.handle.alive)).toBe(true);
    expect((await Promise.all(rest.map((p) => echoChecked(p.listen, 300_000)))).every(Boolean)).toBe(true);

    // Each handle is linked to its pod again (by itself, within its 1 s backoff): stopping one
    // still removes exactly its pod.
    for (const p of rest) {
      const attached = async () => ((await api('GET', `/pods/${p.id}`)).body as { handle?: { attached: boolean } }).handle?.attached === true;
      await until(attached, () => show(p));
    }
    const next = rest[0]!;
    next.handle.proc.kill('SIGTERM');
    await next.handle.exited;
    await podGone(next);
    expect(rest.slice(1).every((p) => p.handle.alive)).toBe(true);
  });
});
