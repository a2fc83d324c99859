/**
 * Rolling restart of a real MariaDB 10.11 fleet (1 primary + 2 GTID replicas) under the transactional writer,
 * the automation connecting as the least-privilege `handover` user (no SHUTDOWN grant: the local controller
 * restarts mariadbd from each node's option file). Replicas first, then the mysql switchover as a child
 * workflow, then the old primary; every node ends on the desired variables, one writable node, no
 * acknowledged commit lost, never two writable nodes; a re-run finds nothing stale and restarts nothing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollingRestart } from '../../client/commands/rolling-restart';
import { loadInventory } from '../../inventory/load';
import { MARIADB_HANDOVER_GRANTS, startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { SqlWriter } from '../../sandbox/sql-writer';
import { sleep } from '../../sandbox/ports';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

/** How many times each node's server has started (mariadbd logs "ready for connections" once per start). */
function startsPerNode(fleet: MariaFleet): Record<string, number> {
  return Object.fromEntries(fleet.nodes.map((n) => [n.id, (readFileSync(path.join(n.dir, 'error.log'), 'utf8').match(/ready for connections/g) ?? []).length]));
}

async function variable(fleet: MariaFleet, node: string, name: string): Promise<string> {
  const r = await fleet.sql<{ Value: string }[]>(node, 'SHOW GLOBAL VARIABLES LIKE ?', [name]);
  return r[0].Value;
}

