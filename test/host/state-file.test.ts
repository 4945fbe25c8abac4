// The host's state file: one pod per line, each record's JSON made once per record object (a
// changed pod is a new record), read back as it was written.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { podConfigFromJson } from '../../src/proxy/pod-settings.js';
import { StateFile, type PodRecord } from '../../src/host/state-file.js';
import { createTempDir } from '../helpers/tmp.js';

const dir = createTempDir('kpsf');
afterAll(() => dir.cleanup());

const record = (i: number): PodRecord => ({
  id: `pod-${i}`,
  settings: podConfigFromJson({ listenSocket: `/run/vc/sbs/pod-${i}/proxy.sock`, muxSocket: `/run/vc/vm/pod-${i}/kata.sock` }),
  handle: { pid: 1000 + i, startTime: String(5000 + i) },
});

describe('StateFile', () => {
  it('writes one pod per line and reads the records back; a changed pod (a new record) is written as it is now', async () => {
    const file = new StateFile(dir.file('pods.json'));
    const records = [record(1), record(2), record(3)];
    await file.save(() => records);
    const text = readFileSync(file.path, 'utf8');
    expect(text.split('\n')).toHaveLength(6); // the head, three pods, the tail, the final newline
    expect(JSON.parse(text)).toEqual({ version: 1, pods: records });
    expect(await file.load()).toEqual(records);

    const ended: PodRecord = { ...records[1]!, end: { reason: 'guest-ended', status: 3 } };
    await file.save(() => [records[0]!, ended, records[2]!]);
    expect(await file.load()).toEqual([records[0], ended, records[2]]);
    await file.save(() => []);
    expect(JSON.parse(readFileSync(file.path, 'utf8'))).toEqual({ version: 1, pods: [] });
    expect(await file.load()).toEqual([]);
  });
});
