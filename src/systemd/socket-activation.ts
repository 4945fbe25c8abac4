/** The first fd systemd passes (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;

export interface InheritedFd {
  fd: number;
  name?: string;
}

/**
 * The sockets systemd passed by socket activation (sd_listen_fds(3) semantics): only when
 * LISTEN_PID is this process. The variables are removed so that children do not inherit them.
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env): InheritedFd[] {
  const count = Number(env.LISTEN_FDS);
  const pid = Number(env.LISTEN_PID);
  const names = env.LISTEN_FDNAMES?.split(':') ?? [];
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (!Number.isInteger(count) || count <= 0 || pid !== process.pid) return [];
  return Array.from({ length: count }, (_, i) => ({
    fd: LISTEN_FDS_START + i,
    ...(names[i] ? { name: names[i] } : {}),
  }));
}
