import { readdirSync, readFileSync } from 'node:fs';

/**
 * A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null when
 * there is no such process. With the pid it names one process even across pid reuse.
 */
export function processStartTime(pid: number): string | null {
  return statFields(pid)?.[22 - 3] ?? null;
}

/** A process's state (field 3 of /proc/PID/stat: R, S, D, Z...), or null when there is no such process. */
export function processState(pid: number): string | null {
  return statFields(pid)?.[0] ?? null;
}

/** Fields 3 on of /proc/PID/stat, or null when there is no such process. */
function statFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may hold spaces or ')': count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** A zombie (exited, not reaped yet) or being reaped. */
const isDead = (state: string | undefined): boolean => state === 'Z' || state === 'X';

/**
 * Resolves once process `pid` has let go of its descriptors, or after `timeoutMs`. A process that
 * dies closes its descriptors one after the other, and they are shared by all of its threads: its
 * main thread may be a zombie already while another thread still holds them, and a listen
 * socket of it still accepts then (test/host/process-identity.test.ts). So: gone, or a zombie
 * whose other threads are gone too.
 */
export async function whenExited(pid: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!hasLetGo(pid) && Date.now() <= deadline) await new Promise((r) => setTimeout(r, 10));
}

function hasLetGo(pid: number): boolean {
  const state = processState(pid);
  if (state === null) return true;
  if (!isDead(state)) return false;
  try {
    return readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

/**
 * The process recorded earlier still runs (same pid, same start time, not a zombie: a handle
 * whose parent has not reaped it yet is dead all the same).
 */
export function isSameProcess(pid: number, startTime: string): boolean {
  const fields = statFields(pid);
  return fields !== null && fields[22 - 3] === startTime && !isDead(fields[0]);
}
