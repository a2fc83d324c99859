/**
 * Dolt read replicas through a remote (topology: remote-replicas), the pure parts: a node's part from its
 * settings, the switchover decision and its refusals, the status lines (lag as a commit distance), the
 * controller's edit of a sql-server YAML, and the inventory rules.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { decideDoltRemoteSwitchover, headMismatches, remoteRoleOf, settingsFor, type DoltRemoteNodeProbe } from '../../core/dolt/remote';
import { doltRemoteStatus, formatClusterStatus } from '../../core/status';
import { setDoltConfigValues } from '../../activities/controllers';
import { InventoryError, parseInventory } from '../../inventory/load';

const heads = (h: string) => ({ app: { main: h } });
const node = (n: string, o: Partial<DoltRemoteNodeProbe>): DoltRemoteNodeProbe => ({ node: n, address: `${n}:3306`, reachable: true, heads: heads('h1'), missingRemote: [], ...o });
const primary = (n: string) => node(n, { role: 'primary', readOnly: false, replicateTo: 'origin', readReplicaRemote: '' });
const replica = (n: string, o: Partial<DoltRemoteNodeProbe> = {}) => node(n, { role: 'replica', readOnly: true, replicateTo: '', readReplicaRemote: 'origin', behindCommits: 0, ...o });

describe('Dolt remote replicas: roles and settings', () => {
  it('names a node by what it pushes, pulls and whether it is read-only', () => {
    expect(remoteRoleOf(settingsFor('primary', 'origin'), 'origin')).toBe('primary');
    expect(remoteRoleOf(settingsFor('fenced', 'origin'), 'origin')).toBe('fenced');
    expect(remoteRoleOf(settingsFor('replica', 'origin'), 'origin')).toBe('replica');
    expect(remoteRoleOf({ readOnly: false, replicateTo: '', readReplicaRemote: 'origin' }, 'origin')).toBe('misconfigured');
    expect(remoteRoleOf({ readOnly: false, replicateTo: 'other', readReplicaRemote: '' }, 'origin')).toBe('misconfigured');
  });

  it('lists the branches whose heads differ', () => {
    expect(headMismatches({ a: { main: 'x', dev: 'y' } }, { a: { main: 'x' }, b: { main: 'z' } })).toEqual(['a/dev', 'b/main']);
  });
});

describe('decideDoltRemoteSwitchover', () => {
  it('chooses a replica (prefer first), the others follow', () => {
    const r = decideDoltRemoteSwitchover([primary('n1'), replica('n2'), replica('n3', { promotion: 'prefer' })], { remote: 'origin' });
    expect(r).toMatchObject({ ok: true, decision: { primary: 'n1', candidate: 'n3', followers: ['n2'], remote: 'origin' } });
  });

  it('refuses, changing nothing: unreachable, fenced, two primaries, --to the primary, diverged, missing database or remote', () => {
    const msg = (probes: DoltRemoteNodeProbe[], to?: string) => {
      const r = decideDoltRemoteSwitchover(probes, { remote: 'origin', to });
      expect(r.ok).toBe(false);
      return r.ok ? '' : r.refusal.message;
    };
    expect(msg([primary('n1'), { node: 'n2', address: 'n2:3306', reachable: false, error: 'ECONNREFUSED' }])).toMatch(/n2 unreachable \(ECONNREFUSED\).*nothing was changed/);
    expect(msg([node('n1', { role: 'fenced', readOnly: true, replicateTo: 'origin', readReplicaRemote: '' }), replica('n2')])).toMatch(/n1 is fenced/);
    expect(msg([primary('n1'), primary('n2')])).toMatch(/2 primaries/);
    expect(msg([primary('n1'), replica('n2')], 'n1')).toMatch(/already the primary/);
    expect(msg([primary('n1'), replica('n2')], 'n9')).toMatch(/no such node/);
    expect(msg([primary('n1'), replica('n2', { behindCommits: null, behindDetail: 'app/main: head x is not in the primary history' })])).toMatch(/diverged/);
    expect(msg([primary('n1'), replica('n2', { heads: {} })])).toMatch(/lacks database\(s\) app/);
    expect(msg([primary('n1'), replica('n2', { missingRemote: ['app'] })])).toMatch(/no remote origin in app/);
  });
});

describe('doltRemoteStatus', () => {
  it('shows each replica with its lag in commits, and the problems first', () => {
    const s = doltRemoteStatus('d', 'origin', [primary('n1'), replica('n2', { behindCommits: 3 }), replica('n3', { behindCommits: null, behindDetail: 'app/main: head x is not in the primary history' })]);
    expect(s).toMatchObject({ topology: 'remote-replicas', primaries: ['n1'] });
    expect(s.nodes[1]).toMatchObject({ role: 'replica', replicaOf: 'n1', lagCommits: 3, linkUp: true });
    expect(s.problems).toEqual(['n3 has diverged from n1: app/main: head x is not in the primary history']);
    const text = formatClusterStatus(s).join('\n');
    expect(text).toMatch(/n2 +n2:3306 +replica of n1 +3 commit\(s\) +.* via origin/);
    expect(text).toContain('DIVERGED');
    expect(doltRemoteStatus('d', 'origin', [replica('n1'), node('n2', { role: 'fenced', readOnly: true, replicateTo: 'origin', readReplicaRemote: '' })]).problems).toEqual([
      'no reachable primary',
      expect.stringMatching(/n2 is fenced/),
    ]);
  });
});

describe('the dolt controller edits the sql-server YAML', () => {
  it('sets behavior.read_only and system_variables, keeping the rest', () => {
    const out = setDoltConfigValues('listener:\n  port: 3306\nbehavior:\n  autocommit: true\n', { read_only: 'true', dolt_replicate_to_remote: '', dolt_read_replica_remote: 'origin', dolt_replicate_all_heads: '1' });
    expect(YAML.parse(out)).toEqual({ listener: { port: 3306 }, behavior: { autocommit: true, read_only: true }, system_variables: { dolt_replicate_to_remote: '', dolt_read_replica_remote: 'origin', dolt_replicate_all_heads: 1 } });
  });
});

describe('inventory: topology remote-replicas', () => {
  const inv = (extra: string, topology = 'remote-replicas', engine = 'dolt') => `clusters:
  - name: d
    engine: ${engine}
    topology: ${topology}
    credentials: { username: handover, password: { env: P } }
${extra}    nodes:
      - { id: d1, host: h1, port: 3306 }
`;
  const problems = (text: string) => {
    try {
      parseInventory(text, 'inv.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(InventoryError);
      return (e as InventoryError).problems.map((p) => p.message).join('\n');
    }
    return '';
  };
  it('needs replicationRemote and a controller; refuses them elsewhere', () => {
    expect(problems(inv('    replicationRemote: origin\n    controller: { type: local, binary: dolt, configFile: "/srv/{node}.yaml" }\n'))).toBe('');
    expect(problems(inv(''))).toMatch(/needs replicationRemote[\s\S]*needs a controller/);
    expect(problems(inv('    replicationRemote: origin\n', 'replication'))).toMatch(/replicationRemote is for topology: remote-replicas/);
    expect(problems(inv('', 'remote-replicas', 'redis'))).toMatch(/topology: remote-replicas is for engine: dolt/);
  });
});
