/**
 * Point-in-time recovery under chaos:  npm run chaos -- pitr [--json]
 *
 * A MariaDB lab (three nodes) with the binlog archiver running in real worker processes while one sequential
 * writer inserts rows (each acknowledged with its GTID and its server timestamp): a backup, a switchover, a
 * failover (the primary SIGKILLed once the replicas have what it acknowledged; the failover run promotes one),
 * and the archiver's worker killed twice: once inside a segment (failpoint `inside:archiveBinlogs.segment`:
 * the segment's data stored, its manifest not) and once at an arbitrary moment (SIGKILL from outside). Then
 * restores into scratch servers to GTID targets spread over the run and to time targets, each compared with
 * the acknowledged rows: exact when every acknowledged row up to the target is there and none after it.
 * The archive's segments must chain (each continues exactly where the previous ended: no gap, no duplicate).
 * Last stdout line: {"targets","exact","lostTransactions","extraTransactions",...}.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { listSegments } from '../../activities/backup/archive';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { LocalDirStorage } from '../../activities/backup/storage';
import { runBackupArchive, runBackupRestore, runBackupRun } from '../../client/commands/backup';
import { runFailover } from '../../client/commands/failover';
import { runSwitchover } from '../../client/commands/switchover';
import { parseGtidPos, posCovers } from '../../core/backup/binlog';
import { APP_SCHEMA } from '../../sandbox/mariadb';
import { sleep } from '../../sandbox/ports';
import { spawnWorker, startMysqlLab, type MysqlLab, type WorkerProcess } from '../lab';
import { addBackupBlock } from './backup';
import { quietIO } from './common';

export interface PitrChaosSummary {
  targets: number;
  exact: number;
  lostTransactions: number;
  extraTransactions: number;
  acked: number;
  gtidTargets: number;
  timeTargets: number;
  segments: number;
  /** Segments that do not continue where the previous one ended (a gap or a duplicate). */
  chainBreaks: number;
  archiverKills: number;
  primaries: string[];
  failures: string[];
  ms: number;
}

interface Ack {
  id: number;
  gtid: string;
  ts: number;
}

