/** Where a stream is in its life (spec.md's SYN, ACK, FIN and RST); a session snapshot carries it. */
export type StreamState = 'syn-sent' | 'syn-received' | 'established' | 'closed' | 'reset';
