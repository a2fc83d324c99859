/** The version `handover --version` prints: package.json's, found from the sources (client/) or the build (dist/client/). */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function handoverVersion(): string {
  for (let dir = __dirname, i = 0; i < 4; dir = path.dirname(dir), i++) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'handover' && pkg.version) return pkg.version;
    } catch {
      // not ours: keep looking up
    }
  }
  return 'unknown';
}
