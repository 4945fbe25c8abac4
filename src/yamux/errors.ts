import { GoAwayCode } from './constants.js';

/** Base of every error the engine produces; `code` is stable for callers to switch on. */
export class YamuxError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The peer broke the protocol; the session sends GoAway(protocol error) and ends. */
export class ProtocolError extends YamuxError {
  constructor(message: string) {
    super(`yamux protocol error: ${message}`, 'ERR_YAMUX_PROTOCOL');
  }
}

/** The stream was reset (RST) by the peer or locally: not a clean end. */
export class StreamResetError extends YamuxError {
  constructor(message = 'stream reset') {
    // No stack: a reset is the peer's doing, where the decoder stood says nothing, and a guest
    // resetting every stream made capturing and formatting stacks a tenth of the host's CPU.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message, 'ERR_YAMUX_STREAM_RESET');
    Error.stackTraceLimit = limit;
  }
}

/** The session ended (locally or because the connection was lost) while the stream was live. */
export class SessionClosedError extends YamuxError {
  constructor(message = 'session closed') {
    super(message, 'ERR_YAMUX_SESSION_CLOSED');
  }
}

/** The connection ended without GoAway: live streams are truncated, not cleanly ended. */
export class ConnectionLostError extends YamuxError {
  constructor(message = 'connection to peer lost') {
    super(message, 'ERR_YAMUX_CONNECTION_LOST');
  }
}

/** open() after either side sent GoAway. */
export class GoAwayError extends YamuxError {
  constructor(
    message: string,
    readonly goAwayCode: GoAwayCode = GoAwayCode.Normal,
  ) {
    super(message, 'ERR_YAMUX_GOAWAY');
  }
}

/** A ping, stream open or stream close did not complete in time. */
export class TimeoutError extends YamuxError {
  constructor(message: string) {
    super(message, 'ERR_YAMUX_TIMEOUT');
  }
}

/** The link did not accept our frames within connectionWriteTimeout. */
export class WriteTimeoutError extends YamuxError {
  constructor(message = 'connection write timeout') {
    super(message, 'ERR_YAMUX_WRITE_TIMEOUT');
  }
}
