/**
 * Failure types shared by activities (which throw them as non-retryable ApplicationFailures), workflows
 * (which refuse with them) and the CLI (which maps them to exit codes and one-line advice).
 * A failure message never carries a secret: it names nodes, clusters and credential *references* only.
 */
export const ErrorType = {
  // Input and inventory
  InvalidInventory: 'InvalidInventory',
  UnknownCluster: 'UnknownCluster',
  UnknownNode: 'UnknownNode',
  WrongEngine: 'WrongEngine',
  MissingCredential: 'MissingCredential',
  AuthenticationFailed: 'AuthenticationFailed',
  // TLS to a database failed (wrong CA, server name, client certificate; plaintext against a TLS-only node)
  TlsFailed: 'TlsFailed',
  // Preconditions found by the decision or the veto (nothing changed)
  PreconditionFailed: 'PreconditionFailed',
  // The handover could not complete before the point of no return and was undone
  HandoverAborted: 'HandoverAborted',
  CatchUpTimeout: 'CatchUpTimeout',
  // The cluster is not in a shape the step knows how to move forward from
  UnexpectedTopology: 'UnexpectedTopology',
  VerificationFailed: 'VerificationFailed',
  // A failover's candidate resynced (from a primary that came back empty) since the verdict: not promoted
  CandidateResynced: 'CandidateResynced',
  // Past the point of no return: the primary changed, but a node could not be repointed (or verification
  // failed). The message names the new primary and every node left as it was.
  HandoverIncomplete: 'HandoverIncomplete',
  // A post-hook (MySQL routing hook) failed: reported, the runbook itself goes on (post-hooks fail open)
  RoutingHookFailed: 'RoutingHookFailed',
  // An operator hook around a failover: pre-hooks fail closed (nothing changed), post-hooks fail open (reported)
  PreHookFailed: 'PreHookFailed',
  PostHookFailed: 'PostHookFailed',
  // MySQL/MariaDB fence bound: the server cannot time the fence out (event_scheduler OFF), or it did (expired)
  FenceBoundUnavailable: 'FenceBoundUnavailable',
  FenceBoundExpired: 'FenceBoundExpired',
  // Backups: a restore target that already holds data is refused before anything is written to it
  TargetNotEmpty: 'TargetNotEmpty',
  // Operator gate and abort (--require-approval, handover approve/abort): the run ended with nothing changed
  ApprovalRejected: 'ApprovalRejected',
  ApprovalTimedOut: 'ApprovalTimedOut',
  Aborted: 'Aborted',
  // An approve update the workflow refused (missing approver, wrong plan hash, no approval pending)
  InvalidApproval: 'InvalidApproval',
  // Payload encryption: the run's input is under a codec key the worker does not hold (or the CLI's differs from
  // the worker's): refused before anything starts, or the run fails at its start (workflows/undecodable.ts)
  CodecKeyMismatch: 'CodecKeyMismatch',
  // Binlog archive: another archiver holds the cluster's archive lease (refused), or took it over from this one
  ArchiveLeaseHeld: 'ArchiveLeaseHeld',
} as const;

/** The field of the marker a worker's codec decodes an unreadable payload into (codec/aes-gcm.ts, workflows/undecodable.ts). */
export const UNDECODABLE_FIELD = '__handoverUndecodable';
export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];

/** Types that no retry can fix: the activity proxies list them as non-retryable. */
export const NON_RETRYABLE: string[] = Object.values(ErrorType);

/** Failure types that mean "refused, nothing was changed": the CLI exits 2 on them, run metrics say outcome="refused". */
export const REFUSAL_TYPES: ReadonlySet<string> = new Set<string>([
  ErrorType.InvalidInventory,
  ErrorType.UnknownCluster,
  ErrorType.UnknownNode,
  ErrorType.WrongEngine,
  ErrorType.MissingCredential,
  ErrorType.AuthenticationFailed,
  ErrorType.TlsFailed,
  ErrorType.PreconditionFailed,
  ErrorType.CandidateResynced,
  ErrorType.CatchUpTimeout,
  ErrorType.PreHookFailed,
  ErrorType.FenceBoundUnavailable,
  ErrorType.TargetNotEmpty,
  ErrorType.ApprovalRejected,
  ErrorType.ApprovalTimedOut,
  ErrorType.CodecKeyMismatch,
  ErrorType.ArchiveLeaseHeld,
]);

/** An error with a type the CLI and workflows understand; activities convert it to a non-retryable failure. */
export class HandoverError extends Error {
  constructor(
    readonly type: ErrorTypeName,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = type;
  }
}