export async function runPitrChaos(log: (m: string) => void): Promise<PitrChaosSummary> {
  const t0 = Date.now();
  const lab: MysqlLab = await startMysqlLab({ cluster: 'chaos-pitr-maria', inventory: { routingHook: 'echo {primary} {host}:{port}' } });
  const cluster = lab.fleet.cluster;
  const failures: string[] = [];
  const scratch: string[] = [];
  const workers: WorkerProcess[] = [];
  const o = { cluster, inventory: lab.inventory, address: lab.address, taskQueue: lab.taskQueue };
  const io = quietIO(log);
  const acks: Ack[] = [];
  let archiverKills = 0;
  try {
    addBackupBlock(lab);
    const nodes = lab.fleet.nodes;
    await lab.fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await lab.fleet.sql(0, `CREATE TABLE ${APP_SCHEMA}.pitr (id INT PRIMARY KEY, ts DATETIME NOT NULL) ENGINE=InnoDB`);
    await lab.fleet.waitForReplication(0);

    // The first worker dies inside its third segment (data stored, manifest not); the next one carries on.
    const first = spawnWorker(lab, 'inside:archiveBinlogs.segment#3', log);
    workers.push(first);
    const st = await runBackupArchive({ ...o, action: 'start', runMs: 15_000, segmentMs: 300 }, io);
    if (st.exitCode !== 0) throw new Error(`archive start exited ${st.exitCode}`);

    // One sequential writer on whichever node is writable; paused around the failover.
    let next = 1;
    let stop = false;
    let paused = false;
    let writing = Promise.resolve();
    const writer = async () => {
      while (!stop) {
        if (paused) {
          await sleep(20);
          continue;
        }
        const states = await lab.fleet.state();
        const w = Object.entries(states).find(([, s]) => s.up && s.readOnly === false)?.[0];
        if (!w) {
          await sleep(50);
          continue;
        }
        const node = nodes.find((n) => n.id === w)!;
        let conn: mysql.Connection | undefined;
        try {
          conn = await mysql.createConnection({ socketPath: node.socket, user: 'root' });
          for (let k = 0; k < 20 && !stop && !paused; k++) {
            const id = next;
            await conn.query(`INSERT INTO ${APP_SCHEMA}.pitr (id, ts) VALUES (?, NOW())`, [id]);
            next++;
            const [[r]] = (await conn.query(`SELECT @@last_gtid AS g, UNIX_TIMESTAMP(ts) AS ts FROM ${APP_SCHEMA}.pitr WHERE id = ?`, [id])) as unknown as [[{ g: string; ts: number }]];
            acks.push({ id, gtid: r.g, ts: Number(r.ts) });
            await sleep(15);
          }
        } catch {
          await sleep(50); // read-only now (switchover) or gone: find the writable node again
        } finally {
          await conn?.end().catch(() => undefined);
        }
      }
    };
    writing = writer();
    const phase = async (ms: number) => sleep(ms);

    await phase(2500);
    // A loaded machine may take a while to start the worker and load its bundle.
    const died = await Promise.race([first.exited.then(() => true), sleep(120_000).then(() => false)]);
    if (!died) failures.push('the worker armed with inside:archiveBinlogs.segment#3 did not die');
    else {
      archiverKills++;
      log('[pitr] worker killed inside a segment; a new one starts');
    }
    workers.push(spawnWorker(lab, undefined, log));
    const b = await runBackupRun({ ...o, wait: true }, io);
    if (b.exitCode !== 0) failures.push(`backup exited ${b.exitCode}`);
    await phase(2500);
    const primaryNow = async () => Object.entries(await lab.fleet.state()).find(([, s]) => s.up && s.readOnly === false)?.[0];
    const p1 = (await primaryNow())!;
    const sw = await runSwitchover({ ...o, to: nodes.find((n) => n.id !== p1)!.id, wait: true }, io);
    if (sw.exitCode !== 0) failures.push(`switchover exited ${sw.exitCode}`);
    await phase(2500);
    // The archiver's worker killed from outside at an arbitrary moment.
    const victim = workers[workers.length - 1];
    victim.proc.kill('SIGKILL');
    await victim.exited;
    archiverKills++;
    workers.push(spawnWorker(lab, undefined, log));
    log('[pitr] worker SIGKILLed from outside; a new one starts');
    await phase(2000);
    // Failover: the writer pauses, the replicas catch up (nothing acknowledged is lost by the cluster), the primary dies.
    paused = true;
    await sleep(100);
    const p2 = (await primaryNow())!;
    await lab.fleet.waitForReplication(p2, 30_000);
    await nodes.find((n) => n.id === p2)!.stop('SIGKILL');
    const fo = await runFailover({ ...o, wait: true, force: true }, io);
    if (fo.exitCode !== 0 && fo.exitCode !== 5) failures.push(`failover exited ${fo.exitCode}`);
    paused = false;
    await phase(2500);
    stop = true;
    await writing;
    const p3 = (await primaryNow())!;
    log(`[pitr] primaries ${p1} -> ${p2} -> ${p3}; ${acks.length} acknowledged rows`);

    // The archive catches up with the last primary.
    const [pos] = await lab.fleet.sql<{ p: string }[]>(p3, 'SELECT @@gtid_binlog_pos AS p');
    for (const until = Date.now() + 60_000; ; ) {
      const s = (await runBackupArchive({ ...o, action: 'status', json: true }, io)).status;
      if (s?.archivedPos && posCovers(parseGtidPos(s.archivedPos), parseGtidPos(pos.p)) && s.coveredUntil && Date.parse(s.coveredUntil) > acks[acks.length - 1].ts * 1000 + 1000) break;
      if (Date.now() > until) throw new Error(`the archive did not reach ${pos.p}: ${JSON.stringify(s)}`);
      await sleep(200);
    }
    const segs = await listSegments(new LocalDirStorage(path.join(path.dirname(lab.inventory), 'backups')), cluster);
    let chainBreaks = 0;
    for (let i = 1; i < segs.length; i++) if (segs[i].startAfter !== segs[i - 1].endPos) chainBreaks++;
    if (chainBreaks) failures.push(`${chainBreaks} segment(s) do not continue where the previous ended`);

    // Targets: GTIDs spread over the run (after the base), and whole-second times.
    const baseGtid = b.report?.take.position.gtid ?? '';
    const baseSeq = Number(baseGtid.split('-')[2] ?? 0);
    const after = acks.filter((a) => Number(a.gtid.split('-')[2]) > baseSeq);
    const gtidTargets = [0.05, 0.3, 0.5, 0.7, 0.9, 1].map((f) => after[Math.min(after.length - 1, Math.floor(f * (after.length - 1)))]);
    const seconds = [...new Set(after.map((a) => a.ts))].slice(1, -1);
    const timeTargets = [0.2, 0.5, 0.8].map((f) => seconds[Math.floor(f * (seconds.length - 1))]).filter((x) => x !== undefined);
    let exact = 0;
    let lost = 0;
    let extra = 0;
    const restoreAndCheck = async (what: string, arg: { toGtid: string } | { toTime: string }, want: number[]) => {
      const r = await runBackupRestore({ ...o, ...arg, scratch: true, json: true }, io);
      const rep = (r as { report?: { restored: { socket: string; dir: string } } }).report;
      if (r.exitCode !== 0 || !rep) {
        failures.push(`${what}: restore exited ${r.exitCode}`);
        lost += want.length;
        return;
      }
      scratch.push(rep.restored.dir);
      const conn = await mysql.createConnection({ socketPath: rep.restored.socket, user: 'root' });
      let got: number[];
      try {
        const [rows] = (await conn.query(`SELECT id FROM ${APP_SCHEMA}.pitr ORDER BY id`)) as unknown as [{ id: number }[]];
        got = rows.map((x) => Number(x.id));
      } finally {
        await conn.end();
      }
      const g = new Set(got);
      const w = new Set(want);
      const l = want.filter((x) => !g.has(x)).length;
      const e = got.filter((x) => !w.has(x)).length;
      lost += l;
      extra += e;
      if (l === 0 && e === 0) exact++;
      else failures.push(`${what}: ${l} acknowledged row(s) missing, ${e} row(s) after the target present`);
      log(`[pitr] ${what}: ${got.length} rows, want ${want.length}: ${l === 0 && e === 0 ? 'exact' : `lost ${l}, extra ${e}`}`);
      await stopScratch(rep.restored.dir);
    };
    for (const a of gtidTargets) await restoreAndCheck(`to GTID ${a.gtid} (row ${a.id})`, { toGtid: a.gtid }, acks.filter((x) => x.id <= a.id).map((x) => x.id));
    for (const t of timeTargets) await restoreAndCheck(`to time ${new Date(t * 1000).toISOString()}`, { toTime: new Date(t * 1000).toISOString() }, acks.filter((x) => x.ts <= t).map((x) => x.id));
    if (archiverKills < 2) failures.push(`the archiver's worker was killed ${archiverKills} time(s), want 2`);
    return {
      targets: gtidTargets.length + timeTargets.length,
      exact,
      lostTransactions: lost,
      extraTransactions: extra,
      acked: acks.length,
      gtidTargets: gtidTargets.length,
      timeTargets: timeTargets.length,
      segments: segs.length,
      chainBreaks,
      archiverKills,
      primaries: [p1, p2, p3],
      failures,
      ms: Date.now() - t0,
    };
  } finally {
    await runBackupArchive({ ...o, action: 'stop' }, io).catch(() => undefined);
    for (const w of workers) await w.stop().catch(() => undefined);
    for (const d of scratch) await stopScratch(d);
    await lab.close();
  }
}

async function stopScratch(dir: string): Promise<void> {
  try {
    process.kill(Number(readFileSync(path.join(dir, 'mysqld.pid'), 'utf8')), 'SIGKILL');
  } catch {
    /* already gone */
  }
  await sleep(50);
  rmSync(dir, { recursive: true, force: true });
}
