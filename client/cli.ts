#!/usr/bin/env node
/**
 * handover: the CLI. Each command lives in client/commands/<name>.ts and exports runX() for tests; this file
 * wires them into commander and owns what every command shares: global options before or after the command
 * (hoistGlobalOptions), typed number and count parsers, usage errors as one line with exit 2 (a JSON object with
 * --json), --version, help with examples and the exit-code table, and shell completion (client/completion.ts).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ZodError } from 'zod';
import { CliError, EXIT, EXIT_TABLE, processIO, sayFailure, type IO } from './common';
import { completionScript } from './completion';
import { handoverVersion } from './version';
import { runSwitchover } from './commands/switchover';
import { runRollingRestart } from './commands/rolling-restart';
import { runFailover } from './commands/failover';
import { runMonitor } from './commands/monitor';
import { runCodecServer } from './commands/codec-server';
import { runBackupArchive, runBackupList, runBackupProvisionReplica, runBackupRestore, runBackupRun, runBackupSchedule, runBackupVerify } from './commands/backup';
import { runApprove } from './commands/approve';
import { runAbort } from './commands/abort';
import { runPlan } from './commands/plan';
import { runStatus } from './commands/status';
import { runHistory } from './commands/history';
import { runDoctor } from './commands/doctor';
import { runMaintenance } from './commands/maintenance';

/** Options every Temporal-facing command takes; accepted before the command too (hoistGlobalOptions). */
export const GLOBAL_OPTIONS: { flag: string; takesValue: boolean }[] = [
  { flag: '--address', takesValue: true },
  { flag: '--namespace', takesValue: true },
  { flag: '--profile', takesValue: true },
  { flag: '--inventory', takesValue: true },
  { flag: '--task-queue', takesValue: true },
  { flag: '--json', takesValue: false },
];

/**
 * `handover --json --inventory f status` -> `handover status --json --inventory f`: global options written
 * before the command are moved after it (commander only knows them on each command). Stops at the first
 * word that is not one of them.
 */
export function hoistGlobalOptions(args: string[]): string[] {
  const hoisted: string[] = [];
  let i = 0;
  while (i < args.length) {
    const a = args[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), true] : [a, false];
    const g = GLOBAL_OPTIONS.find((o) => o.flag === flag);
    if (!g) break;
    if (g.takesValue && !inline && i + 1 < args.length) {
      hoisted.push(a, args[i + 1]);
      i += 2;
    } else {
      hoisted.push(a);
      i += 1;
    }
  }
  return hoisted.length ? [...args.slice(i), ...hoisted] : args;
}

/** A whole number in [min, max] for `flag`, or a typed usage error (exit 2) naming the flag and the value. */
export function intArg(flag: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    if (!/^\s*\d+\s*$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`${flag} ${JSON.stringify(v)}: expected a whole number from ${min} to ${max}`);
    return Number(v);
  };
}

const EXAMPLES = `
Examples:
  handover status --cluster cache-a
  handover plan switchover --cluster cache-a
  handover switchover --cluster cache-a --to cache-a-2 --wait
  handover rolling-restart --cluster db-a --set max_connections=500 --wait
  handover --json history --limit 5
  handover abort handover-cache-a
  source <(handover completion bash)

Global options (before or after the command): --address HOST:PORT, --namespace NS, --profile NAME,
  --inventory FILE, --task-queue NAME, --json

Exit codes:
${EXIT_TABLE.map(([c, m]) => `  ${c}  ${m}`).join('\n')}

Durations take a unit: 90s, 30m, 2h, 1500ms. Reference: docs/cli.md`;

function common(cmd: Command): Command {
  return cmd
    .option('--address <host:port>', 'Temporal frontend (env HANDOVER_TEMPORAL_ADDRESS, then TEMPORAL_ADDRESS / the Temporal config profile; default 127.0.0.1:7233)')
    .option('--namespace <ns>', 'Temporal namespace (env HANDOVER_NAMESPACE, then TEMPORAL_NAMESPACE / the profile; default "default")')
    .option('--profile <name>', "profile of Temporal's config file (env TEMPORAL_PROFILE; TLS, mTLS and API key come from it or TEMPORAL_TLS_* / TEMPORAL_API_KEY)")
    .option('--inventory <file>', 'inventory used to check names before starting (env HANDOVER_INVENTORY, default ./inventory.yaml)')
    .option('--json', 'machine-readable output: the report, or one {failed, type, message} object on failure')
    .option('--task-queue <name>', 'task queue the workers poll (env HANDOVER_TASK_QUEUE, default "handover")');
}

