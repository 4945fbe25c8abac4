import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
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
 * The host's pod table on disk, replaced atomically (write a temporary file, fsync, rename) on
 * every change. Saves are serialized; changes made while one is written go out in the next.
 */
export class StateFile {
  private writing: Promise<void> = Promise.resolve();
  private next: Promise<void> | null = null;

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

  /** Writes what `records()` returns when the write starts; resolves once it is on disk. */
  save(records: () => PodRecord[]): Promise<void> {
    this.next ??= this.writing
      .catch(() => {})
      .then(() => {
        this.next = null;
        this.writing = this.write(records());
        return this.writing;
      });
    return this.next;
  }

  /** Resolves once no save is pending or running. */
  async idle(): Promise<void> {
    while (this.next) await this.next.catch(() => {});
    await this.writing.catch(() => {});
  }

  private async write(records: PodRecord[]): Promise<void> {
    // Made once (again should someone remove it): one step less on every pod start and stop.
    if (!existsSync(path.dirname(this.path))) await mkdir(path.dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(`${JSON.stringify({ version: 1, pods: records }, null, 1)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }
}

function isHandle(h: unknown): h is HandleRecord {
  return typeof h === 'object' && h !== null && Number.isInteger((h as HandleRecord).pid) && typeof (h as HandleRecord).startTime === 'string';
}
