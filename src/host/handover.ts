// The running host's side of a reload: start the program now installed at our path, hand it
// every pod (sockets as descriptors, state as JSON), one pod at a time with a commit each, then
// make it systemd's main process and step aside.
import { spawn, type ChildProcess } from 'node:child_process';
import { realpathSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import type { SystemdNotifier } from '../systemd/notify.js';
import { HostError } from './host-error.js';
import { loadHostAddon } from './host-addon.js';
import type { Host, HandoverItem } from './host.js';
import { closeQuietly, fdOf, inodeOf } from './descriptors.js';
import type { CapturedHandle } from './hosted-pod.js';
import { FIRST_INHERITED_FD, FORMATS, HANDOVER_ENV, type FromSuccessor, type PodMessage, type ToSuccessor } from './handover-protocol.js';
import type { PodRecord } from './state-file.js';

export interface ReloadOptions {
  host: Host;
  /** The control socket's listening server, passed on last. */
  control: net.Server;
  log: Logger;
  notifier: SystemdNotifier;
  /** How long a pod may take to flush what it wrote before it is retried later. */
  flushBoundMs?: number;
  /** How long the successor may take to start, or to take one pod. */
  stepTimeoutMs?: number;
}

export interface ReloadReport {
  pid: number;
  moved: number;
  /** Pods that could not move (they carry on in this process, which stays until they do). */
  stayed: { id: string; reason: string }[];
  ms: number;
  /** Of `ms`: until the new process had started and accepted the formats, then until the last pod moved. */
  startMs: number;
  podsMs: number;
  /** How long the moved pods were stopped, ms: median, 99th percentile, longest. */
  pausedMs: { p50: number; p99: number; max: number };
}

/** Rounds over the pods that could not move yet (a client or guest not reading). */
const RETRY_ROUNDS = 3;

/**
 * Pods being handed over at once. The new process takes them one after the other, so each one
 * in flight adds to the others' pause; two let this process stop and describe the next pod while
 * the new one adopts the last (at 100 pods × 10 connections the pods moved in 0.24 s instead of
 * 0.35 s, a pod's round trips p99 9–11 ms instead of 8–9; three gained nothing more and 17–20 ms).
 */
const IN_FLIGHT = 2;

/** One reload at a time; the running one is refused a second (409). */
let running: Promise<ReloadReport> | null = null;

export function reload(options: ReloadOptions): Promise<{ report: ReloadReport; successor: Successor }> {
  if (running || options.host.isReloading) throw new HostError(409, 'reload-running', 'a reload is already running');
  const started = Date.now();
  const attempt = run(options, started);
  running = attempt.then((r) => r.report);
  void running.catch(() => {}).finally(() => (running = null));
  return attempt;
}

async function run(options: ReloadOptions, started: number): Promise<{ report: ReloadReport; successor: Successor }> {
  const { host, log, notifier } = options;
  const stepMs = options.stepTimeoutMs ?? 15_000;
  host.setReloading(true);
  notifier.reloading();
  const sockets = await host.socketFds();
  let successor: Successor;
  try {
    successor = Successor.spawn(log, sockets.fds);
  } finally {
    sockets.done();
  }
  log.info({ successorPid: successor.pid, program: successor.program }, 'reload: the new version is starting');
  const moved: PodRecord[] = [];
  try {
    successor.send({ t: 'offer', formats: FORMATS, inherited: successor.inheritedCount });
    const answer = await successor.next(['accept', 'refuse'], stepMs);
    if (answer.t === 'refuse') throw new HostError(422, 'reload-refused', `the new version refused the reload: ${answer.reason}`);
    // A successor that does not say what it inherited gets every socket by message.
    successor.inheritedAs(answer.inodes ?? []);
    const accepted = Date.now();
    let waiting = host.ids();
    const stayed = new Map<string, string>();
    const paused: number[] = [];
    for (let round = 0; round < RETRY_ROUNDS && waiting.length > 0; round++) {
      const again: string[] = [];
      const queue = [...waiting];
      // A few pods in flight at once: each is still stopped, sent and committed alone.
      const worker = async (): Promise<void> => {
        for (let id = queue.shift(); id !== undefined && !successor.dead; id = queue.shift()) {
          const result = await host.handOver(
            id,
            options.flushBoundMs ?? 1000,
            (item) => successor.takePod(item, stepMs).then((ok) => (ok && moved.push(recordOf(item)), ok)),
            (podId, client) => successor.late(podId, client),
          );
          if (result.result === 'stayed') {
            stayed.set(id, result.reason);
            again.push(id);
          } else {
            stayed.delete(id);
            if (result.result === 'moved') paused.push(result.pausedMs);
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      if (successor.dead) throw successor.dead;
      waiting = again;
      if (waiting.length > 0) await new Promise((r) => setTimeout(r, 100));
    }
    const podsDone = Date.now();
    successor.send({ t: 'control' }, options.control);
    // This process still accepts on the control socket until it exits: those go to the new one,
    // unread (a request read here would stay behind in this process's buffer).
    (options.control as net.Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
    options.control.removeAllListeners('connection');
    options.control.on('connection', (socket: net.Socket) => successor.late(null, socket));
    successor.send({ t: 'done', moved: moved.length, remaining: await host.remainingPods(stayed) });
    await successor.next(['serving'], stepMs);
    successor.inheritedClosed();
    notifier.mainPid(successor.pid);
    successor.send({ t: 'main' });
    await successor.next(['ready'], stepMs);
    const report: ReloadReport = {
      pid: successor.pid,
      moved: moved.length,
      stayed: [...stayed].map(([id, reason]) => ({ id, reason })),
      ms: Date.now() - started,
      startMs: accepted - started,
      podsMs: podsDone - accepted,
      pausedMs: spread(paused),
    };
    log.info({ successorPid: report.pid, moved: report.moved, stayed: report.stayed.length, ms: report.ms }, 'reload: the new version serves');
    return { report, successor };
  } catch (err) {
    const why = (err as Error).message;
    successor.kill();
    host.setReloading(false);
    notifier.ready();
    if (moved.length > 0) {
      // Those pods died with the new process: they start again here, as after a crash.
      log.error({ err: why, pods: moved.length }, 'reload: the new version failed after taking pods; re-creating them here');
      await host.restore(moved);
    } else {
      log.error({ err: why }, 'reload failed; this host serves on');
    }
    if (err instanceof HostError) throw err;
    throw new HostError(500, 'reload-failed', `reload failed: ${why}`);
  }
}

function spread(values: number[]): ReloadReport['pausedMs'] {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 10) / 10;
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}

function recordOf(item: HandoverItem): PodRecord {
  return { id: item.id, settings: item.config, ...(item.handle ? { handle: item.handle } : {}), ...(item.end ? { end: item.end } : {}) };
}

/** The new process and its IPC channel. */
export class Successor {
  dead: Error | null = null;
  private readonly inbox: FromSuccessor[] = [];
  private readonly waiters = new Set<() => void>();
  /** Sockets handed over after their pod (accepted late): the last one must be on its way before we exit. */
  private lateInFlight = 0;

  private constructor(
    readonly proc: ChildProcess,
    readonly program: string,
    readonly inheritedCount: number,
  ) {
    proc.on('message', (m: FromSuccessor) => {
      this.inbox.push(m);
      this.wakeAll();
    });
    proc.once('exit', (code, signal) => {
      this.dead = new Error(`the new process exited (${signal ?? `status ${code}`})`);
      this.wakeAll();
    });
    proc.on('error', (err) => {
      this.dead ??= err;
      this.wakeAll();
    });
  }

  /**
   * The sockets it inherited at its start, by inode (a socket's identity while it is open), as the
   * descriptor it has them as; until it closes the ones no pod took.
   */
  private inherited = new Map<number, number>();

  /**
   * The program now installed at our path (a symlink followed again), with our arguments. It
   * inherits the descriptors `fds` at its start: a pod then moves with one message instead of one
   * round trip per socket (the IPC channel passes one descriptor per message).
   */
  static spawn(log: Logger, fds: number[]): Successor {
    const script = realpathSync(process.argv[1]!);
    const env: NodeJS.ProcessEnv = { ...process.env, [HANDOVER_ENV]: '1' };
    // The watchdog belongs to whichever process is main: the new one, once it is.
    delete env.WATCHDOG_PID;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
    // Descriptors as numbers: the child gets copies, and nothing of the sockets here changes.
    const proc = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...fds],
      env,
    });
    proc.on('error', (err) => log.error({ err: err.message }, 'reload: cannot start the new version'));
    return new Successor(proc, script, fds.length);
  }

  /** What the new process found at each descriptor it inherited (it tells, so no socket is mistaken for another). */
  inheritedAs(inodes: number[]): void {
    this.inherited = new Map(inodes.map((ino, i) => [ino, FIRST_INHERITED_FD + i] as const).filter(([ino]) => ino >= 0));
  }

  /** The new process closed the descriptors it did not use: from now on every socket goes by message. */
  inheritedClosed(): void {
    this.inherited = new Map();
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  send(message: ToSuccessor, handle?: net.Socket | net.Server, keepOpen = true): void {
    if (this.dead || !this.proc.connected) throw this.dead ?? new Error('the new process is not connected');
    // keepOpen: this process keeps its descriptor until the pod is committed (or resumed).
    this.proc.send(message, handle as net.Socket, { keepOpen });
  }

  /** Sends one pod; true once the new process runs it (then it is committed). */
  async takePod(item: HandoverItem, timeoutMs: number): Promise<boolean> {
    const handles: CapturedHandle[] = [...(item.capture?.handles ?? [])];
    const pod: PodMessage = {
      id: item.id,
      config: item.config,
      ...(item.handle ? { handle: item.handle } : {}),
      ...(item.end ? { end: item.end } : {}),
      ...(item.capture ? { state: item.capture.state } : {}),
      fds: [],
    };
    if (item.link) pod.link = handles.push({ fd: fdOf(item.link), ino: inodeOf(fdOf(item.link)), object: item.link }) - 1;
    pod.fds = handles.map((h) => this.inherited.get(h.ino) ?? null);
    try {
      handles.forEach((h, index) => {
        if (pod.fds[index] === null) this.sendHandle({ t: 'handle', id: item.id, index }, h);
      });
      this.send({ t: 'pod', pod });
      const answer = await this.next(['took', 'failed'], timeoutMs, item.id);
      return answer.t === 'took';
    } catch (err) {
      // No answer: it must not run the pod later while this process resumes it.
      this.dead ??= err as Error;
      this.kill();
      return false;
    }
  }

  /**
   * A socket accepted since the new process started. A pod thread's goes as a copy, which this
   * thread closes once sent: the thread keeps its own until the pod is committed.
   */
  private sendHandle(message: ToSuccessor, h: CapturedHandle): void {
    if (h.object) return this.send(message, h.object);
    const copy = loadHostAddon().dup?.(h.fd) ?? -1;
    if (copy < 0) throw new Error(`cannot pass descriptor ${h.fd} on (no dup)`);
    let socket: net.Socket;
    try {
      socket = new net.Socket({ fd: copy, readable: false, writable: false });
    } catch (err) {
      closeQuietly(copy);
      throw err;
    }
    this.send(message, socket, false);
  }

  /** A client this process accepted after its pod moved (id null: on the control socket). */
  late(id: string | null, client: net.Socket): void {
    if (this.dead || !this.proc.connected) {
      client.destroy();
      return;
    }
    this.lateInFlight++;
    const message: ToSuccessor = id === null ? { t: 'late-control' } : { t: 'late', id };
    this.proc.send(message, client, { keepOpen: false }, () => this.lateInFlight--);
  }

  /** Resolves once every late client has been passed on. */
  async lateSent(): Promise<void> {
    while (this.lateInFlight > 0) await new Promise((r) => setTimeout(r, 5));
  }

  /** The next message of one of `kinds` (for pod `id`, if given); rejects if the process dies or `timeoutMs` passes. */
  async next<K extends FromSuccessor['t']>(kinds: K[], timeoutMs: number, id?: string): Promise<Extract<FromSuccessor, { t: K }>> {
    const deadline = Date.now() + timeoutMs;
    const wanted = (m: FromSuccessor) => (kinds as string[]).includes(m.t) && (id === undefined || ('id' in m && m.id === id));
    for (;;) {
      const i = this.inbox.findIndex(wanted);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<FromSuccessor, { t: K }>;
      if (this.dead) throw this.dead;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the new process did not answer (${kinds.join('/')}) within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(t);
          this.waiters.delete(wake);
          resolve();
        };
        const t = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}
