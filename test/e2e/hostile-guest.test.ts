// The real daemon against a raw-frame guest that misbehaves: the journal gets a bounded number
// of lines, and the daemon ends with status 3 saying why.
import { describe, expect, it } from 'vitest';
import { connect } from '../helpers/clients.js';
import { spawnDaemon, runtimeArgv } from '../helpers/daemon.js';
import { F, T, dataFrame, encodeFrame, listenRaw, windowUpdate } from '../helpers/frames.js';
import { perTest } from '../helpers/per-test.js';

const per = perTest('kpg');
const { cleanups } = per;

async function daemonWithRawGuest() {
  const paths = { listen: per.tmp.socket('proxy'), mux: per.tmp.socket('kata'), sandbox: 'hostile' };
  const raw = await listenRaw(paths.mux);
  cleanups.push(() => raw.close());
  const daemon = spawnDaemon(runtimeArgv(paths)); // at -log debug
  cleanups.push(() => daemon.stop());
  const guest = await raw.next();
  await daemon.waitForLine((l) => l.includes('yamux session up'));
  return { paths, daemon, guest };
}

describe('a hostile guest and the real daemon (-log debug)', () => {
  it('5,000 frames for unknown streams, then 33,000 SYNs: a handful of lines, status 3 naming the cause', async () => {
    const { daemon, guest } = await daemonWithRawGuest();
    const before = daemon.lines.length;
    guest.send(...Array.from({ length: 5000 }, (_, i) => dataFrame(1001 + 2 * i, 'x')));
    guest.send(encodeFrame(T.Ping, F.SYN, 0, 42));
    await guest.waitFor((f) => f.type === T.Ping && f.length === 42);
    await new Promise((r) => setTimeout(r, 200));
    const discarded = daemon.lines.slice(before);
    expect(discarded).toHaveLength(5);
    expect(discarded.every((l) => l.includes('msg="frame for unknown stream discarded"'))).toBe(true);

    guest.send(...Array.from({ length: 33_000 }, (_, i) => windowUpdate(2 + 2 * i, F.SYN)));
    expect((await daemon.exited).code).toBe(3);
    const after = daemon.lines.slice(before + 5);
    expect(after.length).toBeLessThan(15);
    expect(after.filter((l) => l.includes('msg="inbound stream refused"'))).toHaveLength(6);
    expect(after.some((l) => l.includes('msg="frame for unknown stream discarded"') && l.includes('suppressed=4995'))).toBe(true);
    expect(after.some((l) => l.includes('peer opened 65 streams on a session that accepts none'))).toBe(true);
  });

  it("after the guest's GoAway: the open stream finishes, new clients are counted, then status 3", async () => {
    const { paths, daemon, guest } = await daemonWithRawGuest();
    const first = await connect(paths.listen);
    first.on('error', () => {});
    cleanups.push(() => first.destroy());
    const syn = await guest.waitFor((f) => (f.flags & F.SYN) !== 0);
    guest.send(windowUpdate(syn.streamId, F.ACK));
    guest.send(encodeFrame(T.GoAway, 0, 0, 0));
    await daemon.waitForLine((l) => l.includes('guest sent GoAway; new clients are refused'));
    for (let i = 0; i < 3; i++) {
      const late = await connect(paths.listen);
      await new Promise((r) => late.on('error', r).on('end', r).resume());
      late.destroy();
    }
    first.end();
    await guest.waitFor((f) => f.streamId === syn.streamId && (f.flags & F.FIN) !== 0);
    expect(daemon.proc.exitCode).toBe(null);
    guest.send(windowUpdate(syn.streamId, F.FIN));
    expect((await daemon.exited).code).toBe(3);
    const why = daemon.lines.find((l) => l.includes('msg="guest sent GoAway; all streams finished"'));
    expect(why).toMatch(/clientsRefused=3/);
    expect(daemon.lines.filter((l) => l.includes('client refused: guest sent GoAway'))).toHaveLength(3);
  });
});
