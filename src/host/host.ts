import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { READ_BYTES } from '../channel/console-relay.js';
import type { LogFormat, Loggers, LogLevel } from '../log/logger.js';
import { ListenSocketError, removeStaleSocket } from '../proxy/listener.js';
import { Pod, type PodEnd, type PodOptions } from '../proxy/pod.js';
import { adoptPod, handleFromFd, type Handle, type PodState } from '../proxy/pod-handover.js';
import { sameConfig, type PodConfig } from '../proxy/pod-settings.js';
import { HostError } from './host-error.js';
import { loadHostAddon, type Dup } from './host-addon.js';
import { closeHandle, closeQuietly, fdOf } from './descriptors.js';
import { LocalPod, type HostedCapture, type HostedPod } from './hosted-pod.js';
import { MemoryReclaimer } from './memory-reclaimer.js';
import type { HostStats } from './metrics.js';
import { ReclaimStats, totalReclaims } from './reclaim-stats.js';
import { hostPodOptions, podDefaultsOf, type HostPodDefaults } from './pod-options.js';
import { mayLowerAndRestore } from './threads/busy-priority.js';
import { PodThreads } from './threads/pod-threads.js';
import { ThreadPod } from './threads/thread-pod.js';
import { Rebalancer } from './threads/rebalance.js';
import { podDetailView, podView, type PodDetailView, type PodView } from './pod-view.js';
import { isSameProcess, processStartTime, whenExited } from './process-identity.js';
import type { RemainingPod } from './handover-protocol.js';
import type { HandleRecord, PodRecord, StateFile } from './state-file.js';

/** The per-pod handle's connection (GET /pods/ID/attach): lines out, and a close to notice. */
export interface AttachLink {
  send(line: string): void;
  /** Ends the connection; after "ended ..." or when the host shuts down. */
  close(): void;
  onClose(listener: () => void): void;
  /** The connection's socket, for a reload to hand over. */
  readonly socket?: net.Socket;
  /** A reload handed the connection to the next host: lets go of it without a word. */
  release?(): net.Socket | null;
}

/** One pod as a reload hands it over (src/host/handover.ts). */
export interface HandoverItem {
  id: string;
  config: PodConfig;
  handle?: HandleRecord;
  end?: PodEnd;
  /** The live pod's state and sockets; absent for a pod that already ended. */
  capture?: HostedCapture;
  /** The attached handle's connection. */
  link?: net.Socket;
}

/** 'moved': `pausedMs` from the moment the pod stopped until it was committed. */
export type HandoverResult = { result: 'moved'; pausedMs: number } | { result: 'stayed'; reason: string } | { result: 'gone' };

interface Entry {
  id: string;
  config: PodConfig;
  /** Null for a pod restored from the state file as already ended. */
  pod: HostedPod | null;
  end?: PodEnd;
  handle?: HandleRecord;
  link?: AttachLink;
  /** The record last made of it (recordOf), kept while it holds: the state file keeps its JSON. */
  record?: PodRecord;
}

export interface HostOptions extends HostPodDefaults {
  loggers: Loggers;
  stateFile?: StateFile;
  openSerial?: (path: string, baudRate: number, timeoutMs: number, signal: AbortSignal) => Promise<Duplex>;
  /** How often a pod whose recorded handle has not re-attached checks that the handle still runs. */
  handleCheckMs?: number;
  /** Called after every change of the pod table (for the service's status line). */
  onChange?: (host: Host) => void;
  /**
   * Pod threads: pods whose guest is a socket run on these, spread by count (a tty's pod runs on
   * the main thread). 0 or unset: every pod on the main thread. `log`: how the threads format records.
   * `busyNice`: how much lower a thread's CPU priority is while its loop is busy (0 or unset: never).
   */
  podThreads?: { count: number; log: { level: LogLevel; format: LogFormat }; busyNice?: number };
  /**
   * How often the pod threads' loads are compared, to move a quiet pod off a hot thread; 0 or
   * unset: never (off by default: it helps a bulk pod's neighbours and costs a flooding pod's,
   * BENCHMARKS.md, "Neighbours").
   */
  rebalanceMs?: number;
}

