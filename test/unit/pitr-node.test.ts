/** Point-in-time restore into a node: which nodes may be restored into, the privileges, where a replay resumes. */
import { describe, expect, it } from 'vitest';
import { parseGtid, parseGtidPos, replayProgress } from '../../core/backup/binlog';
import { judgePitrTarget, missingPitrNodePrivileges, type PitrNodeView, type PitrTargetProbe } from '../../core/backup/pitr-node';

const primary: PitrNodeView = { node: 'a', reachable: true, readOnly: false, role: 'primary' };
const replica = (node: string, o: Partial<PitrNodeView> = {}): PitrNodeView => ({ node, reachable: true, readOnly: true, role: 'replica', sourceNode: 'a', ioRunning: 'Yes', sqlRunning: true, ...o });
const facts = { logBin: true, schemas: [] as string[], missingPrivileges: [] as string[], user: 'handover' };
const probeOf = (node: string, nodes: PitrNodeView[], f: Partial<typeof facts> & { physicalBlocked?: string } = {}): PitrTargetProbe => ({ cluster: 'c', node, nodes, target: { ...facts, ...f } });
const logical = { replace: false, method: 'logical' };

describe('judgePitrTarget', () => {
  it('allows a stopped replica and a standalone read-only node; names the primary it leaves alone', () => {
    const v = judgePitrTarget(probeOf('b', [primary, replica('b', { ioRunning: 'No', sqlRunning: false }), replica('c')]), logical);
    expect(v).toMatchObject({ ok: true, primary: 'a' });
    expect(v.ok && v.notes.join(' ')).toMatch(/replication from a stopped .*RESET SLAVE ALL/);
    expect(judgePitrTarget(probeOf('b', [primary, { node: 'b', reachable: true, readOnly: true, role: 'primary' }]), logical)).toMatchObject({ ok: true });
  });

  it('refuses the primary, a writable node, a replicating node, a source, an unknown or unreachable node', () => {
    const r = (p: PitrTargetProbe, o = logical) => {
      const v = judgePitrTarget(p, o);
      return v.ok ? 'ok' : `${v.errorType}: ${v.refusal}`;
    };
    expect(r(probeOf('a', [primary, replica('b')]))).toMatch(/^PreconditionFailed: a is the primary of c/);
    expect(r(probeOf('b', [primary, replica('b', { readOnly: false, role: 'primary' })]))).toMatch(/b is writable .* besides a/);
    expect(r(probeOf('b', [primary, replica('b')]))).toMatch(/b replicates from a \(IO Yes, SQL Yes\): it is part of live replication; detach it first \(STOP SLAVE on b\)/);
    expect(r(probeOf('b', [primary, replica('b', { sqlRunning: false, ioRunning: 'Connecting' })]))).toMatch(/part of live replication/);
    expect(r(probeOf('b', [primary, replica('b', { ioRunning: 'No', sqlRunning: true })]))).toMatch(/part of live replication/);
    expect(r(probeOf('b', [primary, replica('b', { ioRunning: 'No', sqlRunning: false }), replica('c', { sourceNode: 'b' })]))).toMatch(/c replicates from b: repoint it/);
    expect(r(probeOf('z', [primary, replica('b')]))).toMatch(/^UnknownNode: unknown node z/);
    expect(r({ cluster: 'c', node: 'b', nodes: [primary, { node: 'b', reachable: false, error: 'ECONNREFUSED' }] })).toMatch(/b is unreachable \(ECONNREFUSED\)/);
  });

  it('refuses a node without a binary log, without the privileges, holding schemas (unless replace), a blocked physical base', () => {
    const stopped = [primary, replica('b', { ioRunning: 'No', sqlRunning: false })];
    const r = (f: Parameters<typeof probeOf>[2], o = logical) => {
      const v = judgePitrTarget(probeOf('b', stopped, f), o);
      return v.ok ? 'ok' : `${v.errorType}: ${v.refusal}`;
    };
    expect(r({ logBin: false })).toMatch(/log_bin OFF/);
    expect(r({ missingPrivileges: ['BINLOG REPLAY'] })).toMatch(/lacks BINLOG REPLAY \(.*\) on b .*GRANT BINLOG REPLAY ON \*\.\* TO 'handover'/);
    expect(r({ schemas: ['app'] })).toMatch(/^TargetNotEmpty: b holds schemas app: .*add --replace/);
    expect(r({ schemas: ['app'] }, { replace: true, method: 'logical' })).toBe('ok');
    expect(r({ physicalBlocked: 'no local controller' }, { replace: false, method: 'physical' })).toMatch(/no local controller/);
    expect(r({ physicalBlocked: 'no local controller' })).toBe('ok'); // a logical base does not replace the datadir
  });
});

describe('missingPitrNodePrivileges', () => {
  const least = ["GRANT RELOAD, PROCESS, BINLOG ADMIN, CONNECTION ADMIN, READ_ONLY ADMIN, SLAVE MONITOR, REPLICATION SLAVE ADMIN ON *.* TO `handover`@`127.0.0.1` IDENTIFIED BY PASSWORD '*X'"];
  it('names what the automation grants lack, by base method', () => {
    expect(missingPitrNodePrivileges(least, 'physical')).toEqual(['BINLOG REPLAY', 'REPLICATION MASTER ADMIN']);
    expect(missingPitrNodePrivileges(least, 'logical')).toEqual(['BINLOG REPLAY', 'REPLICATION MASTER ADMIN', 'CREATE', 'DROP', 'ALTER', 'INDEX', 'INSERT', 'SELECT', 'LOCK TABLES']);
    expect(missingPitrNodePrivileges(['GRANT ALL PRIVILEGES ON *.* TO `h`@`%`'], 'logical')).toEqual([]);
    // A schema-level grant does not count.
    expect(missingPitrNodePrivileges([...least, 'GRANT BINLOG REPLAY, REPLICATION MASTER ADMIN ON *.* TO `h`@`%`', 'GRANT ALL PRIVILEGES ON `app`.* TO `h`@`%`'], 'logical')).toEqual(['CREATE', 'DROP', 'ALTER', 'INDEX', 'INSERT', 'SELECT', 'LOCK TABLES']);
  });
});

describe('replayProgress', () => {
  const txns = ['0-1-11', '0-1-12', '0-2-13'].map((g) => ({ gtid: parseGtid(g) }));
  const base = parseGtidPos('0-1-10,1-5-3');
  it('says which planned transactions a node already has from its gtid_binlog_pos', () => {
    expect(replayProgress('0-1-10,1-5-3', base, txns)).toEqual({ state: 'resume', from: 0 });
    expect(replayProgress('1-5-3,0-1-12', base, txns)).toEqual({ state: 'resume', from: 2 });
    expect(replayProgress('0-2-13,1-5-3', base, txns)).toEqual({ state: 'done', from: 3 });
    expect(replayProgress('0-1-10,1-5-3', base, [])).toEqual({ state: 'done', from: 0 });
  });
  it('starts afresh from anything off the path (a dump load, another server, an empty log)', () => {
    expect(replayProgress('', base, txns)).toEqual({ state: 'fresh', from: 0 });
    expect(replayProgress('0-7-12,1-5-3', base, txns)).toEqual({ state: 'fresh', from: 0 });
    expect(replayProgress('0-1-12', base, txns)).toEqual({ state: 'fresh', from: 0 });
  });
});
