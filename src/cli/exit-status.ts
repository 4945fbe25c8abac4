/** The daemon's exit statuses (README "Exit statuses"; the systemd unit relies on them). */
export enum ExitStatus {
  /** Stopped by SIGTERM/SIGINT, or a command that completed. */
  Ok = 0,
  /** Runtime failure: listen socket, unreachable guest channel, internal error. */
  Failure = 1,
  /** Usage error: bad flag or value. */
  Usage = 2,
  /** The guest channel ended (VM gone, EOF, GoAway or protocol error). */
  GuestEnded = 3,
}
