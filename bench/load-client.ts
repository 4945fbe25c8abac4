// The load generator: a child process (forked by run.ts) that runs one job at a time on request
// over IPC, so the client side never shares a CPU thread with the orchestrator or a server.
import type { Job, JobResult, Request, Response } from './protocol.js';
import { churn, neighbours } from './neighbour-load.js';
import { Connector, Holder, connectRequestClose, requestResponse, storm, throughput } from './workloads.js';

const connector = new Connector();
const holder = new Holder();

async function run(job: Job): Promise<JobResult> {
  switch (job.type) {
    case 'throughput':
      return throughput(connector, job.target, job.dir, job.streams, job.bytesPerStream, job.verify);
    case 'rr':
      return requestResponse(connector, job.target, job.count, job.warmup, job.size);
    case 'connect-rr':
      return connectRequestClose(connector, job.target, job.count, job.warmup, job.size);
    case 'neighbours':
      return neighbours(connector, job);
    case 'churn':
      return churn(connector, job.target, job.clients, job.size, job.durationMs);
    case 'storm':
      return storm(connector, job.target, job.clients, job.size);
    case 'hold':
      return holder.hold(connector, job.target, job.count, job.batch);
    case 'release':
      await holder.release();
      return {};
    case 'close-sessions':
      await connector.closeAll();
      return {};
    case 'exit':
      await holder.release();
      await connector.closeAll();
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (msg: Request) => {
  run(msg.job).then(
    (result) => process.send!({ id: msg.id, ok: true, result } satisfies Response),
    (err: Error) => process.send!({ id: msg.id, ok: false, error: err.stack ?? err.message } satisfies Response),
  );
});
process.on('disconnect', () => process.exit(0));
process.send!({ id: 0, ok: true, result: {} } satisfies Response);
