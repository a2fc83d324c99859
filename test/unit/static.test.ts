/** The type checker and the linter (including the workflow determinism fence) are part of the test suite. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const bin = (name: string) => path.join(ROOT, 'node_modules', '.bin', name);
function run(cmd: string, args: string[]): { code: number; output: string } {
  try {
    return { code: 0, output: execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' }) };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { code: x.status, output: `${x.stdout}${x.stderr}` };
  }
}

describe('static checks', () => {
  it('tsc --noEmit passes', () => {
    const r = run(bin('tsc'), ['--noEmit', '-p', '.']);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  }, 300_000);

  it('eslint passes (workflows/ and core/ import no Node builtins, ioredis, mysql2 or activity values)', () => {
    const r = run(bin('eslint'), ['.']);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  }, 300_000);
});
