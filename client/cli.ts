#!/usr/bin/env node
/** handover: the CLI. Each command lives in client/commands/<name>.ts and exports runX() for tests. */
import { Command, Option } from 'commander';
import { processIO } from './common';
import { runSwitchover } from './commands/switchover';
import { runRollingRestart } from './commands/rolling-restart';
import { runFailover } from './commands/failover';
import { runMonitor } from './commands/monitor';
import { runCodecServer } from './commands/codec-server';
import { runBackupList, runBackupProvisionReplica, runBackupRestore, runBackupRun, runBackupSchedule, runBackupVerify } from './commands/backup';
import { runApprove } from './commands/approve';
import { runAbort } from './commands/abort';
import { runPlan } from './commands/plan';
import { runStatus } from './commands/status';
import { runHistory } from './commands/history';
import { runDoctor } from './commands/doctor';

function common(cmd: Command): Command {
  return cmd
    .option('--address <host:port>', 'Temporal frontend (env HANDOVER_TEMPORAL_ADDRESS, then TEMPORAL_ADDRESS / the Temporal config profile; default 127.0.0.1:7233)')
    .option('--namespace <ns>', 'Temporal namespace (env HANDOVER_NAMESPACE, then TEMPORAL_NAMESPACE / the profile; default "default")')
    .option('--profile <name>', "profile of Temporal's config file (env TEMPORAL_PROFILE; TLS, mTLS and API key come from it or TEMPORAL_TLS_* / TEMPORAL_API_KEY)")
    .option('--inventory <file>', 'inventory used to check names before starting (env HANDOVER_INVENTORY, default ./inventory.yaml)')
    .option('--json', 'machine-readable output', false)
    .option('--task-queue <name>', 'task queue the workers poll (env HANDOVER_TASK_QUEUE, default "handover")');
}

export function buildProgram(onExit: (code: number) => void = (c) => (process.exitCode = c)): Command {
  const program = new Command('handover').description('Durable database runbooks on Temporal').showHelpAfterError();
  common(
    program
      .command('switchover')
      .description('planned switchover: hand the primary role to a caught-up replica, losing no acknowledged write')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--to <node>', 'replica to promote (default: the best candidate)')
      .option('--wait', 'follow the run and exit non-zero if it fails', false)
      .option('--require-approval', 'after probe and decide, publish the plan and wait for "handover approve" before changing anything', false)
      .option('--approval-timeout <duration>', 'with --require-approval: end with nothing changed if not approved within this (e.g. 90s, 30m, 2h; default 30m)')
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
      .option('--restart-all', 'restart every node once even when nothing changes (OS patching), replicas first, the primary handed over', false)
      .option('--wait', 'follow the run and exit non-zero if it fails', false)
      .option('--require-approval', 'after probe and decide, publish the plan and wait for "handover approve" before changing anything', false)
      .option('--approval-timeout <duration>', 'with --require-approval: end with nothing changed if not approved within this (e.g. 90s, 30m, 2h; default 30m)')
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
  const backup = program.command('backup').description('verified backups: run, list, verify, restore, schedule');
  common(
    backup
      .command('run')
      .description('take a backup from a healthy in-sync replica, verify it in a scratch server, prune to --keep')
      .requiredOption('--cluster <name>', 'cluster from the inventory')
      .option('--keep <n>', "verified backups to keep (default: the inventory's backup.keep, else 7)")
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
      .requiredOption('--id <id>', 'backup ID')
      .option('--to <node>', 'an empty node of the cluster (refused if it holds data)')
      .option('--scratch', 'a fresh scratch server on a free loopback port, left running', false),
  ).action(async (opts) => onExit((await runBackupRestore(opts, processIO)).exitCode));
  common(
    backup
      .command('schedule')
      .description('create (idempotent), update, pause, unpause, trigger or delete the cluster\'s backup schedule (Temporal Schedule, overlap skip)')
      .requiredOption('--cluster <name>', 'cluster')
      .option('--cron <expr>', 'cron expression, e.g. "0 3 * * *"')
      .option('--keep <n>', 'verified backups to keep')
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
      .description("each cluster's topology, primary, replicas' link and lag (read from the databases), and the runbook running on it")
      .option('--cluster <name>', 'only this cluster (default: every cluster in the inventory)'),
  ).action(async (opts) => onExit((await runStatus(opts, processIO)).exitCode));
  common(
    program
      .command('history')
      .description('past runs from Temporal visibility, newest first: runbook, cluster, status, times, last phase')
      .option('--cluster <name>', 'only this cluster')
      .option('--limit <n>', 'at most this many runs', '20'),
  ).action(async (opts) => onExit((await runHistory(opts, processIO)).exitCode));
  common(
    program
      .command('doctor')
      .description('check this installation: Temporal (address, TLS, namespace, search attributes), a worker polling, every node reachable with working credentials and sufficient privileges, the backup binaries')
      .option('--cluster <name>', 'only this cluster (default: every cluster in the inventory)'),
  ).action(async (opts) => onExit((await runDoctor(opts, processIO)).exitCode));
  program
    .command('codec-server')
    .description('serve the payload codec (HANDOVER_CODEC_KEY) to the Temporal UI, so encrypted runs can be read there')
    .option('--port <n>', 'port to listen on', '8081')
    .option('--host <addr>', 'address to bind (keep it loopback: whoever reaches it can decrypt)', '127.0.0.1')
    .option('--origin <url...>', 'UI origins allowed by CORS', ['http://127.0.0.1:8233', 'http://localhost:8233'])
    .action(async (opts) => {
      const { exitCode } = await runCodecServer(opts, processIO);
      if (exitCode !== 0) onExit(exitCode); // otherwise it serves until interrupted
    });
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((e) => {
      console.error(`handover: ${(e as Error).message}`);
      process.exitCode = 1;
    });
}
