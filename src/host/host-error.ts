/** A request the host refuses: HTTP status, a stable code, and optionally the pod it concerns. */
export class HostError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly pod?: unknown,
    /** More fields of the error body (a usage error's full text). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message);
  }
}
