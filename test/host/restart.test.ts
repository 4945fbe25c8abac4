// The host killed with SIGKILL and started again on the same state file: every pod listens at the
// same path and serves again over a new yamux session (hashicorp/yamux serves the reconnecting
// host as the Kata agent does); handles that died meanwhile take their pods with them.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { echoChecked } from '../helpers/clients.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { findGoPeer, startGoPeer } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { attachRaw, control, eventually, guestFarm, podBody } from './helpers.js';

const GO_PEER = await findGoPeer();
const t = perTest('kpr');

describe.skipIf(!GO_PEER)('host restart', () => {
  it('kill -9, start again: pods re-created from the state file serve at the same paths', async () => {
    const socket = t.tmp.socket('host');
    const argv = ['host', '-control-socket', socket, '-state-file', t.tmp.file('pods.json'), '-log', 'info'];
    const start = async (): Promise<Daemon> => {
      const d = spawnDaemon(argv);
      t.cleanups.push(() => d.stop());
      await eventually(() => control(socket, 'GET', '/pods').then((r) => r.status === 200, () => false), 15_000, 'the host');
      return d;
    };
    const simIds = Array.from({ length: 8 }, (_, i) => `sim-${i}`);
    const farm = await guestFarm([...simIds, 'live-handle', 'dead-handle'].map((id) => t.tmp.socket(`g-${id}`)));
    t.cleanups.push(() => farm.stop());
    const go = await startGoPeer(GO_PEER!, ['serve', '-listen', t.tmp.socket('g-go')]);
    t.cleanups.push(() => go.stop());
    const handles = ['live-handle', 'dead-handle'].map(() => spawn('sleep', ['60'], { stdio: 'ignore' }));
    t.cleanups.push(() => handles.forEach((h) => h.kill('SIGKILL')));

    let host = await start();
    const all = ['go', ...simIds, 'live-handle', 'dead-handle'];
    for (const id of all) expect((await control(socket, 'PUT', `/pods/${id}?wait=serving`, podBody(t.tmp, id))).status).toBe(201);
    const links = await Promise.all(['live-handle', 'dead-handle'].map((id, i) => attachRaw(socket, id, handles[i]!.pid!)));
    await eventually(() => links.every((l) => l.text().endsWith('attached\n')));
    expect(await echoChecked(t.tmp.socket('p-go'), 300_000)).toBe(true);
    const stateBefore = JSON.parse(readFileSync(t.tmp.file('pods.json'), 'utf8'));
    expect(stateBefore.pods).toHaveLength(all.length);

    host.proc.kill('SIGKILL');
    await host.exited;
    await Promise.all(links.map((l) => l.closed)); // the handles' connections end without an "ended" line
    for (const l of links) expect(l.text()).not.toMatch(/ended/);
    handles[1]!.kill('SIGKILL');
    await new Promise((r) => handles[1]!.once('exit', r));

    host = await start();
    const survivors = all.filter((id) => id !== 'dead-handle');
    const pods = await eventually(async () => {
      const list = (await control(socket, 'GET', '/pods')).json.pods as { id: string; state: string }[];
      return list.every((p) => p.state === 'serving') ? list : undefined;
    });
    expect(pods.map((p) => p.id).sort()).toEqual([...survivors].sort());
    expect(existsSync(t.tmp.socket('p-dead-handle'))).toBe(false);
    expect((await control(socket, 'GET', '/pods/dead-handle')).status).toBe(404);
    for (const id of survivors) expect(await echoChecked(t.tmp.socket(`p-${id}`), 100_000)).toBe(true);
    await go.waitForSessions(2); // a second server session for the reconnected host
    expect(go.errorLogs()).toEqual([]);

    // The live handle's pod waits for it; it re-attaches as bin/kata-proxy-hosted does.
    expect((await control(socket, 'GET', '/pods/live-handle')).json.handle).toEqual({ pid: handles[0]!.pid, attached: false });
    const again = await attachRaw(socket, 'live-handle', handles[0]!.pid!);
    t.cleanups.push(() => again.socket.destroy());
    await eventually(() => again.text().endsWith('attached\n'));
    expect((await control(socket, 'GET', '/pods/live-handle')).json.handle.attached).toBe(true);
    expect(JSON.parse(readFileSync(t.tmp.file('pods.json'), 'utf8')).pods.map((p: { settings: unknown }) => p.settings)).toEqual(
      stateBefore.pods.filter((p: { id: string }) => p.id !== 'dead-handle').map((p: { settings: unknown }) => p.settings),
    );
  });

  it('a pod the state file holds but this version refuses is skipped and kept aside; the others come back', async () => {
    const socket = t.tmp.socket('host');
    const stateFile = t.tmp.file('pods.json');
    const farm = await guestFarm([t.tmp.socket('g-good')]);
    t.cleanups.push(() => farm.stop());
    const bad = { id: 'bad', settings: { ...podBody(t.tmp, 'bad'), heartbeat: 'often' } };
    const text = JSON.stringify({ version: 1, pods: [bad, { id: 'good', settings: podBody(t.tmp, 'good') }] });
    writeFileSync(stateFile, text);
    const host = spawnDaemon(['host', '-control-socket', socket, '-state-file', stateFile, '-log', 'info']);
    t.cleanups.push(() => host.stop());
    const pods = await eventually(async () => {
      const r = await control(socket, 'GET', '/pods').catch(() => null);
      const list = r?.json?.pods as { id: string; state: string }[] | undefined;
      return list?.every((p) => p.state === 'serving') ? list : undefined;
    }, 15_000, 'the good pod serving');
    expect(pods.map((p) => p.id)).toEqual(['good']);
    expect(await echoChecked(t.tmp.socket('p-good'), 10_000)).toBe(true);
    expect(readFileSync(`${stateFile}.rejected`, 'utf8')).toBe(text);
    await host.waitForLine((l) => l.includes('a pod of the state file cannot be re-created; skipped') && l.includes('heartbeat'));
  });
});
