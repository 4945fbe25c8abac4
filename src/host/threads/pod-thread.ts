// A host's pod thread (worker_threads): runs whole pods through the same Pod core as the main
// thread would, on a loop of its own, so that a busy pod delays only the pods of its thread.
// The main thread keeps the pod table, the control socket and the handles (threads/pod-threads.ts).
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { READ_BYTES } from '../../channel/console-relay.js';
import { createLoggers } from '../../log/logger.js';
import { currentOwner } from '../../proxy/containment.js';
import { ListenSocketError } from '../../proxy/listener.js';
import { Pod } from '../../proxy/pod.js';
import { adoptPod, capturePod, handleFromFd, prepareSocket, type Handle } from '../../proxy/pod-handover.js';
import { closeHandle, fdOf, inodeOf } from '../descriptors.js';
import { loadHostAddon } from '../host-addon.js';
import { MemoryReclaimer } from '../memory-reclaimer.js';
import { hostPodOptions } from '../pod-options.js';
import { BusyPriority } from './busy-priority.js';
import { ThreadLogSink } from './thread-log-sink.js';
import type { Call, FromThread, LogRecord, Reply, ThreadEvent, ThreadSetup, ToThread } from './thread-protocol.js';

const port = parentPort!;
const setup = workerData as ThreadSetup;
const addon = loadHostAddon();

// ---- what goes to the main thread: one message per turn ---------------------------------
let replies: Reply[] = [];
let events: ThreadEvent[] = [];
let records: LogRecord[] = [];
let recordBytes = 0;
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(flush);
}

/** An event for the main thread, sent with the next message. */
function emit(event: ThreadEvent): void {
  events.push(event);
  schedule();
}

function flush(): void {
  scheduled = false;
  if (records.length > 0) {
    events.push({ ev: 'log', records, bytes: recordBytes });
    records = [];
    recordBytes = 0;
  }
  if (replies.length === 0 && events.length === 0) return;
  const message: FromThread = { replies, events };
  replies = [];
  events = [];
  port.postMessage(message);
}

const sink = new ThreadLogSink((record, bytes) => {
  records.push(record);
  recordBytes += bytes;
  schedule();
});
const loggers = createLoggers({ level: setup.log.level, format: setup.log.format, sink: 'stderr', to: sink });
const consoleReadBuffer = Buffer.allocUnsafe(READ_BYTES);
const reclaimer = new MemoryReclaimer({
  trim: addon.trim,
  onDue: () => emit({ ev: 'reclaim-due' }),
  onReclaimed: (r) => emit({ ev: 'reclaimed', ...r }),
});
const pods = new Map<string, Pod>();
const priority =
  setup.busyNice > 0
    ? new BusyPriority({
        nice: setup.busyNice,
        changed: (lowered, utilization, error) => {
          emit({ ev: 'priority', lowered, utilization, ...(error ? { error } : {}) });
        },
      })
    : null;
/** The sockets of each pod stopped for a move or reload, until it is released or resumed. */
const captured = new Map<string, Handle[]>();

// An exception no pod's entry point caught ends only the pod whose code raised it; one that
// belongs to no pod ends this thread (the main thread then ends its pods, failed).
const lastResort = (err: unknown): void => {
  const owner = currentOwner();
  if (owner) return owner.fail(err);
  const e = err instanceof Error ? err : new Error(String(err));
  loggers.proxy.fatal({ err: e.message, stack: e.stack, thread: setup.thread }, 'internal error outside any pod; ending this pod thread');
  flush();
  // The record goes before the thread ends; the main thread then ends this thread's pods.
  setImmediate(() => process.exit(1));
};
process.on('uncaughtException', lastResort);
process.on('unhandledRejection', lastResort);

function podOf(id: string): Pod {
  const pod = pods.get(id);
  if (!pod) throw new Error(`no pod ${id} on pod thread ${setup.thread}`);
  return pod;
}

