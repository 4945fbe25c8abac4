// The guests the end-to-end tests run the daemon against: the built-in simulated guest and the
// hashicorp/yamux Go peer (the library generation the Kata 1.x agent vendors).
import { SimulatedGuest } from '../../src/sim/guest.js';
import { findGoPeer, startGoPeer } from '../helpers/go-peer.js';

export interface RunningGuest {
  /** Ends the guest abruptly, as a VM that goes away. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  /** Errors the guest's yamux reported (a session it tore down, a protocol violation...). */
  errors(): string[];
}

export interface GuestKind {
  name: string;
  available: boolean;
  start(paths: { mux: string; console?: string }): Promise<RunningGuest>;
}

const GO_PEER = await findGoPeer();

export const GUESTS: GuestKind[] = [
  {
    name: 'the simulated guest',
    available: true,
    async start(paths) {
      const guest = new SimulatedGuest({ muxSocket: paths.mux, ...(paths.console ? { consoleSocket: paths.console } : {}) });
      await guest.start();
      return { kill: () => guest.stop(), stop: () => guest.stop(), errors: () => [] };
    },
  },
  {
    name: 'a hashicorp/yamux agent',
    available: GO_PEER !== null,
    async start(paths) {
      const agent = await startGoPeer(GO_PEER!, ['serve', '-listen', paths.mux]);
      return {
        kill: async () => {
          agent.proc.kill('SIGKILL');
          await agent.exited;
        },
        stop: () => agent.stop(),
        errors: () => agent.errorLogs(),
      };
    },
  },
];
