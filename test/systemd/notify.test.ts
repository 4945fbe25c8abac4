// sd_notify from the real daemon to a notify socket the test binds itself.
import { describe, expect, it } from 'vitest';
import { echoChecked } from '../helpers/clients.js';
import { runtimeArgv, spawnDaemon } from '../helpers/daemon.js';
import { NotifyReceiver } from '../helpers/notify-receiver.js';
import { createTempDir } from '../helpers/tmp.js';
import { control } from '../host/helpers.js';
import { perTest } from '../helpers/per-test.js';
import { simPod } from '../helpers/sim-pod.js';

const { cleanups } = perTest();

async function setup(address: (dir: ReturnType<typeof createTempDir>) => string, env: NodeJS.ProcessEnv = {}) {
  const dir = createTempDir('kpn');
  cleanups.push(() => dir.cleanup());
  const receiver = new NotifyReceiver(address(dir));
  cleanups.push(() => receiver.close());
  await receiver.ready();
  const { paths, guest } = await simPod(cleanups, 'notify', { startGuest: false });
  const daemon = spawnDaemon(runtimeArgv(paths), { NOTIFY_SOCKET: receiver.address, ...env });
  cleanups.push(() => daemon.stop());
  return { paths, receiver, guest, daemon };
}

describe('sd_notify', () => {
  it('STATUS while waiting, READY=1 only once the guest session is up, serving status, STOPPING=1', async () => {
    const { paths, receiver, guest, daemon } = await setup((dir) => dir.socket('notify'));
    await receiver.waitFor((m) => m === 'STATUS=waiting for guest');
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.messages).not.toContain('READY=1');
    await guest.start();
    await receiver.waitFor((m) => m === 'READY=1');
    expect(await echoChecked(paths.listen, 1000)).toBe(true);
    await receiver.waitFor((m) => /^STATUS=serving \d+ streams$/.test(m));
    expect(await daemon.stop()).toBe(0);
    await receiver.waitFor((m) => m === 'STOPPING=1');
    const order = ['STATUS=waiting for guest', 'READY=1', 'STOPPING=1'].map((m) => receiver.messages.indexOf(m));
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('works with an abstract notify socket and pings the watchdog at half its interval', async () => {
    const name = `@kp-notify-${process.pid}-${Date.now()}`;
    const { receiver, guest } = await setup(() => name, { WATCHDOG_USEC: '200000' });
    await guest.start();
    await receiver.waitFor((m) => m === 'READY=1');
    await new Promise((r) => setTimeout(r, 700));
    expect(receiver.messages.filter((m) => m === 'WATCHDOG=1').length).toBeGreaterThanOrEqual(4);
  });

  it('the host: READY=1 once its control socket serves, STATUS follows the pod table, STOPPING=1', async () => {
    const dir = createTempDir('kpnh');
    cleanups.push(() => dir.cleanup());
    const receiver = new NotifyReceiver(dir.socket('notify'));
    cleanups.push(() => receiver.close());
    await receiver.ready();
    const { paths } = await simPod(cleanups, 'hosted');
    const controlSocket = dir.socket('host');
    const host = spawnDaemon(['host', '-control-socket', controlSocket, '-state-file', dir.file('pods.json')], { NOTIFY_SOCKET: receiver.address });
    cleanups.push(() => host.stop());
    await receiver.waitFor((m) => m === 'READY=1');
    await receiver.waitFor((m) => m === 'STATUS=0 pods');
    const added = await control(controlSocket, 'PUT', '/pods/hosted?wait=serving', { listenSocket: `unix://${paths.listen}`, muxSocket: paths.mux });
    expect(added.status).toBe(201);
    await receiver.waitFor((m) => m === 'STATUS=1 pod');
    expect((await control(controlSocket, 'DELETE', '/pods/hosted')).status).toBe(200);
    await receiver.waitFor((m) => m === 'STATUS=0 pods' && receiver.messages.lastIndexOf(m) > receiver.messages.indexOf('STATUS=1 pod'));
    expect(await host.stop()).toBe(0);
    await receiver.waitFor((m) => m === 'STOPPING=1');
  });

  it('without NOTIFY_SOCKET nothing is sent and the daemon runs as usual', async () => {
    const { paths } = await simPod(cleanups, 'plain');
    const daemon = spawnDaemon(runtimeArgv(paths), { NOTIFY_SOCKET: '' });
    cleanups.push(() => daemon.stop());
    await daemon.waitForListen(paths.listen);
    expect(await echoChecked(paths.listen, 100)).toBe(true);
    expect(daemon.lines.filter((l) => /level=(warning|error)/.test(l))).toEqual([]);
  });
});
