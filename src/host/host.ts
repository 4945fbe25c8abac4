import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { READ_BYTES } from '../channel/console-relay.js';
import type { Loggers } from '../log/logger.js';
import type { ConnectionRate } from '../proxy/connection-admission.js';
import { ListenSocketError, removeStaleSocket } from '../proxy/listener.js';
import { Pod, type PodEnd, type PodOptions } from '../proxy/pod.js';
import { capturePod, type PodCapture } from '../proxy/pod-handover.js';
import { podSettingsOf, sameConfig, type PodConfig } from '../proxy/pod-settings.js';
import { HostError } from './host-error.js';
import { loadHeapTrim } from './heap-trim.js';
import { MemoryReclaimer } from './memory-reclaimer.js';
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
  capture?: PodCapture;
  /** The attached handle's connection. */
  link?: net.Socket;
}

/** 'moved': `pausedMs` from the moment the pod stopped until it was committed. */
export type HandoverResult = { result: 'moved'; pausedMs: number } | { result: 'stayed'; reason: string } | { result: 'gone' };

interface Entry {
  id: string;
  config: PodConfig;
  /** Null for a pod restored from the state file as already ended. */
  pod: Pod | null;
  end?: PodEnd;
  handle?: HandleRecord;
  link?: AttachLink;
  /** The record last made of it (recordOf), kept while it holds: the state file keeps its JSON. */
  record?: PodRecord;
}

export interface HostOptions {
  loggers: Loggers;
  stateFile?: StateFile;
  openSerial?: (path: string, baudRate: number, timeoutMs: number, signal: AbortSignal) => Promise<Duplex>;
  /** How often a pod whose recorded handle has not re-attached checks that the handle still runs. */
  handleCheckMs?: number;
  /** Called after every change of the pod table (for the service's status line). */
  onChange?: (host: Host) => void;
  /** Each pod's slice of an event-loop turn (PodOptions.turnSliceMs). */
  turnSliceMs?: number;
  /** The console rate every pod is held to (PodOptions.consoleRateCap). */
  consoleRateCap?: { perSecond: number; burst: number };
  /** The rate of new connections every pod is held to (PodOptions.connectionRate). */
  connectionRate?: ConnectionRate;
}

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
  /** A reload is handing the pods to the next host: changes are refused meanwhile (503). */
  private reloading = false;
  /** After a reload: pods the previous host still runs (they come later); listed and kept in the state file. */
  private remaining = new Map<string, RemainingPod>();
  /** The previous host process, while it runs pods of `remaining`. */
  private previousPid = 0;
  /** Handles named by a PUT here that have not attached yet: their start time is fresh. */
  private readonly justRegistered = new WeakSet<HandleRecord>();

  constructor(private readonly options: HostOptions) {
    this.log = options.loggers.proxy;
    this.reclaimer = this.newReclaimer();
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

  /** Every socket of every pod and handle link now (a reload passes them to the next host at its start). */
  sockets(): (net.Socket | net.Server)[] {
    return [...this.entries.values()].flatMap((e) => [...(e.pod?.sockets() ?? []), ...(e.link?.socket ? [e.link.socket] : [])]);
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
      let capture: PodCapture | undefined;
      const stopped = performance.now();
      if (entry.pod && !this.ended(entry)) {
        const c = await capturePod(entry.pod, flushBoundMs);
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
      for (const client of entry.pod?.release((c) => late(id, c)) ?? []) late(id, client);
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
  remainingPods(reasons: ReadonlyMap<string, string>): RemainingPod[] {
    return [...this.entries.values()].map((e) => ({ record: this.recordOf(e), view: this.view(e), reason: reasons.get(e.id) ?? 'not handed over yet' }));
  }

  /** A pod the previous host handed over (see handOver): listed and watched as if created here. */
  adopt(item: Omit<HandoverItem, 'capture' | 'link'>, pod: Pod | null, link?: AttachLink): void {
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

  /** The options a pod of this host runs with (for an adopted pod). */
  podOptions(id: string, config: PodConfig): PodOptions {
    const { proxy, agent, writer } = this.options.loggers;
    // The agent logger is only used by a console relay: no child for pods without one.
    const loggers: Loggers = { proxy: proxy.child({ sandbox: id }), agent: config.agentLogsSocket ? agent.child({ sandbox: id }) : agent, writer };
    if (config.logLevel) {
      loggers.proxy.level = config.logLevel;
      if (config.agentLogsSocket) loggers.agent.level = config.logLevel;
    }
    return {
      settings: podSettingsOf(config),
      loggers,
      logShare: id,
      consoleReadBuffer: this.consoleReadBuffer,
      ...(this.options.turnSliceMs !== undefined ? { turnSliceMs: this.options.turnSliceMs } : {}),
      ...(this.options.consoleRateCap ? { consoleRateCap: this.options.consoleRateCap } : {}),
      ...(this.options.connectionRate ? { connectionRate: this.options.connectionRate } : {}),
      ...(this.options.openSerial ? { openSerial: this.options.openSerial } : {}),
    };
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

  /** Pods listed, live or ended (here, or still in the previous process after a reload). */
  get size(): number {
    return this.entries.size + this.remaining.size;
  }

  /** Pods this process runs. */
  get ownSize(): number {
    return this.entries.size;
  }

  list(): PodView[] {
    return [...[...this.entries.values()].map((e) => this.view(e)), ...[...this.remaining.values()].map((p) => this.movingView(p))];
  }

  get(id: string): PodDetailView | null {
    const e = this.entries.get(id);
    if (e) return { ...podDetailView(e.id, e.config, e.pod, e.end), ...this.handleView(e) };
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
        throw new HostError(502, 'pod-ended', `pod ${id} ended before its session was up`, this.view(entry));
      }
    }
    return { status, pod: this.view(entry) };
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
      const view = this.view(entry);
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
    this.reclaimer.stop();
    for (const e of this.entries.values()) e.link?.close();
    await Promise.all([...this.entries.values()].map((e) => e.pod?.stop('host stopping')));
    await this.options.stateFile?.idle();
  }

  private newReclaimer(): MemoryReclaimer {
    const heap = loadHeapTrim();
    if (!heap.trim) this.log.info({ reason: heap.reason }, 'the host collects the memory of ended pods but cannot trim its C heap');
    const mib = (n: number) => Math.round((n / 1048576) * 100) / 100;
    return new MemoryReclaimer({
      trim: heap.trim,
      onReclaimed: (r) => this.log.debug({ rssBeforeMiB: mib(r.rssBefore), rssAfterMiB: mib(r.rssAfter), trimMs: Math.round(r.trimMs * 10) / 10 }, 'memory of ended pods given back'),
    });
  }

  private newPod(id: string, config: PodConfig): Pod {
    return new Pod(this.podOptions(id, config));
  }

  private async startPod(entry: Entry): Promise<void> {
    const pod = entry.pod!;
    void pod.whenEnded().then((end) => this.podEnded(entry, end));
    await pod.start();
  }

  private podEnded(entry: Entry, end: PodEnd): void {
    this.reclaimer.podEnded();
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

  private view(e: Entry): PodView {
    return { ...podView(e.id, e.config, e.pod, e.end), ...this.handleView(e) };
  }

  private handleView(e: Entry): Pick<PodView, 'handle'> {
    return e.handle ? { handle: { pid: e.handle.pid, attached: e.link !== undefined } } : {};
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