/** How long a moving pod waits for its peers to read what it wrote before it stays where it is. */
const MOVE_FLUSH_MS = 100;

/**
 * Many pods in one process, by id. Operations on one id run one after another; nothing one
 * pod does reaches another. A pod that ends by itself stays listed, ended, until it is removed
 * or PUT again (which re-creates it); a pod with a per-pod handle is removed once the handle
 * has been told how it ended.
 */
export class Host {
  private readonly entries = new Map<string, Entry>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly log: Logger;
  private readonly handleTimer: NodeJS.Timeout;
  private closing = false;
  /** Every pod's console reads land here in turn (each read is consumed before the next). */
  private readonly consoleReadBuffer = Buffer.allocUnsafe(READ_BYTES);
  private readonly reclaimer: MemoryReclaimer;
  /** The main thread's reclaims (its own pods'; each pod thread counts its own). */
  private readonly reclaims: ReclaimStats;
  /** A reload is handing the pods to the next host: changes are refused meanwhile (503). */
  private reloading = false;
  /** After a reload: pods the previous host still runs (they come later); listed and kept in the state file. */
  private remaining = new Map<string, RemainingPod>();
  /** The previous host process, while it runs pods of `remaining`. */
  private previousPid = 0;
  /** Handles named by a PUT here that have not attached yet: their start time is fresh. */
  private readonly justRegistered = new WeakSet<HandleRecord>();
  private readonly threads: PodThreads | null;
  private readonly dup: Dup | null;
  private readonly rebalancer: Rebalancer | null = null;

  constructor(private readonly options: HostOptions) {
    this.log = options.loggers.proxy;
    const addon = loadHostAddon();
    this.dup = addon.dup;
    this.reclaims = new ReclaimStats(this.log);
    this.reclaimer = this.newReclaimer(addon.trim, addon.reason);
    this.threads = this.newThreads();
    if (this.threads && this.threads.count > 1 && (options.rebalanceMs ?? 0) > 0) this.rebalancer = this.newRebalancer(this.threads, options.rebalanceMs!);
    this.handleTimer = setInterval(() => this.dropGoneHandles(), options.handleCheckMs ?? 2000);
    this.handleTimer.unref();
  }

  /** Re-creates the pods of a state file: live ones start again, ended ones stay listed as ended. */
  async restore(records: PodRecord[]): Promise<void> {
    const starting: Promise<unknown>[] = [];
    for (const r of records) {
      if (r.handle && !isSameProcess(r.handle.pid, r.handle.startTime)) {
        this.log.info({ sandbox: r.id, handlePid: r.handle.pid }, 'the handle of this pod is gone; not re-creating it');
        starting.push(removeStaleSocket(r.settings.listenSocket).catch(() => {}));
        continue;
      }
      const handle = r.handle ? { handle: r.handle } : {};
      if (r.end) {
        // Kept for its handle to hear how it ended, or removed with that handle if it dies first.
        this.entries.set(r.id, { id: r.id, config: r.settings, pod: null, end: r.end, ...handle });
        continue;
      }
      const entry: Entry = { id: r.id, config: r.settings, pod: this.newPod(r.id, r.settings), ...handle };
      this.entries.set(r.id, entry);
      starting.push(this.startPod(entry).catch(() => {}));
    }
    await Promise.all(starting);
    // A state file that cannot be written fails each PUT with its reason; the pods run meanwhile.
    await this.save().catch((err: Error) => this.log.error({ err: err.message }, 'cannot write the state file'));
  }

  // ---- reload (src/host/handover.ts) ------------------------------------------------------

  /** While set, PUT, DELETE and attach are refused with 503 "reloading". */
  setReloading(on: boolean): void {
    this.reloading = on;
  }