function watch(id: string, pod: Pod): void {
  pods.set(id, pod);
  void pod.whenEnded().then((end) => {
    if (pods.get(id) === pod) pods.delete(id);
    emit({ ev: 'end', id, end, last: pod.snapshot() });
    reclaimer.podEnded();
  });
}

/** A client of a released pod: a copy of its descriptor goes to the main thread, ours closes. */
function passLate(id: string, client: net.Socket): void {
  const fd = fdOf(client);
  if (fd < 0 || !addon.dup) return void client.destroy();
  const copy = addon.dup(fd);
  client.destroy();
  if (copy >= 0) {
    emit({ ev: 'late', id, fd: copy });
  }
}

async function run(call: Call): Promise<unknown> {
  switch (call.op) {
    case 'start': {
      const pod = new Pod({ ...hostPodOptions(loggers, setup.defaults, consoleReadBuffer, call.id, call.config), ...(addon.dup ? { detachListenPath: addon.dup } : {}) });
      watch(call.id, pod);
      await pod.start();
      return null;
    }
    case 'adopt': {
      const handles: (Handle | undefined)[] = call.fds.map((fd, index) => (fd === null ? undefined : handleFromFd(fd, index === call.state.server)));
      try {
        watch(call.id, adoptPod(hostPodOptions(loggers, setup.defaults, consoleReadBuffer, call.id, call.config), call.state, handles));
      } catch (err) {
        for (const h of handles) closeHandle(h);
        throw err;
      }
      return null;
    }
    case 'stop':
      return (pods.get(call.id) ?? null)?.stop(call.cause) ?? null;
    case 'serving':
      await podOf(call.id).whenServing();
      return null;
    // Null for a pod that just ended: its end, with its last counters, is on its way.
    case 'snapshot':
      return pods.get(call.id)?.snapshot() ?? null;
    case 'detail':
      return pods.get(call.id)?.detail() ?? null;
    case 'fds':
      return (pods.get(call.id)?.sockets() ?? []).map(fdOf).filter((fd) => fd >= 0);
    case 'capture': {
      const c = await capturePod(podOf(call.id), call.flushBoundMs);
      if ('refused' in c) return c;
      captured.set(call.id, c.handles);
      return { state: c.state, handles: c.handles.map((h) => ({ fd: fdOf(h), ino: inodeOf(fdOf(h)) })) };
    }
    case 'resume':
      captured.delete(call.id);
      podOf(call.id).resume();
      return null;
    case 'release': {
      const pod = podOf(call.id);
      pods.delete(call.id);
      const handles = captured.get(call.id) ?? [];
      captured.delete(call.id);
      for (const client of pod.release((c) => passLate(call.id, c))) passLate(call.id, client);
      // Its listen socket's path stays: this thread's server was served from a copy (listenDetached, or adopted).
      if (call.close) for (const h of handles) closeHandle(h);
      return null;
    }
    case 'late': {
      const client = prepareSocket(new net.Socket({ fd: call.fd, readable: true, writable: true, allowHalfOpen: true }));
      const pod = pods.get(call.id);
      if (pod) pod.acceptLate(client);
      else client.destroy();
      return null;
    }
    case 'close':
      reclaimer.stop();
      priority?.stop();
      await Promise.all([...pods.values()].map((p) => p.stop('host stopping')));
      await loggers.writer.flush();
      return null;
  }
}

function answer(call: Call): void {
  run(call).then(
    (value) => replies.push({ n: call.n, ok: true, value: value ?? null }),
    (err: Error & { end?: unknown }) =>
      replies.push({
        n: call.n,
        ok: false,
        error: err.message,
        ...(err.end ? { end: err.end as Extract<Reply, { ok: false }>['end'] } : {}),
        ...(err instanceof ListenSocketError ? { code: 'listen-socket-unavailable' } : {}),
      }),
  ).finally(schedule);
}

port.on('message', (m: ToThread) => {
  if (m.logAck) sink.acknowledge(m.logAck);
  for (const call of m.calls) answer(call);
});
