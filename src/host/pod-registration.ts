import type { CommandLineReader, PodRegistry } from './pod-registry.js';
import { HostError } from './host-error.js';
import type { PodView } from './pod-view.js';

/**
 * The pod of a per-pod handle's command line, created as `PUT /pods/ID?pid=N` would: read by the
 * daemon's own option code (`read`), whichever wire brought it (`POST /pods`, or the native
 * handle's frame). A usage error is a 400 "usage" with the daemon's message in `usage`; help,
 * version or a subcommand a 422 "not-a-pod" (the handle runs those itself).
 */
export async function registerCommandLine(
  registry: PodRegistry,
  read: CommandLineReader,
  argv: string[],
  env: Record<string, string>,
  handlePid: number,
): Promise<{ status: 200 | 201; id: string; pod: PodView }> {
  const verdict = read(argv, env);
  if (verdict.kind === 'usage') throw new HostError(400, 'usage', verdict.message.split('\n')[0]!, undefined, { usage: verdict.message });
  if (verdict.kind === 'not-a-pod') throw new HostError(422, 'not-a-pod', 'not a per-pod command line (help, version or a subcommand): run it locally');
  if (!registry.put) throw new HostError(405, 'read-only', 'this control socket is read-only (a per-pod daemon)');
  const { status, pod } = await registry.put(verdict.id, verdict.config, { handlePid });
  return { status, id: verdict.id, pod };
}
