import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';

/** What an error thrown in a pod's code is handed to: the pod, which ends itself. */
export interface FaultOwner {
  fail(err: unknown): void;
}

const owners = new AsyncLocalStorage<FaultOwner>();

/**
 * The owner of the code running now, for a process-level last resort: the listeners, timers and
 * promises a pod's events started carry their pod along (AsyncLocalStorage).
 */
export function currentOwner(): FaultOwner | undefined {
  return owners.getStore();
}

export function runAs<T>(owner: FaultOwner, fn: () => T): T {
  return owners.run(owner, fn);
}

/**
 * Every event `emitter` emits from now on runs its listeners as `owner`, and an exception a
 * listener throws ends the owner instead of reaching the process. Sockets, servers and channels
 * are where all of a pod's work starts, so wrapping their emit() contains the pod.
 */
export function containEmitter(emitter: EventEmitter, owner: FaultOwner): void {
  const emit = emitter.emit;
  emitter.emit = function (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    return owners.run(owner, guardedEmit, owner, emit, this, event, args);
  };
}

function guardedEmit(
  owner: FaultOwner,
  emit: EventEmitter['emit'],
  target: EventEmitter,
  event: string | symbol,
  args: unknown[],
): boolean {
  try {
    return emit.call(target, event, ...args);
  } catch (err) {
    owner.fail(err);
    return false;
  }
}
