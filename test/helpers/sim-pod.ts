// A pod's paths in a fresh temp dir, with the simulated guest listening on its mux socket (and
// its console socket, when asked); the guest and the dir are closed after the test through the
// test's cleanups.
import { SimulatedGuest } from '../../src/sim/guest.js';
import { createTempDir, type TempDir } from './tmp.js';

export interface SimPod {
  dir: TempDir;
  paths: { listen: string; mux: string; sandbox: string; console?: string };
  guest: SimulatedGuest;
}

export async function simPod(
  cleanups: (() => unknown)[],
  sandbox: string,
  options: { dirPrefix?: string; startGuest?: boolean; console?: boolean } = {},
): Promise<SimPod> {
  const dir = createTempDir(options.dirPrefix ?? 'kpp');
  cleanups.push(() => dir.cleanup());
  const paths: SimPod['paths'] = { listen: dir.socket('proxy'), mux: dir.socket('kata'), sandbox };
  if (options.console) paths.console = dir.socket('console');
  const guest = new SimulatedGuest({ muxSocket: paths.mux, ...(paths.console ? { consoleSocket: paths.console } : {}) });
  if (options.startGuest !== false) await guest.start();
  cleanups.push(() => guest.stop());
  return { dir, paths, guest };
}
