import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PodEnd } from '../proxy/pod.js';
import { parsePodId, podConfigFromJson, type PodConfig } from '../proxy/pod-settings.js';

/** One pod in the state file: its settings, its handle (issue 10) and how it ended, if it did. */
export interface PodRecord {
  id: string;
  settings: PodConfig;
  handle?: HandleRecord;
  end?: PodEnd;
}

/** The per-pod handle process: pid and start time (field 22 of /proc/PID/stat) tell it from a reused pid. */
export interface HandleRecord {
  pid: number;
  startTime: string;
}

/**
 * The host's pod table on disk, replaced atomically (write a temporary file, rename) on every
 * change, one pod per line. Records must not change once saved (a changed pod is a new record).
 * Saves asked for in one event-loop turn share one write, made at the end of that turn with
 * synchronous calls: a pod start through the thread pool cost three times the CPU of the
 * write itself (four round trips). No fsync: the file is there for a restarted host process,
 * which reads the page cache; after a crash of the machine its pods are gone too (and the
 * default place, /run, is a tmpfs).
 */
export class StateFile {
  private pending: { records: () => PodRecord[]; done: Promise<void> } | null = null;
  /**
   * Each record's JSON, by record object: a pod's record is made again only when it changes
   * (Host.recordOf), so a write serializes the pods that changed, not every pod of the host.
   */
  private readonly texts = new WeakMap<PodRecord, string>();

  constructor(readonly path: string) {}

  /**
   * The records, or none when the file does not exist. Throws on a file it cannot read; a pod it
   * cannot take (settings this version refuses) is left out and reported through `onSkip`, so one
   * bad record does not keep every other pod down. The file as it was is kept beside it
   * (`.rejected`) before anything overwrites it.
   */
  async load(onSkip: (index: number, reason: string) => void = () => {}): Promise<PodRecord[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new Error(`state file ${this.path} is not JSON: ${(err as Error).message}`);
    }
    const pods = (doc as { pods?: unknown }).pods;
    if (!Array.isArray(pods)) throw new Error(`state file ${this.path} has no "pods" array`);
    const records: PodRecord[] = [];
    pods.forEach((p: Record<string, unknown>, i) => {
      try {
        records.push({
          id: parsePodId(String(p?.id)),
          settings: podConfigFromJson(p?.settings),
          ...(isHandle(p?.handle) ? { handle: p.handle } : {}),
          ...(p?.end ? { end: p.end as PodEnd } : {}),
        });
      } catch (err) {
        onSkip(i, (err as Error).message);
      }
    });
    if (records.length < pods.length) await writeFile(`${this.path}.rejected`, text, { mode: 0o600 });
    return records;
  }

  /** Writes what `records()` returns at the end of this turn; resolves once it is written. */
  save(records: () => PodRecord[]): Promise<void> {
    if (this.pending) {
      this.pending.records = records;
      return this.pending.done;
    }
    const done = new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        const latest = this.pending!.records;
        this.pending = null;
        try {
          this.write(latest());
          resolve();
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    this.pending = { records, done };
    return done;
  }

  /** Resolves once no save is pending. */
  async idle(): Promise<void> {
    await this.pending?.done.catch(() => {});
  }

  private write(records: PodRecord[]): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    // One pod per line.
    const lines = records.map((r) => {
      let t = this.texts.get(r);
      if (t === undefined) this.texts.set(r, (t = JSON.stringify(r)));
      return t;
    });
    const text = `{"version":1,"pods":[${lines.length > 0 ? `\n${lines.join(',\n')}\n` : ''}]}\n`;
    try {
      try {
        writeFileSync(tmp, text, { mode: 0o600 });
      } catch (err) {
        // The directory is made when missing (again should someone remove it), not looked for every time.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        mkdirSync(path.dirname(this.path), { recursive: true, mode: 0o700 });
        writeFileSync(tmp, text, { mode: 0o600 });
      }
      renameSync(tmp, this.path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }
}

function isHandle(h: unknown): h is HandleRecord {
  return typeof h === 'object' && h !== null && Number.isInteger((h as HandleRecord).pid) && typeof (h as HandleRecord).startTime === 'string';
}
