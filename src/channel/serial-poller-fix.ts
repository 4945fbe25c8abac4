import type { SerialPort } from 'serialport';

const UV_READABLE = 1;
const UV_WRITABLE = 2;

interface PollerLike {
  poll(flags?: number): void;
  listenerCount(event: string): number;
}

/**
 * Works around a fault of @serialport/bindings-cpp 13's Linux poller, one uv_poll_t shared by
 * reads and writes: `poll(flag)` calls uv_poll_start with that flag alone, so a read that starts
 * waiting for "readable" disarms a write already waiting for "writable". The write then resumes
 * only when the guest sends something, and a guest waiting for that very write never does: the
 * channel deadlocks with bytes queued on both sides (seen in one run of three with 16 streams
 * over a pty pair). Here every poll also arms what is still awaited.
 *
 * Applied to the open port's own poller; without one (another binding) it does nothing.
 */
export function fixSerialPoller(port: SerialPort): void {
  const poller = (port.port as { poller?: PollerLike } | undefined)?.poller;
  if (!poller || typeof poller.poll !== 'function' || typeof poller.listenerCount !== 'function') return;
  const poll = poller.poll.bind(poller);
  poller.poll = (flags = 0) => {
    const awaited =
      (poller.listenerCount('readable') > 0 ? UV_READABLE : 0) | (poller.listenerCount('writable') > 0 ? UV_WRITABLE : 0);
    poll(flags | awaited);
  };
}
