/**
 * Which commands the automation user must be allowed on a Redis/Valkey node, checked with `ACL DRYRUN` (Redis
 * 7 / Valkey) before a runbook changes anything, so a missing ACL permission can never stop a handover half-way
 * (the old primary demoted, nobody promoted). Pure: the probe runs the checks, this says what they mean.
 */

/** Each command a runbook sends, with arguments that satisfy its arity (DRYRUN checks arity too), and why. */
export const REDIS_REQUIRED_COMMANDS: { args: string[]; name: string; why: string }[] = [
  { args: ['INFO', 'replication'], name: 'info', why: 'probe' },
  { args: ['DBSIZE'], name: 'dbsize', why: 'probe' },
  { args: ['CLIENT', 'PAUSE', '1', 'WRITE'], name: 'client|pause', why: 'the bounded write pause of a handover' },
  { args: ['CLIENT', 'UNPAUSE'], name: 'client|unpause', why: 'ending the write pause' },
  { args: ['REPLICAOF', 'NO', 'ONE'], name: 'replicaof', why: 'promote and repoint' },
  { args: ['FAILOVER', 'ABORT'], name: 'failover', why: 'the FAILOVER handover method and its undo' },
  { args: ['CONFIG', 'REWRITE'], name: 'config|rewrite', why: 'persisting the role across a restart' },
];

/** The ACL commands the check itself needs; without them nothing can be checked, so they count as missing. */
export const REDIS_ACL_CHECK_COMMANDS = ['acl|whoami', 'acl|dryrun'];

/**
 * From the DRYRUN answers (in REDIS_REQUIRED_COMMANDS order: "OK", or the error text), the commands the user
 * may not run. A "wrong number of arguments" or unknown-command answer is not a denial.
 */
export function missingRedisPermissions(answers: (string | Error)[]): string[] {
  return REDIS_REQUIRED_COMMANDS.filter((_, i) => {
    const a = answers[i];
    const text = a instanceof Error ? a.message : String(a);
    return /no permissions to run/i.test(text);
  }).map((c) => c.name);
}

/** One line for a node's missing permissions, with the ACL rule that fixes it. */
export function describeMissingRedisPermissions(node: string, user: string | undefined, missing: string[]): string {
  const why = missing.map((m) => `${m} (${REDIS_REQUIRED_COMMANDS.find((c) => c.name === m)?.why ?? 'checking the other permissions with ACL DRYRUN'})`).join(', ');
  return `the automation user lacks ${why} on ${node}: ACL SETUSER ${user ?? '<automation user>'} ${missing.map((m) => `+${m}`).join(' ')} (and persist it in the ACL file)`;
}
