/**
 * Replay: committed histories of real runs of each runbook (completed, crashed-and-resumed, refused, dry run) must replay
 * against the current workflow code. A non-deterministic change fails here, before it can break running
 * workflows. Re-record with `npx tsx bench/record-histories.ts` only for intended, patched changes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../worker/worker';

const DIR = path.join(__dirname, '..', 'histories');

describe('replay of committed histories', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

  it('has the histories it promises', () => {
    const required = [
      'switchover-redis-completed', 'switchover-redis-crashed-resumed', 'switchover-redis-dry-run', 'switchover-redis-refused',
      'switchover-redis-approved', 'switchover-redis-aborted',
      'rolling-restart-redis-completed', 'rolling-restart-redis-crashed-resumed', 'failover-redis-completed',
      'switchover-mysql-completed', 'switchover-mysql-crashed-resumed', 'switchover-mysql-dry-run', 'switchover-mysql-refused',
      'rolling-restart-mysql-completed', 'backup-redis-completed', 'backup-redis-crashed-resumed',
      'switchover-dolt-completed', 'switchover-dolt-crashed-resumed', 'switchover-dolt-dry-run', 'switchover-dolt-refused', 'failover-dolt-completed',
    ];
    expect(files).toEqual(expect.arrayContaining(required.map((f) => `${f}.json`)));
  });

  it('replays every history without non-determinism', async () => {
    const histories = files.map((f) => ({ workflowId: f, history: historyFromJSON(JSON.parse(readFileSync(path.join(DIR, f), 'utf8'))) }));
    const results: { id: string; error?: unknown }[] = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH }, histories)) results.push({ id: r.workflowId, error: r.error });
    expect(results).toHaveLength(files.length);
    for (const r of results) expect(r.error, `${r.id}: ${String(r.error)}`).toBeUndefined();
  }, 120_000);
});
