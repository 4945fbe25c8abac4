/**
 * Shares out the event loop between readers of one owner (in the proxy: one pod's guest channel,
 * client connections and console): each piece of read work is charged, and once the owner has
 * used its slice of the current loop turn its readers stop until the next turn. Many owners in
 * one process (host mode) then take turns instead of one of them running for as long as its
 * sockets have bytes.
 */
export interface ReadPacer {
  /** Charges the work done since `startedAt` (performance.now()); false once this turn's slice is used. */
  charge(startedAt: number): boolean;
  /** Calls `resume` when the next slice starts. */
  later(resume: () => void): void;
}
