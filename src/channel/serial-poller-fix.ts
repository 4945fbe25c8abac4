const UV_READABLE = 1;
const UV_WRITABLE = 2;

interface PollerLike {
  poll(flags?: number): void;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
}

/**
 * Works around two faults of @serialport/bindings-cpp 13's Linux poller, one uv_poll_t shared by
 * reads and writes. Applied to an open port binding's poller; without one (another binding) it
 * does nothing.
 *
 * 1. `poll(flag)` calls uv_poll_start with that flag alone, so a read that starts waiting for
 *    "readable" disarms a write already waiting for "writable". The write then resumes only when
 *    the guest sends something, and a guest waiting for that very write never does: the channel
 *    deadlocks with bytes queued on both sides (seen in one run of three with 16 streams over a
 *    pty pair). Here every poll also arms what is still awaited.
 * 2. The poller calls its JavaScript handler from the uv_poll callback with a plain function
 *    call, not inside a callback scope, so nothing drains the microtask queue afterwards. The
 *    waiting read or write resolves a promise there, and its retry runs only when some unrelated
 *    callback next drains the queue. Node 20 drained it anyway; from Node 26 on it does not, and
 *    a channel whose peer waits for that retry stalls until a timer happens to fire (a request/
 *    response over the tty hung in 2 of 5 runs). Here each event is followed by an immediate,
 *    after which Node drains the queue in this turn of the event loop.
 */
export function fixSerialPoller(binding: object): void {
  const poller = (binding as { poller?: PollerLike }).poller;
  if (!poller || typeof poller.poll !== 'function' || typeof poller.listenerCount !== 'function') return;
  const poll = poller.poll.bind(poller);
  poller.poll = (flags = 0) => {
    const awaited =
      (poller.listenerCount('readable') > 0 ? UV_READABLE : 0) | (poller.listenerCount('writable') > 0 ? UV_WRITABLE : 0);
    poll(flags | awaited);
  };
  const emit = poller.emit.bind(poller);
  let drainScheduled = false;
  const drained = () => {
    drainScheduled = false;
  };
  poller.emit = (event, ...args) => {
    const handled = emit(event, ...args);
    if (handled && !drainScheduled) {
      drainScheduled = true;
      setImmediate(drained);
    }
    return handled;
  };
}
