/**
 * Unplanned failover of a MySQL/MariaDB replication cluster (GTID) whose primary died.
 *
 *   probe -> confirm (N DeadMaster rounds) -> choose -> relay-apply (bounded) -> | promote -> routing hook
 *   -> repoint followers -> fence/rejoin old primary (if it answers) -> verify
 *                                                                      ^ point of no return: promote
 *
 * Confirmation: the primary unreachable AND every reachable replica's IO thread down (Slave_IO_Running not
 * Yes), for `probesToConfirm` consecutive probes `probeIntervalMs` apart (skipped with force, or when the
 * monitor already confirmed). The candidate is the replica that received the most (Gtid_IO_Pos); it must apply
 * all of it (MASTER_GTID_WAIT, at most catchUpTimeoutMs) before it takes writes; a timeout refuses with
 * nothing changed. The report states the data-loss window: the old primary's GTID position as the monitor
 * last saw it versus the promoted position. The routing hook is the post-failover hook: it fails open and is
 * reported. A returning old primary is made read-only first, then a replica; with errant GTIDs it stays
 * read-only and is flagged.
 */
import { ApplicationFailure, CancellationScope, patched, sleep } from '@temporalio/workflow';
import { describeWindow } from '../../core/maintenance';
import { PATCH_HONOUR_MAINTENANCE, openWindows } from '../maintenance';
import { confirmedDead, type Verdict } from '../../core/failover';
import { chooseMysqlFailoverCandidate, mysqlDataLoss, mysqlDeadMasterRound, type MysqlFailoverChoice, type MysqlFailoverProbe } from '../../core/mysql/failover';
import { mysqlCandidateLostData, mysqlPrimaryReset } from '../../core/mysql/empty-primary';
import { ActivityFailure } from '@temporalio/common';
import { mysqlLossWindow, lossReportFields, type LossReportFields } from '../../core/data-loss';
import { ErrorType } from '../../core/errors';
import { appliedPos, gtidIncludes } from '../../core/mysql/decide';
import type { EnsureMysqlRejoinedResult, VerifyMysqlFailoverResult } from '../../activities/mysql/failover';
import { hookCount, runPostFailoverHooks, runPostHooks, runPreFailoverHooks, type HookOutcome } from '../hooks';
import { mutate, probe, wait } from '../profiles';
import { Runbook, messageOf } from '../runbook';
import { abortWatch, abortedFailure, approvalGate, isCancellation } from '../approval';
import type { FailoverInput, FailoverPlanReport } from '../contracts';
import { mysqlClusterStatus } from '../../core/status';
import { standingAfterVerify, standingLine, standingOf, type ClusterStanding, type NotFollowing } from '../../core/standing';

/**
 * Patch marker: a verification that fails after the promotion looks once at where the cluster stands and ends
 * HandoverIncomplete (exit 1) saying so. Runs recorded before this let the verification's failure through.
 */
export const PATCH_MYSQL_FAILOVER_ENDS_WITH_STANDING = 'failover-ends-with-standing';

/**
 * From here on the failover re-checks its candidate's position against the verdict before it waits for it and
 * before it promotes it (the empty-primary guard): a candidate that went back (wiped, restored, reset) is not
 * promoted; another replica that still holds the data is, or the run stops saying where the cluster stands.
 */
export const PATCH_MYSQL_RECHECK_CANDIDATE = 'mysql-failover-recheck-candidate';

/**
 * A run not started by the monitor whose primary answers but came back EMPTY or reset (its replicas hold
 * transactions it lacks, the primary read after them in this one probe: core/mysql/empty-primary.ts): with
 * --force the primary is kept out and a replica holding the data promoted, as the monitor's guard does. Runs
 * recorded before this refused ("the primary answers").
 */
export const PATCH_MYSQL_FORCE_EMPTY_PRIMARY = 'mysql-failover-force-empty-primary';

