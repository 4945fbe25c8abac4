import type { Logger } from 'pino';
import { SystemdNotifier } from './notify.js';
import { takeListenFds } from './socket-activation.js';

/** What the daemon takes from systemd: an activated listen socket and the notifier. */
export async function systemdHooks(log: Logger): Promise<{ listenFd?: number; notifier: SystemdNotifier }> {
  const fds = takeListenFds();
  if (fds.length > 1) log.warn({ count: fds.length }, 'more than one socket passed by systemd; serving the first');
  const notifier = new SystemdNotifier((reason) => log.warn(reason));
  if (fds[0]) log.info({ fd: fds[0].fd, name: fds[0].name }, 'serving the listen socket passed by systemd');
  return { ...(fds[0] ? { listenFd: fds[0].fd } : {}), notifier };
}
