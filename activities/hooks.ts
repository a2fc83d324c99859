/**
 * Operator hooks: shell commands from the inventory run around every runbook.
 *   hooks:
 *     preFailover:  ["/usr/local/bin/page-oncall {cluster} {oldPrimary} {newPrimary}"]   # fail closed
 *     postFailover: ["/usr/local/bin/update-dns {cluster} {host} {port}"]               # fail open, reported
 *     preSwitchover / preRollingRestart                                                   # fail closed
 *     postPromotion (right after a promotion, any runbook) / postSwitchover / postRollingRestart   # fail open
 * {cluster} {oldPrimary} {newPrimary} {host} {port} (the new primary's address) are substituted and exported as
 * HANDOVER_CLUSTER, HANDOVER_OLD_PRIMARY, HANDOVER_NEW_PRIMARY, HANDOVER_PRIMARY_HOST, HANDOVER_PRIMARY_PORT.
 * Hooks run with a minimal environment (hookEnvironment): never the worker's credentials or codec key.
 * A pre-failover hook that exits non-zero aborts the failover before anything is changed (PreHookFailed); a
 * post-failover hook's failure is returned to the workflow, which reports it and goes on (PostHookFailed).
 */
import { execFile } from 'node:child_process';
import { ApplicationFailure } from '@temporalio/activity';
import { ErrorType } from '../core/errors';
import type { HookCounts, HookKind } from '../core/types';
import type { ClusterSpec, Inventory } from '../inventory/schema';
import { findCluster } from '../inventory/load';

export interface ShellResult {
  code: number;
  output: string;
  ms: number;
}

/** What a hook may inherit from the worker's environment besides the names its cluster lists. */
const BASE_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'];

/** The worker's secrets as environment variable names: the codec key and every credential reference of the inventory. */
function secretNames(inv: Inventory): Set<string> {
  const out = new Set(['HANDOVER_CODEC_KEY', 'HANDOVER_CODEC_KEY_FILE']);
  for (const c of inv.clusters)
    for (const ref of [c.credentials?.password, c.replicationCredentials?.password, c.sentinel?.password]) if (ref && 'env' in ref) out.add(ref.env);
  return out;
}

/**
 * A hook's whole environment: PATH, HOME, LANG, LC_ALL, TZ from the worker, the variables the cluster's
 * `hookEnv` names (never one that holds a secret), and the hook's HANDOVER_* placeholders. Nothing else of
 * the worker's environment reaches a hook script.
 */
export function hookEnvironment(inv: Inventory, c: ClusterSpec, vars: Record<string, string>, workerEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const secrets = secretNames(inv);
  const env: Record<string, string> = {};
  for (const k of [...BASE_ENV, ...(c.hookEnv ?? [])]) if (!secrets.has(k) && workerEnv[k] !== undefined) env[k] = workerEnv[k]!;
  if (!env.PATH) env.PATH = '/usr/local/bin:/usr/bin:/bin';
  return { ...env, ...vars };
}

/** Run `cmd` with /bin/sh -c in exactly `env`, bounded; never throws: the exit code and the output's tail are returned. */
export function runShell(cmd: string, env: Record<string, string>, timeoutMs = 30_000): Promise<ShellResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', cmd], { timeout: timeoutMs, env }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}`.trim().slice(-500), ms: Date.now() - t0 }),
    );
  });
}

export interface FailoverHookInput {
  cluster: string;
  kind: 'preFailover' | 'postFailover';
  /** Which hook of the list (0-based): one activity per hook, so each is its own visible step. */
  index: number;
  oldPrimary: string;
  newPrimary: string;
}

export interface FailoverHookResult {
  kind: 'preFailover' | 'postFailover';
  index: number;
  exitCode: number;
  ms: number;
  output: string;
  audit: string;
}

