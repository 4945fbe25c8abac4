// A tty guest channel that another process can take over: its input queue belongs to the device,
// not to the descriptor, so the next process opens the same device and reads on, provided this
// one has stopped reading with no read under way and has written everything it queued.
import { readSync } from 'node:fs';
import type { Duplex } from 'node:stream';

/** The part of @serialport/bindings-cpp's port binding used here. */
export interface PortBinding {
  fd: number | null;
  readonly isOpen: boolean;
  poller: { once(event: 'readable', listener: (err: Error | null) => void): unknown };
  read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number; buffer: Buffer }>;
}

class Gate {
  open = true;
  private waiters: (() => void)[] = [];

  passed(): Promise<void> | null {
    return this.open ? null : new Promise((r) => this.waiters.push(r));
  }

  reopen(): void {
    this.open = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

const gates = new WeakMap<object, Gate>();

function gateOf(port: Duplex): Gate | undefined {
  const binding = (port as { port?: object }).port;
  return binding ? gates.get(binding) : undefined;
}

/**
 * Replaces the binding's read (a read in libuv's thread pool, which cannot be called back once
 * started) by a non-blocking read on this thread: a read is then either done or not begun, and
 * while the gate is shut none begins.
 */
export function gateReads<B extends PortBinding>(binding: B): B {
  const gate = new Gate();
  gates.set(binding, gate);
  binding.read = async (buffer, offset, length) => {
    for (;;) {
      const wait = gate.passed();
      if (wait) await wait;
      if (!binding.isOpen || binding.fd === null) throw Object.assign(new Error('Port is not open'), { canceled: true });
      let bytesRead = 0;
      try {
        bytesRead = readSync(binding.fd, buffer, offset, length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw Object.assign(err as Error, { disconnect: true });
      }
      if (bytesRead > 0) return { bytesRead, buffer };
      await new Promise<void>((resolve, reject) => binding.poller.once('readable', (err) => (err ? reject(err) : resolve())));
    }
  };
  return binding;
}

/** Whether `channel` is a tty whose reads can be stopped (opened by serial.ts). */
export function isGatedSerial(channel: Duplex): boolean {
  return gateOf(channel) !== undefined;
}

/**
 * Stops reading the tty: no read begins from now on, and what was read already stays in the
 * stream's buffer (paused). A read that completed just before is pushed by the next turn of the
 * event loop (its promise chain): wait one before taking the stream's unread bytes.
 */
export function stopSerialReading(port: Duplex): void {
  const gate = gateOf(port);
  if (!gate) return;
  gate.open = false;
  port.pause();
}

/** Undoes stopSerialReading (the handover did not happen). */
export function resumeSerialReading(port: Duplex): void {
  const gate = gateOf(port);
  if (!gate || gate.open) return;
  gate.reopen();
  port.resume();
}
