import type net from 'node:net';
import type { AttachLink } from './host.js';

/**
 * A per-pod handle's attach channel on a bare socket: lines only (after a reload, whose old host
 * sent the HTTP head, and for a handle that registered with a frame, native-registration.ts).
 * `head` is written before the first line.
 */
export function socketAttachLink(socket: net.Socket, head = ''): AttachLink {
  socket.on('error', () => {});
  socket.resume(); // the handle sends nothing more; its EOF is read and ignored
  let closedByUs = false;
  let pendingHead = head;
  return {
    socket,
    send(line) {
      socket.write(pendingHead ? pendingHead + line : line);
      pendingHead = '';
    },
    close() {
      closedByUs = true;
      socket.end();
    },
    onClose(listener) {
      if (socket.destroyed) queueMicrotask(() => !closedByUs && listener());
      else socket.once('close', () => !closedByUs && listener());
    },
    release() {
      closedByUs = true;
      return socket;
    },
  };
}