  get isReloading(): boolean {
    return this.reloading;
  }

  /**
   * The descriptor of every socket of every pod and handle link now (a reload's next host
   * inherits them at its start). Copies, for the sockets of pod threads (one may close its own
   * meanwhile): `done` closes them once the next host has its own.
   */
  async socketFds(): Promise<{ fds: number[]; done: () => void }> {
    const entries = [...this.entries.values()];
    const perPod = await Promise.all(entries.map((e) => e.pod?.socketFds() ?? []));
    const copies: number[] = [];
    const fds = entries.flatMap((e, i) => {
      const own = perPod[i]!;
      const theirs = e.pod && e.pod.thread > 0 && this.dup ? own.map((fd) => this.dup!(fd)).filter((fd) => fd >= 0) : own;
      if (theirs !== own) copies.push(...theirs);
      const link = e.link?.socket ? fdOf(e.link.socket) : -1;
      return link >= 0 ? [...theirs, link] : theirs;
    });
    return { fds, done: () => copies.forEach(closeQuietly) };
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Hands pod `id` to the next host: stops it, takes its state (waiting up to `flushBoundMs`
   * for its writes to reach the kernel), and lets `send` pass it on. Once `send` resolves true
   * the pod is the next host's: this one lets go of it without a frame or a shutdown, and the
   * clients it accepted meanwhile go to `late`. Otherwise the pod carries on here.
   */
  handOver(
    id: string,
    flushBoundMs: number,
    send: (item: HandoverItem) => Promise<boolean>,
    late: (id: string, client: net.Socket) => void,
  ): Promise<HandoverResult> {
    return this.serially(id, async (): Promise<HandoverResult> => {
      const entry = this.entries.get(id);
      if (!entry) return { result: 'gone' };
      let capture: HostedCapture | undefined;
      const stopped = performance.now();
      if (entry.pod && !this.ended(entry)) {
        const c = await entry.pod.capture(flushBoundMs);
        if ('refused' in c) return { result: 'stayed', reason: c.refused };
        capture = c;
      }
      const end = entry.pod?.end ?? entry.end;
      const item: HandoverItem = {
        id,
        config: entry.config,
        ...(entry.handle ? { handle: entry.handle } : {}),
        ...(end && !capture ? { end } : {}),
        ...(capture ? { capture } : {}),
        ...(entry.link?.socket ? { link: entry.link.socket } : {}),
      };
      const ok = await send(item).catch(() => false);
      if (!ok) {
        entry.pod?.resume();
        return { result: 'stayed', reason: 'the next host did not take it' };
      }
      this.entries.delete(id);
      const linkSocket = entry.link?.release?.();
      entry.link = undefined;
      linkSocket?.destroy(); // this process's descriptor only: the handle stays connected
      await entry.pod?.release((c) => late(id, c));
      return { result: 'moved', pausedMs: performance.now() - stopped };
    });
  }

  /**
   * The pods previous host process `pid` still runs (all of them: others it had are gone or
   * here): listed as 'moving' with the reason, and kept in the state file until they come.
   */
  setRemaining(pods: RemainingPod[], pid: number): void {
    const before = [...this.remaining.keys()].join();
    this.remaining = new Map(pods.filter((p) => !this.entries.has(p.record.id)).map((p) => [p.record.id, p]));
    this.previousPid = pid;
    if ([...this.remaining.keys()].join() !== before) void this.save().catch((err: Error) => this.log.error({ err: err.message }, 'cannot write the state file'));
  }

  /** The previous host process went away with pods it had not handed over: they start again here, as after a crash. */
  async previousGone(): Promise<void> {
    const records = [...this.remaining.values()].map((p) => p.record);
    if (records.length === 0) return;
    this.log.error({ pods: records.map((r) => r.id), previousPid: this.previousPid }, 'reload: the previous process went away before handing these pods over; re-creating them');
    // Its channel to us may close before its listen sockets do; listed as moving until then.
    await whenExited(this.previousPid);
    this.remaining = new Map();
    await this.restore(records);
  }

  /** What the successor shows of the pods that stay here, and why each stays (`reasons`, by id). */
  remainingPods(reasons: ReadonlyMap<string, string>): Promise<RemainingPod[]> {
    return Promise.all([...this.entries.values()].map(async (e) => ({ record: this.recordOf(e), view: await this.view(e), reason: reasons.get(e.id) ?? 'not handed over yet' })));
  }

  /**
   * Runs a pod the previous host handed over, on the thread a new pod of its kind would get.
   * `handles`: its sockets, as objects of this thread, or descriptors inherited at start.
   */
  async adoptState(id: string, config: PodConfig, state: PodState, handles: (Handle | number | undefined)[]): Promise<HostedPod> {
    const pod = this.newPod(id, config);
    if (!(pod instanceof ThreadPod)) {
      const objects = handles.map((h, index) => (typeof h === 'number' ? handleFromFd(h, index === state.server) : h));
      try {
        return new LocalPod(adoptPod(this.podOptions(id, config), state, objects));
      } catch (err) {
        for (const h of objects) closeHandle(h);
        throw err;
      }
    }
    // A socket that came in a message is this thread's: the pod thread gets a copy of it.
    const fds = handles.map((h) => {
      if (h === undefined || typeof h === 'number') return h ?? null;
      const copy = this.dup!(fdOf(h));
      closeHandle(h);
      return copy;
    });
    if (fds.some((fd) => fd !== null && fd < 0)) {
      for (const fd of fds) if (fd !== null && fd >= 0) closeQuietly(fd);
      throw new Error(`cannot pass the sockets of pod ${id} to its thread`);
    }
    // The thread closes them if it cannot run the pod.
    await pod.adopt(state, fds);
    return pod;
  }

  /** A pod the previous host handed over (see handOver): listed and watched as if created here. */
  adopt(item: Omit<HandoverItem, 'capture' | 'link'>, pod: HostedPod | null, link?: AttachLink): void {
    const entry: Entry = {
      id: item.id,
      config: item.config,
      pod,
      ...(item.end ? { end: item.end } : {}),
      ...(item.handle ? { handle: item.handle } : {}),
    };
    this.entries.set(item.id, entry);
    // A pod the previous host kept after the reload: the state file and the status count it as here now.
    if (this.remaining.delete(item.id)) void this.save().catch((err: Error) => this.log.error({ err: err.message }, 'cannot write the state file'));
    if (pod) void pod.whenEnded().then((end) => this.podEnded(entry, end));
    if (link) {
      entry.link = link;
      link.onClose(() => this.handleLeft(entry, link));
    }
  }

  /** The options a pod of this host runs with on the main thread. */
  private podOptions(id: string, config: PodConfig): PodOptions {
    return hostPodOptions(this.options.loggers, this.options, this.consoleReadBuffer, id, config, this.options.openSerial);
  }

  /** A client the previous host accepted after handing this pod over. */
  lateClient(id: string, client: net.Socket): void {
    const pod = this.entries.get(id)?.pod;
    if (pod && !pod.end) pod.acceptLate(client);
    else client.destroy();
  }

  /** Writes the state file now (after an adoption). */
  persist(): Promise<void> {
    return this.save();
  }

  /**
   * Moves a pod to another pod thread (`to`, or the one with the fewest pods) as a reload moves
   * it to another process: stopped where it stands, its state and copies of its sockets to the
   * new thread, then the old thread lets go. Its guest and clients notice nothing. 409 when it
   * cannot move now (not on a thread, ended, not serving, a peer not reading).
   */
  move(id: string, to?: number): Promise<PodView> {
    return this.serially(id, async () => {
      const entry = this.entries.get(id);
      if (!entry) this.notMoving(id);
      if (!entry) throw new HostError(404, 'unknown-pod', `no pod ${id}`);
      if (!(entry.pod instanceof ThreadPod) || !this.threads) throw new HostError(409, 'not-on-a-thread', `pod ${id} runs on the main thread (no pod threads, or a tty guest)`);
      if (to !== undefined && to > this.threads.count) throw new HostError(400, 'bad-query', `this host has ${this.threads.count} pod threads`);
      if (this.threads.count < 2) throw new HostError(409, 'one-thread', 'this host has one pod thread: there is nowhere to move to');
      if (this.reloading) throw reloading();
      if (entry.pod.end) throw new HostError(409, 'pod-ended', `pod ${id} has ended`);
      if (to === entry.pod.thread) return this.view(entry);
      if (!(await this.moveNow(entry, to))) throw new HostError(409, 'cannot-move-now', `pod ${id} cannot move now: its guest or a client did not read what it wrote within ${MOVE_FLUSH_MS} ms, or it is not serving; retry`);
      return this.view(entry);
    });
  }

  /** The move itself, under the pod's turn (serially); false when it cannot move now. */
  private async moveNow(entry: Entry, to?: number): Promise<boolean> {
    const id = entry.id;
    const from = entry.pod;
    if (!(from instanceof ThreadPod) || from.end || !this.threads || this.threads.count < 2 || this.reloading || this.closing) return false;
    const started = performance.now();
    // Stopped only as long as its peers take to read what it wrote: a short while, or not now.
    const c = await from.capture(MOVE_FLUSH_MS);
    if ('refused' in c) return false;
    const copies = c.handles.map((h) => this.dup!(h.fd));
    const next = copies.every((fd) => fd >= 0) ? this.threads.pod(id, entry.config, to === undefined ? { except: from.thread } : { thread: to }) : null;
    try {
      if (!next) throw new Error('cannot copy its sockets');
      await next.adopt(c.state, copies); // the thread closes the copies if it cannot run it
    } catch (err) {
      if (!next) for (const fd of copies) if (fd >= 0) closeQuietly(fd);
      next?.forget();
      from.resume();
      this.log.warn({ sandbox: id, err: (err as Error).message }, 'pod not moved to another thread; it carries on where it was');
      return false;
    }
    entry.pod = next;
    void next.whenEnded().then((end) => this.podEnded(entry, end));
    await from.releaseMoved((client) => next.acceptLate(client));
    this.log.info({ sandbox: id, from: from.thread, to: next.thread, pausedMs: Math.round((performance.now() - started) * 10) / 10 }, 'pod moved to another thread');
    return true;
  }

  /** Each pod thread's pods and busy time, and every thread's memory reclaims (GET /metrics). */
  hostStats(): HostStats {
    const threads = this.threads?.stats() ?? [];
    return {
      threads,
      reclaims: totalReclaims([this.reclaims.counts, ...threads.map((t) => t.reclaims)]),
      reclaimsDue: [this.reclaims.due, ...threads.map((t) => t.reclaimDue)].filter(Boolean).length,
    };
  }

  /** Pods listed, live or ended (here, or still in the previous process after a reload). */
  get size(): number {
    return this.entries.size + this.remaining.size;
  }

  /** Pods this process runs. */
  get ownSize(): number {
    return this.entries.size;
  }

  async list(): Promise<PodView[]> {
    const own = await Promise.all([...this.entries.values()].map((e) => this.view(e)));
    return [...own, ...[...this.remaining.values()].map((p) => this.movingView(p))];
  }

  async get(id: string): Promise<PodDetailView | null> {
    const e = this.entries.get(id);
    if (e) return { ...(await podDetailView(e.id, e.config, e.pod, e.end)), ...this.placeFields(e) };
    const moving = this.remaining.get(id);
    return moving ? { ...this.movingView(moving), session: null, streamDetail: [] } : null;
  }

  private movingView(p: RemainingPod): PodView {
    return { ...p.view, state: 'moving', moving: { pid: this.previousPid, reason: p.reason } };
  }

  /** Refuses a change to a pod the previous host process still runs. */
  private notMoving(id: string): void {
    const p = this.remaining.get(id);
    if (p) throw new HostError(409, 'pod-moving', `pod ${id} still runs in the previous host process (pid ${this.previousPid}): ${p.reason}`);
  }

  /** PUT /pods/ID: 201 created, 200 the same settings again, 409 other settings for a live pod. */
  async put(id: string, config: PodConfig, options: { waitServing?: boolean; handlePid?: number } = {}): Promise<{ status: 200 | 201; pod: PodView }> {
    const { status, entry } = await this.serially(id, async () => {
      if (this.closing) throw shuttingDown();
      if (this.reloading) throw reloading();
      this.notMoving(id);
      const handle = options.handlePid !== undefined ? handleOf(options.handlePid) : undefined;
      if (handle) this.justRegistered.add(handle);
      const existing = this.entries.get(id);
      if (existing && !this.ended(existing)) {
        if (!sameConfig(existing.config, config)) {
          throw new HostError(409, 'conflict', `pod ${id} is live with other settings; remove it first`);
        }
        return { status: 200 as const, entry: existing };
      }
      for (const other of this.entries.values()) {
        if (other.id !== id && !this.ended(other) && other.config.listenSocket === config.listenSocket) {
          throw new HostError(409, 'listen-socket-taken', `pod ${other.id} listens on ${config.listenSocket}`);
        }
      }
      const entry: Entry = { id, config, pod: this.newPod(id, config), ...(handle ? { handle } : {}) };
      try {
        await this.startPod(entry);
      } catch (err) {
        const inUse = err instanceof ListenSocketError;
        throw new HostError(inUse ? 409 : 500, inUse ? 'listen-socket-unavailable' : 'listen-failed', (err as Error).message);
      }
      if (this.closing) {
        // close() has stopped the pods it knew of; this one started after: stop it too.
        await entry.pod!.stop('host stopping');
        throw shuttingDown();
      }
      this.entries.set(id, entry);
      try {
        await this.save();
      } catch (err) {
        this.entries.delete(id);
        if (existing) this.entries.set(id, existing);
        await entry.pod!.stop('state file not written');
        throw new HostError(500, 'state-file', `cannot write the state file: ${(err as Error).message}`);
      }
      this.log.info({ sandbox: id }, 'pod added');
      return { status: 201 as const, entry };
    });
    if (options.waitServing && entry.pod) {
      try {
        await entry.pod.whenServing();
      } catch {
        throw new HostError(502, 'pod-ended', `pod ${id} ended before its session was up`, await this.view(entry));
      }
    }
    return { status, pod: await this.view(entry) };
  }

  /**
   * DELETE /pods/ID: the orderly stop of that pod alone; the final view. `cause` goes into its end
   * record; a handle that went away may remove its pod even during a reload.
   */
  remove(id: string, cause = 'removed'): Promise<PodView> {
    return this.serially(id, async () => {
      const entry = this.entries.get(id);
      if (!entry) this.notMoving(id);
      if (!entry) throw new HostError(404, 'unknown-pod', `no pod ${id}`);
      if (this.reloading && cause !== 'handle gone') throw reloading();
      const end = (await entry.pod?.stop(cause)) ?? entry.end;
      const view = await this.view(entry);
      this.entries.delete(id);
      if (end) this.tellHandle(entry, end);
      await this.save().catch((err: Error) => this.log.error({ err: err.message }, 'cannot write the state file'));
      this.log.info({ sandbox: id }, 'pod removed');
      return view;
    });
  }

  /**
   * GET /pods/ID/attach: the per-pod handle's channel. Its pid and start time are recorded; when
   * the pod ends the handle gets "ended STATUS REASON"; when the handle goes, the pod is removed.
   */
  attach(id: string, pid: number, link: AttachLink): Promise<void> {
    return this.serially(id, async () => {
      const entry = this.entries.get(id);
      if (!entry) this.notMoving(id);
      if (!entry) throw new HostError(404, 'unknown-pod', `no pod ${id}`);
      if (this.reloading) throw reloading();
      if (entry.link) throw new HostError(409, 'handle-attached', `pod ${id} already has a handle attached`);
      // The handle that registered the pod is on disk already (the usual case: no second write,
      // and its start time was read a moment ago).
      const known = entry.handle?.pid === pid && this.justRegistered.delete(entry.handle);
      const handle = known ? entry.handle! : handleOf(pid);
      entry.handle = handle;
      entry.link = link;
      link.onClose(() => this.handleLeft(entry, link));
      const end = this.ended(entry) ? (entry.pod?.end ?? entry.end) : null;
      if (end) this.entries.delete(id);
      // Recorded before the handle hears "attached": from then on a host restart knows it.
      if (!known || end) await this.save().catch((err: Error) => this.log.error({ err: err.message }, 'cannot write the state file'));
      link.send('attached\n');
      if (end) this.tellHandle(entry, end);
    });
  }

  /**
   * Shutdown: every pod stops in order; handles are disconnected without "ended" (they reconnect
   * to the next host), and the state file keeps the pods for it.
   */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.handleTimer);
    this.rebalancer?.stop();
    this.reclaimer.stop();
    for (const e of this.entries.values()) e.link?.close();
    await Promise.all([...this.entries.values()].map((e) => e.pod?.stop('host stopping')));
    await this.threads?.close();
    await this.options.stateFile?.idle();
  }

  private newReclaimer(trim: (() => boolean) | null, reason?: string): MemoryReclaimer {
    if (!trim) this.log.info({ reason }, 'the host collects the memory of ended pods but cannot trim its C heap');
    return new MemoryReclaimer({ trim, onDue: () => this.reclaims.markDue(), onReclaimed: (r) => this.reclaims.record(r) });
  }

  private newThreads(): PodThreads | null {
    const wanted = this.options.podThreads;
    if (!wanted || wanted.count <= 0) return null;
    if (!this.dup) {
      this.log.warn({ reason: loadHostAddon().reason }, 'every pod runs on the main thread: pod threads need the host add-on');
      return null;
    }
    // Pod threads create listen sockets without setting the umask (only the main thread may, it is
    // the process's): every file is created owner-only, then given its mode.
    process.umask(process.umask() | 0o077);
    let busyNice = wanted.busyNice ?? 0;
    if (busyNice > 0 && !mayLowerAndRestore()) {
      this.log.info('pod threads keep their CPU priority when busy: raising it back needs root');
      busyNice = 0;
    }
    const setup = { log: wanted.log, defaults: podDefaultsOf(this.options), busyNice };
    return new PodThreads({ count: wanted.count, setup, writer: this.options.loggers.writer, log: this.log, dup: this.dup });
  }

  private newRebalancer(threads: PodThreads, everyMs: number): Rebalancer {
    const onThread = (t: number) => [...this.entries.values()].filter((e) => e.pod instanceof ThreadPod && e.pod.thread === t && !e.pod.end);
    return new Rebalancer(
      {
        utilizations: () => threads.utilizations(),
        podsOn: (t) => onThread(t).map((e) => ({ id: e.id, bytes: () => e.pod!.snapshot().then((s) => s.bytesIn + s.bytesOut) })),
        has: (id) => this.entries.has(id),
        move: (id, to) =>
          this.serially(id, async () => {
            const entry = this.entries.get(id);
            return entry ? this.moveNow(entry, to) : false;
          }),
      },
      everyMs,
      () => this.reloading || this.closing,
    );
  }

  /** A pod of a socket guest goes to a pod thread; a tty's stays here (its module is the main thread's). */
  private newPod(id: string, config: PodConfig): HostedPod {
    if (this.threads && !config.muxDevice) return this.threads.pod(id, config);
    return new LocalPod(new Pod(this.podOptions(id, config)));
  }

  private async startPod(entry: Entry): Promise<void> {
    const pod = entry.pod!;
    void pod.whenEnded().then((end) => this.podEnded(entry, end));
    await pod.start();
  }

  private podEnded(entry: Entry, end: PodEnd): void {
    // A pod thread collects its own ended pods.
    if (entry.pod?.thread === 0) this.reclaimer.podEnded();
    if (this.closing || this.entries.get(entry.id) !== entry) return;
    if (entry.link) {
      this.tellHandle(entry, end);
      this.entries.delete(entry.id);
    }
    this.save().catch((err: Error) => this.log.error({ err: err.message }, 'cannot write the state file'));
  }

  private tellHandle(entry: Entry, end: PodEnd): void {
    const link = entry.link;
    if (!link) return;
    entry.link = undefined;
    link.send(`ended ${end.status} ${end.reason}\n`);
    link.close();
  }

  /** The handle went away (killed, SIGTERM, SIGINT) while its pod lived: remove the pod. */
  private handleLeft(entry: Entry, link: AttachLink): void {
    if (entry.link !== link || this.closing) return;
    entry.link = undefined;
    this.remove(entry.id, 'handle gone').catch(() => {});
  }

  /** Pods restored with a handle that has not re-attached: gone handles take their pod along. */
  private dropGoneHandles(): void {
    for (const e of this.entries.values()) {
      if (e.handle && !e.link && !isSameProcess(e.handle.pid, e.handle.startTime)) {
        this.log.info({ sandbox: e.id, handlePid: e.handle.pid }, 'the handle of this pod is gone; removing the pod');
        e.handle = undefined;
        this.remove(e.id, 'handle gone').catch(() => {});
      }
    }
  }

  private ended(e: Entry): boolean {
    return e.pod === null || e.pod.end !== null;
  }

  private async view(e: Entry): Promise<PodView> {
    return { ...(await podView(e.id, e.config, e.pod, e.end)), ...this.placeFields(e) };
  }

  private placeFields(e: Entry): Pick<PodView, 'handle' | 'thread'> {
    return {
      ...(e.handle ? { handle: { pid: e.handle.pid, attached: e.link !== undefined } } : {}),
      ...(e.pod && e.pod.thread > 0 ? { thread: e.pod.thread } : {}),
    };
  }

  private save(): Promise<void> {
    this.options.onChange?.(this);
    const file = this.options.stateFile;
    if (!file) return Promise.resolve();
    return file.save(() => [...[...this.entries.values()].map((e) => this.recordOf(e)), ...[...this.remaining.values()].map((p) => p.record)]);
  }

  private recordOf(e: Entry): PodRecord {
    const end = e.pod?.end ?? e.end;
    const r = e.record;
    if (r && r.id === e.id && r.settings === e.config && r.handle === e.handle && r.end === end) return r;
    return (e.record = { id: e.id, settings: e.config, ...(e.handle ? { handle: e.handle } : {}), ...(end ? { end } : {}) });
  }

  private serially<T>(id: string, op: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(id) ?? Promise.resolve();
    const result = previous.catch(() => {}).then(op);
    const tail = result.catch(() => {});
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return result;
  }
}

function reloading(): HostError {
  return new HostError(503, 'reloading', 'the host is handing its pods to its next version; retry in a moment');
}

function shuttingDown(): HostError {
  return new HostError(503, 'shutting-down', 'the host is shutting down');
}

/** A handle named by PUT ?pid=: its start time tells it from a later process with the same pid. */
function handleOf(pid: number): HandleRecord {
  const startTime = processStartTime(pid);
  if (startTime === null) throw new HostError(400, 'bad-pid', `no process ${pid}`);
  return { pid, startTime };
}
