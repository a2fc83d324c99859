/**
 * The worker's observability, set up once per process before it connects (worker/main.ts):
 *
 *   HANDOVER_METRICS_ADDRESS  host:port of a Prometheus endpoint (GET /metrics), served by the SDK runtime's
 *                             exporter: the SDK's own metrics (temporal_*: polls, task latencies, slots, …) and
 *                             Handover's (handover_*, workflows/metrics.ts). Off when unset.
 *   HANDOVER_HEALTH_ADDRESS   host:port of a health check (GET /healthz): 200 while the worker runs, its pollers
 *                             poll and Temporal answers; 503 otherwise (connecting, stopping, Temporal gone).
 *                             A separate port: the metrics port belongs to the SDK's exporter. Off when unset.
 *   HANDOVER_LOG_FORMAT       "json": one JSON object per line on stderr (time, level, msg, and the attributes:
 *                             cluster, runbook, workflowId, runId, workflowType, activityType, …); default: text.
 *   HANDOVER_LOG_LEVEL        TRACE, DEBUG, INFO (default), WARN, ERROR.
 *
 * Every log line goes through the SDK's logger (Runtime.install({ logger })): workflow and activity context
 * loggers, the SDK's own messages, the native core's warnings (forwarded), and the worker's own lines.
 */
import { createServer, type Server } from 'node:http';
import { DefaultLogger, Runtime, type LogEntry, type Logger, type LogLevel } from '@temporalio/worker';
import { WRITE_PAUSE_BUCKETS_S } from '../workflows/metrics';

export interface TelemetryConfig {
  metricsAddress?: string;
  healthAddress?: string;
  logFormat: 'text' | 'json';
  logLevel: LogLevel;
}

const LEVELS: LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

export class TelemetryConfigError extends Error {}

function hostPort(name: string, v: string | undefined): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/.test(v)) throw new TelemetryConfigError(`${name}=${v}: expected host:port, e.g. 127.0.0.1:9464`);
  return v;
}

export function telemetryFromEnv(env: NodeJS.ProcessEnv): TelemetryConfig {
  const format = (env.HANDOVER_LOG_FORMAT ?? 'text').toLowerCase();
  if (format !== 'text' && format !== 'json') throw new TelemetryConfigError(`HANDOVER_LOG_FORMAT=${env.HANDOVER_LOG_FORMAT}: expected json or text`);
  const level = (env.HANDOVER_LOG_LEVEL ?? 'INFO').toUpperCase() as LogLevel;
  if (!LEVELS.includes(level)) throw new TelemetryConfigError(`HANDOVER_LOG_LEVEL=${env.HANDOVER_LOG_LEVEL}: expected one of ${LEVELS.join(', ')}`);
  return {
    metricsAddress: hostPort('HANDOVER_METRICS_ADDRESS', env.HANDOVER_METRICS_ADDRESS),
    healthAddress: hostPort('HANDOVER_HEALTH_ADDRESS', env.HANDOVER_HEALTH_ADDRESS),
    logFormat: format,
    logLevel: level,
  };
}

/** One log entry as one JSON line: time, level, msg, then its attributes (errors as their message). */
export function jsonLine(e: LogEntry): string {
  const out: Record<string, unknown> = { time: new Date(Number(e.timestampNanos / 1_000_000n)).toISOString(), level: e.level, msg: e.message };
  for (const [k, v] of Object.entries(e.meta ?? {})) {
    if (k in out) continue;
    out[k] = v instanceof Error ? { message: v.message, name: v.name } : typeof v === 'bigint' ? String(v) : v;
  }
  try {
    return JSON.stringify(out);
  } catch {
    return JSON.stringify({ time: out.time, level: e.level, msg: e.message });
  }
}

/**
 * Install the SDK runtime with the logger and, when asked, the Prometheus exporter. Once per process, before
 * any connection. Returns the logger the worker writes its own lines with.
 */
export function installTelemetry(cfg: TelemetryConfig, write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  // Text: the worker's own lines keep their documented one-line form ("[worker] polling …"); the SDK's as usual.
  const sdkText = new DefaultLogger(cfg.logLevel);
  const logger =
    cfg.logFormat === 'json'
      ? new DefaultLogger(cfg.logLevel, (e) => write(jsonLine(e)))
      : new DefaultLogger(cfg.logLevel, (e) => (e.meta?.sdkComponent === 'handover-worker' ? write(`[worker] ${e.message}`) : sdkText.log(e.level, e.message, e.meta)));
  Runtime.install({
    logger,
    telemetryOptions: {
      // The native core's own warnings reach the same logger (JSON too), not the console directly.
      logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
      ...(cfg.metricsAddress
        ? { metrics: { prometheus: { bindAddress: cfg.metricsAddress, histogramBucketOverrides: { handover_write_pause_seconds: WRITE_PAUSE_BUCKETS_S } } } }
        : {}),
    },
  });
  return logger;
}

export interface Health {
  ok: boolean;
  detail: string;
}

/**
 * Serve GET /healthz (and /readyz, /): 200 and a one-line reason when `check` says ok, else 503 and why.
 * Resolves once listening; `close` stops it.
 */
export async function startHealthServer(address: string, check: () => Promise<Health>): Promise<{ server: Server; close(): Promise<void> }> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || !['/', '/healthz', '/readyz'].includes(url)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /healthz\n');
      return;
    }
    check().then(
      (h) => res.writeHead(h.ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${h.ok ? 'ok' : 'unhealthy'}: ${h.detail}\n`),
      (e) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`unhealthy: ${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, close: () => new Promise<void>((r) => server.close(() => r())) };
}
