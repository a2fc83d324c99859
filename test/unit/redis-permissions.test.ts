import { describe, expect, it } from 'vitest';
import { REDIS_REQUIRED_COMMANDS, describeMissingRedisPermissions, missingRedisPermissions } from '../../core/redis/permissions';
import { decideRedisSwitchover } from '../../core/redis/decide';
import type { RedisNodeProbe } from '../../core/types';

describe('Redis ACL permissions (ACL DRYRUN answers)', () => {
  it('a denial names the command; OK and arity errors are not denials', () => {
    const answers: (string | Error)[] = REDIS_REQUIRED_COMMANDS.map(() => 'OK');
    answers[REDIS_REQUIRED_COMMANDS.findIndex((c) => c.name === 'client|pause')] = "This user has no permissions to run the 'client|pause' command";
    answers[REDIS_REQUIRED_COMMANDS.findIndex((c) => c.name === 'dbsize')] = new Error("ERR wrong number of arguments for 'dbsize' command");
    expect(missingRedisPermissions(answers)).toEqual(['client|pause']);
  });

  it('the refusal names the node, what the command is for, and the ACL rule that fixes it', () => {
    expect(describeMissingRedisPermissions('r-2', 'ops', ['replicaof', 'client|pause'])).toBe(
      'the automation user lacks replicaof (promote and repoint), client|pause (the bounded write pause of a handover) on r-2: ACL SETUSER ops +replicaof +client|pause (and persist it in the ACL file)',
    );
  });

  it('a switchover is refused before anything changes when any node lacks a permission', () => {
    const n = (node: string, o: Partial<RedisNodeProbe>): RedisNodeProbe => ({ node, address: `h:${node}`, promotion: 'prefer', reachable: true, ...o });
    const r = decideRedisSwitchover([
      n('r-1', { role: 'primary', offset: 100 }),
      n('r-2', { role: 'replica', primaryNode: 'r-1', linkUp: true, offset: 100, missingPermissions: ['replicaof'] }),
    ]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.refusal).toEqual(expect.objectContaining({ code: 'MissingPermission', message: expect.stringMatching(/lacks replicaof \(promote and repoint\) on r-2: .*; nothing was changed$/) }));
  });
});