export interface MysqlFailoverReport {
  runbook: 'failover';
  engine: 'mysql';
  cluster: string;
  oldPrimary: string;
  newPrimary: string;
  reasons: string[];
  /**
   * transactions: certainly lost (a lower bound: the primary was seen with them, the promoted node lacks them);
   * what it committed after lastSeenAt is not known (unobservedMs); `summary` says both. Undefined: never seen.
   */
  dataLossWindow: { lastKnownPrimaryGtid?: string; promotedGtid: string; transactions?: number; missing?: string; note: string; bytes?: undefined } & LossReportFields;
  /** How long the candidate took to apply its relay log before promotion. */
  relayApplyMs: number;
  fenced: 'now' | 'flagged' | 'pending: the old primary is down; the monitor (or a re-run) fences it when it returns';
  /** The old primary came back EMPTY or reset (the monitor's empty-primary guard): kept out, read-only, flagged. */
  returnedEmpty?: string;
  errantGtids?: string[];
  /** Live replicas that could not be made to follow the new primary (reported; the failover stands). */
  notFollowing?: { node: string; reason: string }[];
  routing?: { ran: boolean; ok: boolean; detail: string };
  /** Operator hooks that ran (inventory `hooks:`): pre-failover ones all succeeded, post-failover ones may not have. */
  hooks?: HookOutcome[];
  verify: VerifyMysqlFailoverResult;
  steps: { step: string; ms: number }[];
  audit: string[];
  approval?: { approver: string; planHash: string };
  /** An abort arrived after the point of no return: the run finished forward. */
  abortRequested?: boolean;
  /** Where the cluster stands at the end: the new primary, who follows it, who does not and why (core/standing.ts). */
  standing?: ClusterStanding;
}

