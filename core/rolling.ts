/**
 * What every engine's rolling restart shares: the desired spec, how a running version is matched against the
 * wanted one, and the one next action the workflow asks the engine's pure decision for (core/<engine>/rolling.ts).
 */

export interface DesiredSpec {
  /** Config values every node must run with (Redis CONFIG GET name -> value; MySQL global variables). */
  config: Record<string, string>;
  /** Version every node must run, matched against "redis 7.0.15" / "valkey 9.1.2" / "mariadb 10.11.14" (e.g. "7.0", "valkey 9.1"). */
  version?: string;
  /**
   * Restart every node once, nothing changed (OS patching, a new kernel or library): a node whose process
   * started before this moment (epoch ms, frozen when the roll starts) is stale.
   */
  restartStartedBefore?: number;
  /** --reason: why every node is restarted once (OS patching, a new kernel); audit and report only. */
  reason?: string;
  /**
   * The restart token's second half, kept in the workflow's state (rebuilt from history on replay, so a roll
   * resumed by another worker sees it): the nodes this roll has restarted. Such a node is never due again
   * under `restartStartedBefore`, whatever its start time reads (a server clock behind the worker's, a start
   * time unknown).
   */
  restarted?: string[];
}

/**
 * Start times have whole-second resolution (from uptime): a process that started within this of the roll's
 * start counts as started after it, so a node the roll itself restarted is never taken for stale again.
 */
const START_SLACK_MS = 1_500;

/** Why a node is stale only because the roll restarts every node once, or undefined. */
export function whyRestartDue(startedAtMs: number | undefined, desired: DesiredSpec, node?: string): string | undefined {
  if (desired.restartStartedBefore === undefined) return undefined;
  if (node !== undefined && desired.restarted?.includes(node)) return undefined;
  if (startedAtMs === undefined) return 'start time unknown; restart requested';
  return startedAtMs < desired.restartStartedBefore - START_SLACK_MS ? `running since ${new Date(startedAtMs).toISOString()}, before this roll (restart requested)` : undefined;
}

/** The restart token a roll's report and audit show: the frozen start and the reason. */
export function restartTokenOf(desired: DesiredSpec): string | undefined {
  if (desired.restartStartedBefore === undefined) return undefined;
  return `restart every node started before ${new Date(desired.restartStartedBefore).toISOString()}${desired.reason ? ` (${desired.reason})` : ''}`;
}

/** Whether a running "<flavor> <x.y.z>" matches the wanted "x.y" or "<flavor> x.y" (a prefix at a dot). */
export function versionMatches(running: string | undefined, wanted: string): boolean {
  if (!running) return false;
  const [flavor, num] = running.split(' ');
  const w = wanted.trim();
  if (w.includes(' ')) {
    const [wf, wn] = w.split(' ');
    return wf === flavor && (num === wn || num.startsWith(wn + '.'));
  }
  return num === w || num.startsWith(w + '.');
}

/** The next step of a rolling restart, as the engine's decision returns it. */
export type RollingAction =
  | { kind: 'restart'; node: string; role: 'replica'; runId: string; primary: string; reason: string }
  | { kind: 'handover'; from: string; to: string; reason: string }
  | { kind: 'done' }
  | { kind: 'refuse'; code: string; reason: string };

/** One line naming a rolling action (what an approval approved as the first action). */
export function describeAction(a: RollingAction): string {
  return a.kind === 'restart' ? `restart ${a.node}` : a.kind === 'handover' ? `handover ${a.from} -> ${a.to}` : a.kind;
}
