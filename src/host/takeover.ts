// The new host's side of a reload (see handover.ts): check that it reads the running host's
// formats, adopt each pod as it comes, take the control socket, and become the main process.
import net from 'node:net';
import type { Logger } from 'pino';
import { stopReading } from '../channel/socket-handover.js';
import { handleFromFd, prepareSocket, type Handle } from '../proxy/pod-handover.js';
import type { Host } from './host.js';
import { FIRST_INHERITED_FD, refusalOf, type FromSuccessor, type ToSuccessor } from './handover-protocol.js';
import { socketAttachLink } from './socket-attach-link.js';
import { closeHandle, closeQuietly, inodeOf } from './descriptors.js';

export interface Takeover {
  /** The control socket's listening server, passed last. */
  control: net.Server;
  moved: number;
  /** Tells the old host we serve; resolves once it made us systemd's main process. */
  serving(): Promise<void>;
  /** After READY=1: the old host may go. */
  ready(): void;
}

/**
 * Runs the successor's half of the protocol until the old host is done handing pods over.
 * Rejects if the old host goes away before that (this process then exits: it is not main).
 */
export function takeOver(host: Host, log: Logger): Promise<Takeover> {
  const send = (m: FromSuccessor): void => {
    process.send?.(m);
  };
  const handles = new Map<string, (Handle | number | undefined)[]>();
  let control: net.Server | null = null;
  let mainResolve: (() => void) | null = null;
  const main = new Promise<void>((r) => (mainResolve = r));
  /** Descriptors inherited at start (FIRST_INHERITED_FD on), and those a pod took. */
  let inherited = 0;
  const used = new Set<number>();
  return new Promise((resolve, reject) => {
    const onDisconnect = () => reject(new Error('the running host went away during the reload'));
    process.once('disconnect', onDisconnect);
    // One message after the other: a pod's adoption (on a pod thread) takes a while, and its late
    // clients must not overtake it. A socket that came along stops reading at once, though: Node
    // started reading it on arrival (nothing came in yet: this runs in the same tick). Until the
    // pod is ours, every byte must stay in the kernel for the running host.
    let queue = Promise.resolve();
    process.on('message', (m: ToSuccessor, handle?: Handle) => {
      if (handle instanceof net.Socket && (m.t === 'handle' || m.t === 'late')) stopReading(handle);
      queue = queue.then(() => onMessage(m, handle));
    });
    const onMessage = async (m: ToSuccessor, handle?: Handle): Promise<void> => {
      switch (m.t) {
        case 'offer': {
          const refusal = refusalOf(m.formats);
          if (refusal) {
            log.error({ err: refusal }, 'reload refused');
            send({ t: 'refuse', reason: refusal });
            process.exitCode = 1;
            process.disconnect();
            return;
          }
          inherited = m.inherited;
          send({ t: 'accept', inodes: Array.from({ length: inherited }, (_, i) => inodeOf(FIRST_INHERITED_FD + i)) });
          return;
        }
        case 'handle': {
          const list = handles.get(m.id) ?? [];
          if (handle) list[m.index] = handle;
          handles.set(m.id, list);
          return;
        }
        case 'pod': {
          const list = handles.get(m.pod.id) ?? [];
          handles.delete(m.pod.id);
          const { state, link, ...item } = m.pod;
          m.pod.fds.forEach((fd, index) => {
            if (fd === null) return;
            used.add(fd);
            list[index] = fd;
          });
          // The handle's link stays on this thread, whichever thread runs the pod.
          let linkSocket: net.Socket | undefined;
          if (link !== undefined) {
            const l = list[link];
            linkSocket = (typeof l === 'number' ? handleFromFd(l, false) : l) as net.Socket | undefined;
            list[link] = undefined;
          }
          try {
            // adoptState closes every socket of the pod if it fails.
            const pod = state ? await host.adoptState(item.id, item.config, state, list) : null;
            host.adopt(item, pod, linkSocket instanceof net.Socket ? socketAttachLink(prepareSocket(linkSocket)) : undefined);
            send({ t: 'took', id: m.pod.id });
          } catch (err) {
            log.error({ sandbox: m.pod.id, err: (err as Error).message }, 'reload: cannot take this pod; it stays with the running host');
            linkSocket?.destroy();
            if (!state) for (const h of list) closeHandle(h);
            send({ t: 'failed', id: m.pod.id, reason: (err as Error).message });
          }
          return;
        }
        case 'late':
          if (handle instanceof net.Socket) host.lateClient(m.id, prepareSocket(handle));
          return;
        case 'late-control':
          if (handle instanceof net.Socket) {
            if (control) control.emit('connection', handle);
            else handle.destroy();
          }
          return;
        case 'control':
          if (handle instanceof net.Server) control = handle;
          return;
        case 'done':
          process.off('disconnect', onDisconnect);
          // Sockets of pods that did not move (or closed meanwhile): not ours.
          for (let fd = FIRST_INHERITED_FD; fd < FIRST_INHERITED_FD + inherited; fd++) {
            if (!used.has(fd)) closeQuietly(fd);
          }
          if (!control) return reject(new Error('the control socket did not arrive'));
          host.setRemaining(m.remaining, process.ppid);
          // The old host exits once every pod moved; gone earlier, it leaves its pods to us.
          process.once('disconnect', () => {
            // Sockets of a pod whose own message never came (its sender died between the two):
            // held here, they would keep its listen socket busy for the pod re-created below.
            for (const list of handles.values()) for (const h of list) closeHandle(h);
            handles.clear();
            void host.previousGone();
          });
          resolve({
            control,
            moved: m.moved,
            serving: async () => {
              send({ t: 'serving' });
              await main;
            },
            ready: () => {
              send({ t: 'ready' });
              // The old host exits: its end of the channel goes; ours must not keep us alive.
              process.channel?.unref();
            },
          });
          return;
        case 'remaining':
          host.setRemaining(m.pods, process.ppid);
          return;
        case 'main':
          mainResolve?.();
          return;
      }
    };
  });
}