/** How many hooks of each kind the cluster lists (what a probe tells the workflow; the commands stay here). */
export function hookCounts(c: ClusterSpec): HookCounts {
  const h = c.hooks;
  return {
    preFailover: h?.preFailover.length ?? 0,
    postFailover: h?.postFailover.length ?? 0,
    preSwitchover: h?.preSwitchover.length ?? 0,
    postSwitchover: h?.postSwitchover.length ?? 0,
    postPromotion: h?.postPromotion.length ?? 0,
    preRollingRestart: h?.preRollingRestart.length ?? 0,
    postRollingRestart: h?.postRollingRestart.length ?? 0,
  };
}

export interface HookInput {
  cluster: string;
  kind: HookKind;
  /** Which hook of the list (0-based): one activity per hook, so each is its own visible step. */
  index: number;
  /** The primary before and after (the same node when the runbook does not move it, e.g. before a roll). */
  oldPrimary: string;
  newPrimary: string;
}

export interface HookResult {
  kind: HookKind;
  index: number;
  exitCode: number;
  ms: number;
  output: string;
  audit: string;
}

const RUNBOOK_OF: Record<HookKind, string> = {
  preFailover: 'failover',
  postFailover: 'failover',
  preSwitchover: 'switchover',
  postSwitchover: 'switchover',
  postPromotion: 'promotion',
  preRollingRestart: 'rolling restart',
  postRollingRestart: 'rolling restart',
};

/** Run hook `index` of `kind`: a pre-hook's non-zero exit is PreHookFailed (fail closed), a post-hook's PostHookFailed. */
async function runOne(inv: Inventory, input: HookInput, env?: NodeJS.ProcessEnv): Promise<HookResult> {
  const c = findCluster(inv, input.cluster);
  const cmdTemplate = c.hooks?.[input.kind]?.[input.index];
  if (!cmdTemplate) throw ApplicationFailure.create({ type: ErrorType.InvalidInventory, nonRetryable: true, message: `${input.cluster} has no ${input.kind} hook #${input.index + 1} (inventory changed during the run?)` });
  const p = c.nodes.find((n) => n.id === input.newPrimary);
  const vars: Record<string, string> = { cluster: c.name, oldPrimary: input.oldPrimary, newPrimary: input.newPrimary, host: p?.host ?? '', port: p ? String(p.port) : '' };
  const cmd = cmdTemplate.replace(/\{(cluster|oldPrimary|newPrimary|host|port)\}/g, (_m, k: string) => vars[k]);
  const r = await runShell(
    cmd,
    hookEnvironment(inv, c, { HANDOVER_CLUSTER: c.name, HANDOVER_OLD_PRIMARY: input.oldPrimary, HANDOVER_NEW_PRIMARY: input.newPrimary, HANDOVER_PRIMARY_HOST: vars.host, HANDOVER_PRIMARY_PORT: vars.port, HANDOVER_HOOK: input.kind }, env),
  );
  const what = `${input.kind} hook #${input.index + 1}`;
  const pre = input.kind.startsWith('pre');
  if (r.code !== 0) {
    const message = pre
      ? `${what} exited ${r.code} after ${r.ms} ms: ${r.output || '(no output)'}; the ${RUNBOOK_OF[input.kind]} was not started (pre-hooks fail closed)`
      : `${what} exited ${r.code} after ${r.ms} ms: ${r.output || '(no output)'}`;
    throw ApplicationFailure.create({ type: pre ? ErrorType.PreHookFailed : ErrorType.PostHookFailed, nonRetryable: true, message });
  }
  return { kind: input.kind, index: input.index, exitCode: 0, ms: r.ms, output: r.output, audit: `${what}: exit 0 after ${r.ms} ms${r.output ? `: ${r.output.slice(-200)}` : ''}` };
}

export function createHookActivities(deps: { inventory: () => Inventory; env?: NodeJS.ProcessEnv }) {
  return {
    /** Any operator hook (switchover, promotion, rolling restart; failovers use runFailoverHook). Runs the command once per attempt. */
    runHook: async (input: HookInput): Promise<HookResult> => runOne(deps.inventory(), input, deps.env),
    runFailoverHook: async (input: FailoverHookInput): Promise<FailoverHookResult> => {
      const r = await runOne(deps.inventory(), input, deps.env);
      return { ...r, kind: input.kind };
    },
  };
}
