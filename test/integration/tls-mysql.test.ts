/**
 * TLS to MariaDB (issue #14 item 2), against real mariadbd processes with require_secure_transport=ON and
 * certificates made by openssl: a switchover under a TLS writer loses no acknowledged commit and every replica
 * it repoints replicates with MASTER_SSL=1 and a verified server certificate; a backup streams over TLS
 * (mariadb-dump --ssl-ca …) and verifies; a wrong CA and a plaintext-only inventory are refused before anything
 * changes, naming the node.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARIADB_BACKUP_GRANTS } from '../../activities/backup/mysql';
import { runBackupRun } from '../../client/commands/backup';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { withBackupBlock } from '../../sandbox/backup';
import { startMariaFleet, type MariaFleet } from '../../sandbox/mariadb';
import { SqlWriter } from '../../sandbox/sql-writer';
import { captureIO, moreAcks, startTestWorker, type TestWorker } from '../helpers';

describe('TLS to MariaDB (require_secure_transport=ON)', () => {
  let fleet: MariaFleet;
  let tw: TestWorker;
  let inventory: string;
  let backups: string;
  const cluster = 'tls-maria';
  const opts = () => ({ cluster, wait: true, inventory, address: tw.address, taskQueue: tw.taskQueue });
  const goodYaml = () => withBackupBlock(fleet.inventoryYaml(), backups, 2);

  beforeAll(async () => {
    fleet = await startMariaFleet({ cluster, tls: true });
    backups = mkdtempSync(path.join(os.tmpdir(), 'handover-tls-backups-'));
    inventory = path.join(fleet.baseDir, 'inventory.yaml');
    writeFileSync(inventory, goodYaml());
    await fleet.sql(0, `GRANT ${MARIADB_BACKUP_GRANTS.join(', ')} ON *.* TO 'handover'@'127.0.0.1'`);
    await fleet.waitForReplication(0);
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
  });
  afterAll(async () => {
    await tw?.stop();
    await fleet?.stop();
    if (backups) rmSync(backups, { recursive: true, force: true });
  });

  /** Per node: read_only, source, threads and GTID positions (compared before and after a refusal). */
  const snapshot = () => fleet.state();

  async function switchoverWith(yaml: string) {
    writeFileSync(inventory, yaml);
    try {
      const io = captureIO();
      const r = await runSwitchover(opts(), io);
      return { ...r, text: io.text() };
    } finally {
      writeFileSync(inventory, goodYaml());
    }
  }

  it('switches over twice under a TLS writer, losing no commit; every replica replicates with MASTER_SSL and a verified certificate', async () => {
    const writer = new SqlWriter(fleet.nodes, fleet.appUser, fleet.appPassword).start();
    await moreAcks(writer, 50);
    const io1 = captureIO();
    const first = await runSwitchover(opts(), io1);
    expect(first.exitCode, io1.text()).toBe(0);
    const r1 = first.report!;
    expect(r1.oldPrimary).toBe(fleet.nodes[0].id);
    await moreAcks(writer, 30); // acknowledged by the new primary before switching back
    const io2 = captureIO();
    const second = await runSwitchover({ ...opts(), to: r1.oldPrimary }, io2);
    expect(second.exitCode, io2.text()).toBe(0);
    await moreAcks(writer, 30);
    const stats = await writer.stop();
    await writer.close();
    expect(stats.acked).toBeGreaterThan(100);
    expect(writer.primariesSeen).toEqual([fleet.nodes[0].id, r1.newPrimary, fleet.nodes[0].id]);
    await fleet.waitForReplication(0);
    for (const n of fleet.nodes) expect(await writer.missingOn(n), `${n.id} missing acknowledged commits`).toEqual([]);
    // Both replicas were repointed by the runbooks (the first switchover's old primary, the second's rest).
    for (const n of fleet.nodes.slice(1)) {
      const [s] = await fleet.sql<Record<string, unknown>[]>(n.id, 'SHOW SLAVE STATUS');
      expect({ node: n.id, ssl: s.Master_SSL_Allowed, ca: s.Master_SSL_CA_File, verify: s.Master_SSL_Verify_Server_Cert, io: s.Slave_IO_Running }).toEqual({
        node: n.id,
        ssl: 'Yes',
        ca: fleet.tls!.ca,
        verify: 'Yes',
        io: 'Yes',
      });
    }
    console.log(`[mariadb tls] acked=${stats.acked} errors=${stats.errors} maxGapMs=${stats.maxGapMs}`);
  });

  it('backs up over TLS (mariadb-dump --ssl-ca, client certificate) and verifies the backup', async () => {
    const io = captureIO();
    const r = await runBackupRun({ address: tw.address, taskQueue: tw.taskQueue, inventory, json: true, cluster, wait: true }, io);
    expect(r.exitCode, io.text()).toBe(0);
    expect(r.report!.verification.ok).toBe(true);
  });

  it('refuses a wrong CA before anything changes, naming the node', async () => {
    const before = await snapshot();
    const r = await switchoverWith(withBackupBlock(fleet.inventoryYaml({ tls: { ca: fleet.tls!.otherCa, cert: fleet.tls!.clientCert, key: fleet.tls!.clientKey } }), backups, 2));
    expect(r.exitCode, r.text).toBe(2);
    expect(r.text).toMatch(/TLS to tls-maria-\d .*certificate/);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses a plaintext-only inventory before anything changes, naming the node', async () => {
    const before = await snapshot();
    const r = await switchoverWith(withBackupBlock(fleet.inventoryYaml({ tls: false }), backups, 2));
    expect(r.exitCode, r.text).toBe(2);
    expect(r.text).toMatch(/tls-maria-\d offers TLS and the inventory has no tls block for it/);
    expect(await snapshot()).toEqual(before);
  });
});
