import type net from 'node:net';
import type { Stream } from '../yamux/index.js';

export interface BridgeEnd {
  /** Which side ended the pair first, for the debug log. */
  closedBy: 'client' | 'guest' | 'both';
  error?: Error;
}

/**
 * Ties one client connection to one yamux stream: bytes flow both ways with back-pressure
 * (pipe pauses the faster side), half-close is forwarded both ways (client EOF -> FIN, FIN ->
 * client shutdown(SHUT_WR)), and an error or reset on either side destroys the other. Resolves
 * once both are closed, so neither can outlive the other.
 */
export function bridge(client: net.Socket, stream: Stream, onEnd: (end: BridgeEnd) => void): Bridge {
  let firstError: Error | undefined;
  let closedFirst: 'client' | 'guest' | null = null;
  let open = 2;

  const closed = (side: 'client' | 'guest') => {
    closedFirst ??= side;
    if (--open === 0) onEnd({ closedBy: closedFirst ?? 'both', ...(firstError ? { error: firstError } : {}) });
  };

  client.on('error', (err) => {
    firstError ??= err;
    stream.destroy(); // RST: the guest must not mistake an aborted request for a complete one
  });
  stream.on('error', (err) => {
    firstError ??= err;
    // Unread data makes the kernel reset the client; otherwise it sees EOF early.
    client.destroy();
  });
  client.once('close', () => {
    // The client went away without a clean end (e.g. killed mid-transfer): reset the stream.
    if (!client.readableEnded || !client.writableFinished) stream.destroy();
    closed('client');
  });
  stream.once('close', () => {
    if (!stream.readableEnded || !stream.writableFinished) client.destroy();
    closed('guest');
  });

  client.pipe(stream);
  stream.pipe(client);
  client.resume();
  return {
    finishRequests() {
      // Shutdown: take nothing more from the client, send FIN, let the guest's answer through.
      client.unpipe(stream);
      client.pause();
      stream.end();
    },
  };
}

export interface Bridge {
  finishRequests(): void;
}
