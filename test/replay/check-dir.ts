/**
 * The replay check over a directory of histories:  npx tsx test/replay/check-dir.ts DIR
 * For a trial recording (bench/record-histories.ts --out DIR) before it replaces test/histories: every history
 * replays and issues its recorded commands with their inputs. One line per history; exit 1 when any fails.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { replayAndCompare } from './check';

async function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: npx tsx test/replay/check-dir.ts DIR');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const results = await replayAndCompare(files.map((f) => ({ workflowId: f, history: historyFromJSON(JSON.parse(readFileSync(path.join(dir, f), 'utf8'))) })));
  let failed = 0;
  for (const r of results.sort((a, b) => a.workflowId.localeCompare(b.workflowId))) {
    const bad = r.error !== undefined || r.mismatch !== undefined;
    failed += bad ? 1 : 0;
    const why = r.error !== undefined ? `non-determinism: ${String(r.error)}` : r.mismatch ? `command ${r.mismatch.index} differs: history ${r.mismatch.history ?? '(none)'} / replay ${r.mismatch.replay ?? '(none)'}` : '';
    process.stdout.write(`${bad ? 'FAIL' : 'ok  '} ${r.workflowId} (${r.compared} commands)${r.tolerated.length ? `, ${r.tolerated.length} listed in KNOWN_UNPATCHED_INPUT_CHANGES` : ''}${why ? `: ${why}` : ''}\n`);
  }
  process.stdout.write(`${results.length - failed} replayed with the same commands, ${failed} failed\n`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(2);
});