export function buildProgram(onExit: (code: number) => void = (c) => (process.exitCode = c)): Command {
  const program = new Command('handover')
    .description('Durable database runbooks on Temporal')
    .version(`handover ${handoverVersion()}`, '-V, --version', 'print the version')
    .enablePositionalOptions()
    .allowExcessArguments(false)
    .exitOverride()
    // Errors are printed by runMain as one line (or one JSON object); help and version as commander writes them.
    .configureOutput({ outputError: () => undefined })
    .addHelpText('after', EXAMPLES);
  common(
    program
      .command('switchover')
      .description('planned switchover: hand the primary role to a caught-up replica, losing no acknowledged write')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--to <node>', 'replica to promote (default: the best candidate)')
      .option('--shard <node|slot>', 'Redis Cluster: the shard to switch over, by one of its nodes or a slot it serves (a replica named here is promoted)')
      .option('--wait', 'follow the run and exit non-zero if it fails', false)
      .option('--require-approval', 'after probe and decide, publish the plan and wait for "handover approve" before changing anything', false)
      .option('--approval-timeout <duration>', 'with --require-approval: end with nothing changed if not approved within this (e.g. 90s, 30m, 2h; default 30m)')
      .option('--at <time>', 'start later: an ISO 8601 time (2026-12-01T02:00Z) or a duration from now (30m); the run waits in a visible "scheduled" phase, abortable until then')
      .option('--allow-degraded', 'hand over even when another replica will not follow the new primary (link down, auth failure, unreachable): it is left behind and reported, exit 5; without it (and without policy.allowDegraded in the inventory) such a switchover is refused, nothing changed')
      .option('--no-allow-degraded', 'refuse such a switchover for this run even when the inventory sets policy.allowDegraded: true')
      .addOption(new Option('--dry-run', 'probe and decide only; print the plan').default(false)),
  ).action(async (opts) => {
    const { exitCode } = await runSwitchover(opts, processIO);
    onExit(exitCode);
  });
  common(
    program
      .command('rolling-restart')
      .description('restart every stale node, replicas first; the primary is handed over before it is restarted')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--set <key=value...>', 'config values every node must run with (repeatable)', [])
      .option('--version <v>', 'version every node must run (e.g. 7.0, "valkey 9.1")')
      .option('--include-sentinels', 'sentinel topology: restart every Sentinel too, one at a time', false)
      .option('--reason <text>', 'restart every node once with nothing changed (OS patching, a new kernel), for this reason: replicas first, the primary handed over first, each node once')
      .option('--restart-all', 'as --reason, without a reason', false)
      .option('--wait', 'follow the run and exit non-zero if it fails', false)
      .option('--require-approval', 'after probe and decide, publish the plan and wait for "handover approve" before changing anything', false)
      .option('--approval-timeout <duration>', 'with --require-approval: end with nothing changed if not approved within this (e.g. 90s, 30m, 2h; default 30m)')
      .addOption(new Option('--maintenance <policy>', 'nodes in maintenance (handover maintenance): skip them (left as they are, reported, exit 5) or wait for their window to end').choices(['skip', 'wait']).default('skip'))
      .addOption(new Option('--dry-run', 'probe only; print what is stale and the first action').default(false)),
  ).action(async (opts) => {
    const { exitCode } = await runRollingRestart(opts, processIO);
    onExit(exitCode);
  });
  common(
    program
      .command('failover')
      .description('unplanned failover: confirm the primary dead, promote the most advanced replica, fence the old one')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--force', 'skip the dead-primary confirmation', false)
      .option('--shard <node>', 'Redis Cluster: the shard whose primary died (that primary or one of its replicas); CLUSTER FAILOVER FORCE, then TAKEOVER')
      .option('--wait', 'follow the run and exit non-zero if it fails', false)
      .option('--require-approval', 'after confirm and decide, publish the plan and wait for "handover approve" before promoting', false)
      .option('--approval-timeout <duration>', 'with --require-approval: end with nothing changed if not approved within this (default 30m)')
      .addOption(new Option('--dry-run', 'probe, confirm and decide only; print the plan (as "handover plan failover")').default(false)),
  ).action(async (opts) => onExit((await runFailover(opts, processIO)).exitCode));
  common(
    program
      .command('monitor')
      .description("start (or query, acknowledge, stop) the cluster's monitor, which fails over automatically")
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--status', 'print what the monitor sees', false)
      .option('--ack', 'acknowledge the last failover (clears the anti-flapping block)', false)
      .option('--stop', 'stop the monitor', false),
  ).action(async (opts) => onExit((await runMonitor(opts, processIO)).exitCode));
  common(
    program
      .command('maintenance')
      .description('put a node in maintenance until a time (the monitor neither fails over from nor to it; rolling restarts skip or wait), take it out, or list the windows')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--node <node>', 'the node')
      .option('--until <time>', 'end of the window: a duration from now (2h, 30m) or an ISO 8601 time (2026-12-01T10:00Z)')
      .option('--reason <text>', 'why (shown in status and the UI)')
      .option('--clear', 'end the node\'s window now', false),
  ).action(async (opts) => onExit((await runMaintenance(opts, processIO)).exitCode));
  const backup = program.command('backup').description('verified backups: run, list, verify, restore, schedule');
  common(
    backup
      .command('run')
      .description('take a backup from a healthy in-sync replica, verify it in a scratch server, prune to --keep')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--keep <n>', "verified backups to keep (default: the inventory's backup.keep, else 7)", intArg('--keep', 1, 1000))
      .option('--node <node>', 'back up from this node')
      .option('--replica-only', 'refuse rather than back up the primary when no healthy replica exists', false)
      .option('--incremental', 'backup.method: physical — an incremental on the newest good physical backup (a full when there is none)', false)
      .option('--wait', 'follow the run and exit non-zero if it fails', false),
  ).action(async (opts) => onExit((await runBackupRun(opts, processIO)).exitCode));
  common(
    backup
      .command('provision-replica')
      .description('a new replica from a physical backup: restore into the empty node, gtid_slave_pos from the backup, replicate from the primary, wait until it converges')
      .requiredOption('--cluster <name>', 'cluster')
      .requiredOption('--node <node>', 'the empty node to provision')
      .option('--id <id>', 'backup ID (default: the newest good physical backup)')
      .option('--timeout-ms <ms>', 'how long every node may take to converge (default 600000)'),
  ).action(async (opts) => onExit((await runBackupProvisionReplica(opts, processIO)).exitCode));
  common(backup.command('list').description("list the cluster's backups and their state (good, unverified, failed, incomplete)").requiredOption('--cluster <name>', 'cluster from the inventory')).action(async (opts) =>
    onExit((await runBackupList(opts, processIO)).exitCode),
  );
  common(backup.command('verify').description('verify a backup: sha256, then a restore into a scratch server').requiredOption('--cluster <name>', 'cluster').requiredOption('--id <id>', 'backup ID')).action(async (opts) =>
    onExit((await runBackupVerify(opts, processIO)).exitCode),
  );
  common(
    backup
      .command('restore')
      .description('restore a backup into a fresh scratch server (--scratch) or an empty node (--to NODE)')
      .requiredOption('--cluster <name>', 'cluster')
      .option('--id <id>', 'backup ID (a backup as taken)')
      .option('--to-time <time>', 'point in time (ISO 8601): the newest base before it plus the archived binlogs up to it')
      .option('--to-gtid <gtid>', 'point in time by GTID (domain-server-seq): up to and including that transaction')
      .option('--to <node>', 'an empty node of the cluster (refused if it holds data); with --to-time/--to-gtid: a detached node (never the primary, a writable or replicating node)')
      .option('--replace', 'with --to-time/--to-gtid --to NODE: the node may hold schemas; they are dropped (its datadir replaced for a physical base)', false)
      .option('--writable', 'with --to-time/--to-gtid --to NODE: leave the node read_only OFF (default: read-only)', false)
      .option('--scratch', 'a fresh scratch server on a free loopback port, left running', false),
  ).action(async (opts) => onExit((await runBackupRestore(opts, processIO)).exitCode));
  common(
    backup
      .command('archive')
      .description("the cluster's continuous binlog archive (MariaDB point-in-time recovery): start, stop, status")
      .argument('<action>', 'start | stop | status')
      .requiredOption('--cluster <name>', 'cluster')
      .option('--run-ms <ms>', 'how long one archiving call streams before returning (default 300000)')
      .option('--segment-ms <ms>', 'store a segment once its first transaction is this old (default 10000)')
      .option('--lease-ttl-ms <ms>', "the archive lease's lifetime: a silent archiver's lease is taken over after it (default 60000)"),
  ).action(async (action: string, opts) => onExit((await runBackupArchive({ ...opts, action: action as 'start' }, processIO)).exitCode));
  common(
    backup
      .command('schedule')
      .description('create (idempotent), update, pause, unpause, trigger or delete the cluster\'s backup schedule (Temporal Schedule, overlap skip)')
      .requiredOption('--cluster <name>', 'cluster')
      .option('--cron <expr>', 'cron expression, e.g. "0 3 * * *"')
      .option('--keep <n>', 'verified backups to keep', intArg('--keep', 1, 1000))
      .option('--pause', 'pause the schedule', false)
      .option('--unpause', 'unpause the schedule', false)
      .option('--trigger', 'start a run now (skipped if one is running)', false)
      .option('--delete', 'delete the schedule', false),
  ).action(async (opts) => onExit((await runBackupSchedule(opts, processIO)).exitCode));
  common(
    program
      .command('plan')
      .description('print what a runbook would do (probe and decide only; changes nothing): candidate and why, steps in order, what is paused')
      .argument('<runbook>', 'switchover | rolling-restart | failover')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--to <node>', 'switchover: replica to promote (default: the best candidate)')
      .option('--set <key=value...>', 'rolling-restart: config values every node must run with', [])
      .option('--version <v>', 'rolling-restart: version every node must run')
      .option('--include-sentinels', 'rolling-restart: restart every Sentinel too', false)
      .option('--reason <text>', 'rolling-restart: restart every node once, nothing changed, for this reason')
      .option('--restart-all', 'rolling-restart: as --reason, without a reason', false)
      .option('--force', 'failover: skip the dead-primary confirmation', false),
  ).action(async (runbook: string, opts) => onExit((await runPlan({ ...opts, runbook }, processIO)).exitCode));
  common(
    program
      .command('approve')
      .description('approve (or reject) the plan of a run started with --require-approval')
      .argument('<workflow-id>', 'the run (handover-<cluster>)')
      .option('--plan-hash <hash>', 'the plan hash being approved (default: read the waiting plan, print it, approve it)')
      .option('--approver <name>', 'who approves (default $USER)')
      .option('--reject', 'reject the plan: the run ends with nothing changed', false)
      .option('--reason <text>', 'why (recorded in the audit trail)'),
  ).action(async (workflowId: string, opts) => onExit((await runApprove({ ...opts, workflowId }, processIO)).exitCode));
  common(
    program
      .command('abort')
      .description('abort a run safely: before the point of no return it is undone (nothing changed); after it, it finishes forward')
      .argument('<workflow-id>', 'the run (handover-<cluster>)')
      .option('--no-wait', 'request the abort and return without waiting for the outcome'),
  ).action(async (workflowId: string, opts) => onExit((await runAbort({ ...opts, workflowId }, processIO)).exitCode));
  common(
    program
      .command('status')
      .description("each cluster's topology, primary, replicas' link and lag (read by the worker from the databases), and the runbook running on it")
      .option('--cluster <name>', "only this cluster (default: every cluster in the worker's inventory)")
      .option('--direct', "read the databases from this machine, with this CLI's inventory and credentials, instead of on the worker"),
  ).action(async (opts) => onExit((await runStatus(opts, processIO)).exitCode));
  common(
    program
      .command('history')
      .description('past runs from Temporal visibility, newest first: runbook, cluster, status, times, last phase')
      .option('--cluster <name>', 'only this cluster')
      .option('--limit <n>', 'at most this many runs (1-1000)', intArg('--limit', 1, 1000), 20),
  ).action(async (opts) => onExit((await runHistory(opts, processIO)).exitCode));
  common(
    program
      .command('doctor')
      .description("check this installation: Temporal from this machine (address, TLS, namespace, search attributes), a worker polling, the codec key; on the worker: every node reachable with working credentials and sufficient privileges, the backup binaries")
      .option('--cluster <name>', "only this cluster (default: every cluster in the worker's inventory)")
      .option('--direct', "check the nodes and binaries from this machine, with this CLI's inventory and credentials, instead of on the worker"),
  ).action(async (opts) => onExit((await runDoctor(opts, processIO)).exitCode));
  program
    .command('codec-server')
    .description('serve the payload codec (HANDOVER_CODEC_KEY) to the Temporal UI, so encrypted runs can be read there')
    .option('--port <n>', 'port to listen on (0-65535; 0: any free port)', intArg('--port', 0, 65535), 8081)
    .option('--host <addr>', 'address to bind (keep it loopback: whoever reaches it can decrypt)', '127.0.0.1')
    .option('--origin <url...>', 'UI origins allowed by CORS', ['http://127.0.0.1:8233', 'http://localhost:8233'])
    .option('--json', 'failures as one {failed, type, message} object on stdout')
    .action(async (opts) => {
      const { exitCode } = await runCodecServer(opts, processIO);
      if (exitCode !== 0) onExit(exitCode); // otherwise it serves until interrupted
    });
  program
    .command('completion')
    .description('print a shell completion script: source <(handover completion bash), or for zsh put it in a file on $fpath')
    .argument('<shell>', 'bash | zsh')
    .option('--json', 'failures as one {failed, type, message} object on stdout')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new CliError(EXIT.refused, `refused (UsageError): no completion for ${JSON.stringify(shell)}; say bash or zsh`);
      processIO.out(completionScript(buildProgram(), shell));
      onExit(EXIT.ok);
    });
  for (const c of program.commands) if (c.name() !== 'completion' && c.name() !== 'backup') c.addHelpText('after', `\nExit codes: ${EXIT_TABLE.map(([n]) => n).join(', ')} (handover --help says what each means).`);
  return program;
}