describe('rolling restart (mariadb GTID replication)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster: 'roll-maria' });
    inventory = fleet.writeInventory(undefined, { controller: true });
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
  });

  it('rolls replicas first, hands the primary over, restarts it last: desired spec everywhere, one writable node, 0 lost commits; a re-run is a no-op', async () => {
    const [n1, n2, n3] = fleet.nodes;
    // The automation user has exactly the switchover's grants (nothing added for the restart).
    const grants = await fleet.sql<Record<string, string>[]>(n1.id, "SHOW GRANTS FOR 'handover'@'127.0.0.1'");
    expect(grants).toHaveLength(2);
    const granted = /^GRANT (.*) ON \*\.\* TO/.exec(String(Object.values(grants[0])[0]))![1].split(', ');
    expect(granted.sort()).toEqual([...MARIADB_HANDOVER_GRANTS].sort());
    expect(String(Object.values(grants[1])[0])).toMatch(/^GRANT EVENT ON `mysql`\.\* TO/);

    const startsBefore = startsPerNode(fleet);
    const set = ['max_connections=321', 'slave_net_timeout=7'];

    // Dry run: every node stale, the first action planned, nothing restarted.
    const ioPlan = captureIO();
    const plan = await runRollingRestart({ cluster: fleet.cluster, set, dryRun: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, ioPlan);
    expect(plan.exitCode, ioPlan.text()).toBe(0);
    expect(plan.report!.staleAtStart.map((s) => s.node).sort()).toEqual([n1.id, n2.id, n3.id]);
    expect(plan.report!.audit.join('\n')).toMatch(new RegExp(`first action: restart ${n2.id}`));
    // Without a controller in the inventory: refused (exit 2), nothing changed.
    const saved = inventory;
    inventory = fleet.writeInventory(path.join(fleet.baseDir, 'no-controller.yaml'));
    try {
      const ioNo = captureIO();
      const no = await runRollingRestart({ cluster: fleet.cluster, set, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, ioNo);
      expect(no.exitCode, ioNo.text()).toBe(2);
      expect(ioNo.text()).toMatch(/has no controller in the inventory; nothing was changed/);
    } finally {
      inventory = saved;
    }
    // A version the controller has no binary for: stopped before any node is touched.
    const ioVer = captureIO();
    const ver = await runRollingRestart({ cluster: fleet.cluster, version: 'mariadb 99.1', wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, ioVer);
    expect(ver.exitCode, ioVer.text()).toBe(2);
    expect(ioVer.text()).toMatch(/no binary for version mariadb 99\.1/);
    expect(startsPerNode(fleet)).toEqual(startsBefore);
    expect(await variable(fleet, n2.id, 'max_connections')).not.toBe('321');

    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    let splits = 0;
    let samples = 0;
    let stopSampling = false;
    const sampling = (async () => {
      while (!stopSampling) {
        let st = await fleet.state();
        for (let i = 0; i < 3 && Object.values(st).filter((s) => s.up && s.readOnly === false).length > 1; i++) st = await fleet.state();
        if (Object.values(st).filter((s) => s.up && s.readOnly === false).length > 1) splits++;
        samples++;
        await sleep(100);
      }
    })();
    await sleep(500);

    const io = captureIO();
    const r = await runRollingRestart({ cluster: fleet.cluster, set, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io);
    expect(r.exitCode, io.text()).toBe(0);
    const rep = r.report!;
    await sleep(500);
    const stats = await writer.stop();
    stopSampling = true;
    await sampling;

    // Order: both replicas (one at a time, of n1), then the handover of n1, then n1 as a replica.
    expect(rep.staleAtStart.map((s) => s.node).sort()).toEqual([n1.id, n2.id, n3.id]);
    expect(rep.restarts.map((x) => x.node)).toEqual([n2.id, n3.id, n1.id]);
    expect(rep.restarts.slice(0, 2).every((x) => x.primary === n1.id)).toBe(true);
    expect(rep.handovers).toHaveLength(1);
    expect(rep.handovers[0].from).toBe(n1.id);
    expect(rep.restarts[2].primary).toBe(rep.handovers[0].to);
    const steps = rep.steps.map((s) => s.step);
    const at = (s: string) => steps.indexOf(s);
    expect(at(`ready ${n2.id}`)).toBeLessThan(at(`restart ${n3.id}`));
    expect(at(`ready ${n3.id}`)).toBeLessThan(at(`handover ${n1.id}`));
    expect(at(`handover ${n1.id}`)).toBeLessThan(at(`restart ${n1.id}`));
    expect(io.text()).toMatch(new RegExp(`rolled ${fleet.cluster}: primary is ${rep.primary}`));

    // Every node restarted exactly once and runs the desired variables.
    const startsAfter = startsPerNode(fleet);
    for (const n of fleet.nodes) expect(startsAfter[n.id] - startsBefore[n.id], n.id).toBe(1);
    for (const n of fleet.nodes) {
      expect(await variable(fleet, n.id, 'max_connections')).toBe('321');
      expect(await variable(fleet, n.id, 'slave_net_timeout')).toBe('7');
    }

    // One writable node, every replica replicating from it with the identical GTID position, no commit lost.
    expect(splits, `${splits} of ${samples} samples had two writable nodes`).toBe(0);
    expect(samples).toBeGreaterThan(10);
    await fleet.waitForReplication(rep.primary, 60_000);
    const st = await fleet.state();
    expect(Object.entries(st).filter(([, s]) => s.readOnly === false).map(([id]) => id)).toEqual([rep.primary]);
    expect(new Set(Object.values(st).map((s) => s.gtidBinlogPos)).size, JSON.stringify(st)).toBe(1);
    expect(stats.acked).toBeGreaterThan(100);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `${n.id} missing acknowledged commits`).toEqual([]);
    expect(writer.primariesSeen).toEqual([n1.id, rep.handovers[0].to]);
    await writer.close();
    console.log(`[mariadb rolling restart] acked=${stats.acked} maxGapMs=${stats.maxGapMs} errors=${JSON.stringify(writer.errorCodes)} handover pause=${rep.handovers[0].writePauseMs} ms steps=${JSON.stringify(rep.steps)}`);

    // Re-run after completion: nothing stale, nothing restarted, no handover.
    const io2 = captureIO();
    const again = await runRollingRestart({ cluster: fleet.cluster, set, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue }, io2);
    expect(again.exitCode, io2.text()).toBe(0);
    expect(again.report!.staleAtStart).toEqual([]);
    expect(again.report!.restarts).toEqual([]);
    expect(again.report!.handovers).toEqual([]);
    expect(startsPerNode(fleet)).toEqual(startsAfter);
  }, 300_000);
});