export async function mysqlFailover(input: FailoverInput): Promise<MysqlFailoverReport | FailoverPlanReport> {
  const { cluster } = input;
  const rb = new Runbook('failover', cluster);
  const startedAt = Date.now();
  if (input.requestedBy) rb.audit('start', `requested by ${input.requestedBy}${input.force ? ' (--force)' : ''}`);
  const describe = (p: { nodes: { node: string; reachable: boolean; role?: string; readOnly?: boolean; ioRunning?: string; gtidBinlogPos?: string }[] }) =>
    `saw ${p.nodes.map((n) => (n.reachable ? `${n.node}=${n.role}${n.readOnly ? '(ro)' : '(rw)'}@${n.gtidBinlogPos || 'empty'}${n.role === 'replica' ? ` io=${n.ioRunning}` : ''}` : `${n.node}=unreachable`)).join(' ')}`;
  // A monitor's detection loop hands over the probe of its confirming round: decided from it, nothing probed again.
  const fromMonitor = input.confirmed?.probe.engine === 'mysql' ? input.confirmed.probe : undefined;
  if (fromMonitor) rb.audit('probe', `the monitor's confirming round at ${fromMonitor.probedAt} (${input.confirmed!.reason}): ${describe(fromMonitor)}; not probed again`);
  let probed = fromMonitor ?? (await rb.step('probe', `probe every node of ${cluster}`, () => probe.probeMysqlFailover.executeWithOptions({ summary: `probe every node of ${cluster}` }, [{ cluster }]), describe));
  // A refusal changed nothing: where the cluster stands is what the last probe saw.
  const refuse = (message: string): never => {
    rb.skipRemaining('refused');
    const s = standingOf(mysqlClusterStatus(cluster, probed.nodes));
    throw ApplicationFailure.create({ message: `${message}; nothing was changed. Where it stands: ${standingLine(s)}`, type: ErrorType.PreconditionFailed, nonRetryable: true, details: [{ standing: s }] });
  };
  const pointedAt = probed.nodes.filter((n) => n.reachable && n.role === 'replica' && n.sourceNode).map((n) => n.sourceNode!);
  const deadPrimary = input.lastKnown?.primary ?? [...pointedAt].sort((a, b) => pointedAt.filter((x) => x === b).length - pointedAt.filter((x) => x === a).length)[0];
  if (!deadPrimary) refuse('no replica points at a primary: cannot tell which primary died');
  // A primary that came back EMPTY or reset (the monitor's empty-primary guard) answers as primary: replaced all the same.
  let returnedEmpty = fromMonitor ? input.confirmed?.returnedEmpty : undefined;
  let emptyReason = returnedEmpty ? input.confirmed!.reason : undefined;
  let emptyHeld = input.lastKnown?.gtid;
  if (returnedEmpty) rb.audit('empty-primary', `${returnedEmpty.node} answers again but came back empty or reset: not followed; ${emptyReason}`);
  // Started by hand (no monitor verdict): a primary that answers but came back empty or reset shows in this probe
  // alone (read after its replicas, it lacks what they received from it). Without --force: refused, saying how.
  if (!fromMonitor && probed.nodes.some((n) => n.node === deadPrimary && n.reachable && n.role === 'primary')) {
    const reset = mysqlPrimaryReset(undefined, probed.nodes, deadPrimary, Date.now(), undefined, { primaryReadLast: true });
    const gone = reset && `the primary ${deadPrimary} answers but came back EMPTY or reset: it holds ${reset.after.gtid || 'nothing'}, its replicas hold ${reset.before.gtid || 'nothing'} from it`;
    if (reset && !reset.holders.length) refuse(`${gone}; no replica that may be promoted holds the data: nothing to fail over to`);
    if (reset && !input.force) refuse(`${gone}; re-run with --force to keep ${deadPrimary} out (read-only, flagged) and promote the best of ${reset.holders.join(', ')}`);
    if (reset && patched(PATCH_MYSQL_FORCE_EMPTY_PRIMARY)) {
      returnedEmpty = { node: deadPrimary };
      emptyReason = reset.text;
      emptyHeld ??= reset.before.gtid;
      rb.audit('empty-primary', `${deadPrimary} answers but came back empty or reset (--force): not followed; ${reset.text}`);
    }
  }
  const live = probed.nodes.filter((n) => n.reachable && n.role === 'primary' && n.node !== returnedEmpty?.node);
  if (live.some((n) => n.node === deadPrimary)) refuse(`the primary ${deadPrimary} answers: use switchover for a planned change`);
  const writable = probed.nodes.filter((n) => n.reachable && n.readOnly === false && n.node !== returnedEmpty?.node);
  if (writable.length) refuse(`${writable.map((n) => n.node).join(', ')} already take writes: the failover seems done; check with the monitor`);

  if (!input.force && !input.confirmedBy) {
    const need = probed.policy.probesToConfirm;
    const rounds: Verdict[] = [mysqlDeadMasterRound(probed.nodes, deadPrimary)];
    await rb.step('confirm', `confirm ${deadPrimary} dead: ${need} consecutive probes ${probed.policy.probeIntervalMs} ms apart`, async () => {
      while (!confirmedDead(rounds, need)) {
        if (!rounds[rounds.length - 1].dead) refuse(`${deadPrimary} is not confirmed dead: ${rounds[rounds.length - 1].reason}`);
        await sleep(probed.policy.probeIntervalMs);
        probed = await probe.probeMysqlFailover.executeWithOptions({ summary: `probe ${cluster} again` }, [{ cluster }]);
        rounds.push(mysqlDeadMasterRound(probed.nodes, deadPrimary));
      }
      return { audit: `${need} consecutive rounds: ${rounds[rounds.length - 1].reason}` };
    });
  }

  // Nodes in maintenance (handover maintenance) are not promoted: treated as promotion never for this choice.
  if (patched(PATCH_HONOUR_MAINTENANCE)) {
    const held = (await openWindows(cluster, (why) => rb.audit('maintenance', `could not read the maintenance windows (${why}): none excluded`))).filter((w) => w.node !== deadPrimary);
    if (held.length) {
      rb.audit('maintenance', `not candidates: ${held.map(describeWindow).join('; ')}`);
      probed = { ...probed, nodes: probed.nodes.map((n) => (held.some((w) => w.node === n.node) ? { ...n, promotion: 'never' as const } : n)) };
    }
  }
  const chosen = chooseMysqlFailoverCandidate(probed.nodes, deadPrimary);
  if ('refusal' in chosen) refuse(chosen.refusal);
  let { candidate, candidateReceived, followers, reasons } = chosen as MysqlFailoverChoice;
  const { rejected } = chosen as MysqlFailoverChoice;
  rb.audit('decide', `chose ${candidate}: ${reasons.join('; ')}${rejected.length ? `; not considered: ${rejected.map((r) => `${r.node} ${r.reason}`).join('; ')}` : ''}`);

  // Plan and approval (only when asked for: a monitor-started failover has neither).
  let approval: MysqlFailoverReport['approval'];
  if (input.dryRun || input.requireApproval) {
    const pre = probed.hooks?.preFailover ?? 0;
    const post = probed.hooks?.postFailover ?? 0;
    const plan = [
      `wait for ${candidate} to apply its relay log up to ${candidateReceived || 'empty'} (at most ${probed.policy.catchUpTimeoutMs} ms)`,
      ...(pre ? [`run ${pre} pre-failover hook(s); any failure stops the run with nothing changed`] : []),
      ...(returnedEmpty ? [`keep ${returnedEmpty.node} out: read_only ON, its sessions ended, not made a replica (it came back empty or reset), flagged`] : []),
      `promote ${candidate}: stop and reset replication, read_only OFF (point of no return)`,
      ...(probed.routingHook ? [`run the routing hook to move the writer endpoint to ${candidate}`] : []),
      ...(hookCount(probed.hooks, 'postPromotion') ? [`run ${hookCount(probed.hooks, 'postPromotion')} post-promotion hook(s) (failures reported)`] : []),
      ...followers.filter((f) => f !== deadPrimary && probed.nodes.find((n) => n.node === f)?.reachable).map((f) => `make ${f} a replica of ${candidate}`),
      `fence ${deadPrimary} if it answers: read_only ON, then a replica of ${candidate} (errant GTIDs: left read-only, flagged)`,
      `verify ${candidate} the only writable node, live replicas running from it`,
      ...(post ? [`run ${post} post-failover hook(s) (failures reported)`] : []),
    ];
    if (input.dryRun) {
      rb.skipRemaining('dry run');
      rb.setPhase('planned');
      return { runbook: 'failover', engine: 'mysql', dryRun: true, cluster, oldPrimary: deadPrimary, newPrimary: candidate, reasons, plan, steps: rb.timings(), audit: rb.progress.audit };
    }
    approval = await approvalGate(rb, input, { summary: `fail ${cluster} over from ${deadPrimary} (dead) to ${candidate}: ${reasons.join('; ')}`, plan, hashOf: { runbook: 'failover', cluster, deadPrimary, candidate, plan } }, () => abortedFailure(cluster, 'failover', 'nothing was promoted'));
  }
  const abort = abortWatch(rb);
  const stopIfAborted = (e?: unknown) => {
    if (e !== undefined ? !isCancellation(e) : !abort.requested()) return;
    rb.skipRemaining('aborted');
    rb.setPhase('aborted');
    throw abortedFailure(cluster, 'failover', 'nothing was promoted');
  };

  // The empty node first: read-only, its sessions ended (the promotion refuses while another node takes writes).
  let keptOut: string | undefined;
  if (returnedEmpty && patched(PATCH_MYSQL_RECHECK_CANDIDATE)) {
    try {
      const k = await rb.step(`keep ${returnedEmpty.node} out`, `make ${returnedEmpty.node} read-only: it came back empty or reset`, () =>
        mutate.ensureMysqlKeptOut.executeWithOptions({ summary: `keep ${returnedEmpty.node} out` }, [{ cluster, node: returnedEmpty.node, reason: emptyReason! }]),
      );
      keptOut = k.gtid;
    } catch (e) {
      stopIfAborted(e);
      rb.audit('empty-primary', `${returnedEmpty.node} could not be made read-only (${messageOf(e)}); the promotion refuses while it takes writes`);
    }
  }

  // The empty-primary guard: each candidate's position is checked against the verdict before it is waited for and
  // before it is promoted; one that went back is replaced by the next replica that still holds the data.
  const guard = patched(PATCH_MYSQL_RECHECK_CANDIDATE);
  const verdictNode = (node: string) => probed.nodes.find((n) => n.node === node && n.reachable);
  const appliedAtVerdict = (node: string) => {
    const v = verdictNode(node);
    return guard && v ? appliedPos(v) : undefined;
  };
  const tried: string[] = [];
  const resynced = (e: unknown) => guard && e instanceof ActivityFailure && e.cause instanceof ApplicationFailure && e.cause.type === ErrorType.CandidateResynced;
  const describeNow = (p: MysqlFailoverProbe) =>
    p.nodes.map((n) => (n.reachable ? `${n.node} ${n.role === 'replica' ? `replica of ${n.sourceNode ?? n.sourceAddress}` : 'replicating from nobody'}${n.readOnly ? ' read-only' : ' WRITABLE'} at ${appliedPos(n) || 'empty'}` : `${n.node} unreachable`)).join('; ');
  /** The candidate lost data since the verdict: choose the next replica that still holds it, or stop and say where the cluster stands. */
  const rechoose = async (e: unknown) => {
    tried.push(candidate);
    rb.audit('empty-primary', messageOf(e));
    const now = await rb.step('re-probe', `probe ${cluster}: which replica still holds the data`, () => probe.probeMysqlFailover.executeWithOptions({ summary: `probe ${cluster} again` }, [{ cluster }]), describe);
    const promotion = (node: string) => probed.nodes.find((n) => n.node === node)?.promotion;
    const holding = now.nodes
      .filter((n) => !tried.includes(n.node) && n.node !== returnedEmpty?.node && verdictNode(n.node)?.role === 'replica' && n.reachable && n.role === 'replica' && !mysqlCandidateLostData(n.node, appliedAtVerdict(n.node), n))
      .map((n) => ({ ...n, promotion: promotion(n.node) ?? n.promotion }));
    const next = chooseMysqlFailoverCandidate(holding, deadPrimary);
    if ('refusal' in next) {
      rb.skipRemaining('refused');
      throw ApplicationFailure.create({
        message: `no replica still holds the data of ${deadPrimary}: ${tried.join(', ')} lost data since the verdict (${tried.map((t) => `${t} had applied ${appliedAtVerdict(t) || 'empty'}`).join(', ')}) and no other replica holds it${keptOut !== undefined ? `; ${returnedEmpty!.node} (back empty or reset) was made read-only` : ''}; nothing was promoted; the cluster stands: ${describeNow(now)}`,
        type: ErrorType.CandidateResynced,
        nonRetryable: true,
      });
    }
    candidate = next.candidate;
    candidateReceived = next.candidateReceived;
    reasons = [...next.reasons, `${tried.join(', ')} lost data since the verdict (empty-primary guard)`];
    followers = probed.nodes
      .filter((n) => n.node !== candidate && n.node !== deadPrimary)
      .map((n) => n.node)
      .sort();
    hookRun = { cluster, oldPrimary: deadPrimary, newPrimary: candidate };
    rb.audit('decide', `chose ${candidate} instead: ${reasons.join('; ')}`);
  };

  // The monitor's confirming round already shows the candidate applied all it received (the dead primary sends
  // nothing more): no wait. The promotion itself refuses a node lacking `candidateReceived` (mustInclude).
  const seenApplied = fromMonitor ? probed.nodes.find((n) => n.node === candidate) : undefined;
  const appliedAlready = seenApplied && gtidIncludes(appliedPos(seenApplied), candidateReceived) ? appliedPos(seenApplied) : undefined;
  if (appliedAlready !== undefined) rb.audit('relay-apply', `${candidate} had applied ${appliedAlready || 'empty'}, all it received (${candidateReceived || 'empty'}), in the monitor's confirming round: no wait`);
  const relayApply = (name: string) =>
    rb.step(name, `wait for ${candidate} to apply its relay log up to ${candidateReceived || 'empty'} (at most ${probed.policy.catchUpTimeoutMs} ms)`, () =>
      wait.waitMysqlRelayApplied.executeWithOptions({ summary: `wait for ${candidate} to apply its relay log` }, [
        { cluster, node: candidate, position: candidateReceived, timeoutMs: probed.policy.catchUpTimeoutMs, ...(guard ? { appliedAtVerdict: appliedAtVerdict(candidate) } : {}) },
      ]),
    );
  /** The relay-apply wait, for the candidate and, when it lost data, for each one chosen after it. */
  const applyUntilOne = async (first: boolean): Promise<{ applied: string; waitedMs: number; audit: string }> => {
    for (;;) {
      if (first && appliedAlready !== undefined) return { applied: appliedAlready, waitedMs: 0, audit: '' };
      try {
        return await relayApply(first ? 'relay-apply' : `relay-apply ${candidate}`);
      } catch (e) {
        if (!resynced(e)) throw e;
        await rechoose(e);
        first = false;
      }
    }
  };
  let applied = await applyUntilOne(true).catch((e) => {
    stopIfAborted(e);
    rb.skipRemaining('candidate did not apply its relay log');
    throw e;
  });

  let hookRun = { cluster, oldPrimary: deadPrimary, newPrimary: candidate };
  const preHooks = await runPreFailoverHooks(rb, probed.hooks?.preFailover ?? 0, hookRun).catch((e) => {
    stopIfAborted(e);
    throw e;
  });
  stopIfAborted();

  // From the promotion on, an abort no longer interrupts: the run finishes forward.
  return CancellationScope.nonCancellable(async (): Promise<MysqlFailoverReport> => {
    // ---- POINT OF NO RETURN: the candidate stops replicating and takes writes ----
    rb.passPointOfNoReturn();
    for (;;) {
      try {
        await rb.step(`promote ${candidate}`, `promote ${candidate}: stop and reset replication, read_only OFF`, () =>
          mutate.ensureMysqlPrimary.executeWithOptions({ summary: `promote ${candidate}` }, [{ cluster, node: candidate, mustInclude: candidateReceived, ...(guard ? { appliedAtVerdict: appliedAtVerdict(candidate) } : {}) }]),
        );
        break;
      } catch (e) {
        if (!resynced(e)) throw e;
        await rechoose(e);
        applied = await applyUntilOne(false);
      }
    }
    const promotedGtid = applied.applied;

    // Post-failover hook: fails open, reported.
    let routing: MysqlFailoverReport['routing'];
    if (probed.routingHook) {
      try {
        const h = await rb.step('routing', `run the routing hook to move the writer endpoint to ${candidate}`, () =>
          mutate.runRoutingHook.executeWithOptions({ summary: `routing hook -> ${candidate}` }, [{ cluster, primary: candidate, oldPrimary: deadPrimary }]),
        );
        routing = { ran: h.ran, ok: true, detail: h.audit };
      } catch (err) {
        routing = { ran: true, ok: false, detail: messageOf(err) };
        rb.audit('routing', `ROUTING HOOK FAILED (the failover goes on; move the writer endpoint to ${candidate} by hand): ${messageOf(err)}`);
      }
    }
    // Post-promotion hooks (fail open): the writer endpoint moves as soon as there is a new primary.
    const promotionHooks = await runPostHooks(rb, 'postPromotion', hookCount(probed.hooks, 'postPromotion'), hookRun);

    const alive = (node: string) => probed.nodes.find((n) => n.node === node)?.reachable;
    const skipped: string[] = [];
    const notFollowing: { node: string; reason: string }[] = [];
    for (const node of followers.filter((f) => f !== deadPrimary)) {
      if (!alive(node)) {
        skipped.push(node);
        continue;
      }
      // Past the point of no return a replica that cannot follow (errant GTIDs, broken replication) does not undo
      // the failover: it is reported, left as it is (read-only), and not verified.
      try {
        await rb.step(`repoint ${node}`, `make ${node} a replica of ${candidate}`, () =>
          mutate.ensureMysqlReplicaOf.executeWithOptions({ summary: `make ${node} a replica of ${candidate}` }, [{ cluster, node, primary: candidate }]),
        );
      } catch (err) {
        notFollowing.push({ node, reason: messageOf(err) });
        rb.audit(`repoint ${node}`, `NOT FOLLOWING ${candidate} (left as it is; resolve by hand): ${messageOf(err)}`);
      }
    }

    let fenced: MysqlFailoverReport['fenced'] = 'pending: the old primary is down; the monitor (or a re-run) fences it when it returns';
    let rejoin: EnsureMysqlRejoinedResult | undefined;
    if (guard && returnedEmpty?.node === deadPrimary) {
      // Back empty or reset: never made a replica from its own position (it would skip what it lost); flagged so
      // that nothing rejoins it automatically: re-clone it (handover backup provision-replica).
      fenced = 'flagged';
      const own = keptOut ? keptOut.split(',') : [];
      if (keptOut === undefined) rb.audit(`fence ${deadPrimary}`, `WARNING: ${deadPrimary} could not be made read-only before the promotion (see above): check it takes no writes`);
      rejoin = { outcome: 'flagged', errantGtids: [`reset: came back empty or reset (held ${emptyHeld || '?'} before); re-clone it`, ...own], wasWritable: false, audit: '' };
      rb.audit(`fence ${deadPrimary}`, `${deadPrimary} came back empty or reset: kept out (read-only, not replicating), FLAGGED; re-clone it (handover backup provision-replica --node ${deadPrimary}): the monitor clears the flag once it replicates from the primary again`);
    } else try {
      rejoin = await rb.step(`fence ${deadPrimary}`, `if ${deadPrimary} answers: read_only ON, then a replica of ${candidate} (errant GTIDs: left read-only, flagged)`, () =>
        probe.ensureMysqlRejoined.executeWithOptions({ summary: `fence ${deadPrimary}`, retry: { maximumAttempts: 1 } }, [{ cluster, node: deadPrimary, primary: candidate, promotedGtid }]),
      );
      fenced = rejoin.outcome === 'flagged' ? 'flagged' : 'now';
    } catch {
      rb.audit('fence', `${deadPrimary} does not answer; fencing is left to the monitor`);
    }
    const ignore = [...skipped, ...notFollowing.map((n) => n.node), ...(fenced === 'now' ? [] : [deadPrimary])];
    let verify: VerifyMysqlFailoverResult;
    try {
      verify = await rb.step('verify', `verify ${candidate} the only writable node, live replicas running from it`, () =>
        wait.verifyMysqlFailover.executeWithOptions({ summary: `verify ${candidate} primary` }, [{ cluster, primary: candidate, ignore, timeoutMs: probed.policy.verifyTimeoutMs }]),
      );
    } catch (err) {
      if (!patched(PATCH_MYSQL_FAILOVER_ENDS_WITH_STANDING)) throw err;
      // Past the point of no return: say where the cluster stands (one look), never a bare verification failure.
      let st: ClusterStanding | undefined;
      try {
        const now = await rb.step('standing', `see where ${cluster} stands`, () => probe.probeMysqlFailover.executeWithOptions({ summary: `see where ${cluster} stands` }, [{ cluster }]), () => undefined);
        st = standingOf(mysqlClusterStatus(cluster, now.nodes), { expected: candidate, previousPrimary: deadPrimary });
        rb.audit('standing', standingLine(st));
      } catch {
        st = undefined;
      }
      rb.setPhase('done-incomplete');
      throw ApplicationFailure.create({
        type: ErrorType.HandoverIncomplete,
        nonRetryable: true,
        message: `failover of ${cluster} passed the point of no return (${candidate} promoted and writable, ${deadPrimary} dead): verification failed: ${messageOf(err)}${st ? `. Where it stands: ${standingLine(st)}` : ''}`,
        ...(st ? { details: [{ standing: st }] } : {}),
      });
    }
    // Where it stands, from what verification saw (no extra probe): the nodes left out say why.
    const left: NotFollowing[] = [
      ...skipped.map((node) => ({ node, reason: 'unreachable at the failover: repoint it when it returns' })),
      ...notFollowing,
      ...(fenced === 'now'
        ? []
        : [{ node: deadPrimary, reason: fenced === 'flagged' ? `the old primary: left read-only, errant GTIDs ${rejoin?.errantGtids.join(',') ?? ''}` : 'the old primary is down: the monitor (or a re-run) fences it when it returns' }]),
    ];
    const standing = standingAfterVerify(candidate, deadPrimary, verify.nodes.map((n) => n.node), left);
    rb.audit('standing', standingLine(standing));
    const hooks = [...preHooks, ...promotionHooks, ...(await runPostFailoverHooks(rb, probed.hooks?.postFailover ?? 0, hookRun))];
    rb.setPhase(fenced === 'flagged' ? 'done-old-primary-flagged' : hooks.some((h) => !h.ok) ? 'done-post-hook-failed' : notFollowing.length ? 'done-replicas-not-following' : routing && !routing.ok ? 'done-routing-failed' : 'done');
    const loss = mysqlDataLoss(input.lastKnown?.gtid, promotedGtid);
    const seen = input.lastKnown?.gtid === undefined ? undefined : { position: input.lastKnown.gtid, at: input.lastKnown.seenAt };
    const honest = lossReportFields(mysqlLossWindow(deadPrimary, promotedGtid, { lastSight: seen, deadSince: input.deadSince, confirmedAt: startedAt }));
    return {
      runbook: 'failover',
      engine: 'mysql',
      cluster,
      oldPrimary: deadPrimary,
      newPrimary: candidate,
      reasons,
      dataLossWindow: { lastKnownPrimaryGtid: input.lastKnown?.gtid, promotedGtid, ...loss, ...honest },
      relayApplyMs: applied.waitedMs,
      fenced,
      errantGtids: rejoin?.errantGtids.length ? rejoin.errantGtids : undefined,
      ...(returnedEmpty ? { returnedEmpty: emptyReason } : {}),
      notFollowing: notFollowing.length ? notFollowing : undefined,
      routing,
      ...(hooks.length ? { hooks } : {}),
      verify,
      standing,
      ...(approval ? { approval } : {}),
      ...(abortFinishedForward() ? { abortRequested: true } : {}),
      steps: rb.timings(),
      audit: rb.progress.audit,
    };
  });

  function abortFinishedForward(): boolean {
    if (!abort.requested()) return false;
    rb.audit('abort', `abort requested after the point of no return: finished forward (${candidate} is the primary)`);
    return true;
  }
}