/** The command path a usage error belongs to, for "see handover <command> --help". */
function commandPath(args: string[], program: Command): string {
  const words: string[] = [];
  let cmd: Command | undefined = program;
  for (const a of args) {
    const sub: Command | undefined = cmd?.commands.find((c) => c.name() === a);
    if (!sub) break;
    words.push(a);
    cmd = sub;
  }
  return words.join(' ');
}

/**
 * Run the CLI on `args` (without "node handover"): every ending goes through here, so that a usage error, a
 * bad number, a refused input or an unexpected exception each ends with one line (or one JSON object with
 * `type` and `message` on stdout under --json) and the documented exit code.
 */
export async function runMain(args: string[], onExit: (code: number) => void = (c) => (process.exitCode = c), io: IO = processIO): Promise<void> {
  const argv = hoistGlobalOptions(args);
  const json = argv.includes('--json');
  const program = buildProgram(onExit);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version: printed by commander, exit 0.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) return onExit(EXIT.ok);
      const where = commandPath(argv, program);
      const text =
        e.code === 'commander.help'
          ? 'no command given'
          : e.message
              .replace(/^error: /, '')
              .replace(/^option '.*?' argument '.*?' is invalid\. /, '')
              .replace(/\.$/, '');
      sayFailure({ json }, io, { type: 'UsageError', message: `refused (UsageError): ${text}; see handover ${where ? `${where} ` : ''}--help` });
      return onExit(EXIT.refused);
    }
    if (e instanceof CliError) {
      sayFailure({ json }, io, e);
      return onExit(e.exitCode);
    }
    if (e instanceof ZodError) {
      const i = e.issues[0];
      sayFailure({ json }, io, { type: 'UsageError', message: `refused (UsageError): ${i ? `${i.path.join('.') || 'input'}: ${i.message}` : e.message}` });
      return onExit(EXIT.refused);
    }
    const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
    const unreachable = /UNAVAILABLE|ECONNREFUSED|deadline|Failed to connect/i.test(msg);
    sayFailure({ json }, io, { type: unreachable ? 'TemporalUnreachable' : 'Unexpected', message: `${unreachable ? 'unavailable (TemporalUnreachable)' : 'error (Unexpected)'}: ${msg}` });
    return onExit(unreachable ? EXIT.unavailable : EXIT.failed);
  }
}

if (require.main === module) void runMain(process.argv.slice(2));
