/**
 * The production folders never import the test harness: no file under core, inventory, activities, workflows,
 * worker, client or codec imports sandbox/, bench/ or test/ (import/export ... from, import(), require(),
 * side-effect imports; relative specifiers resolved against the importing file).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const PRODUCTION = ['core', 'inventory', 'activities', 'workflows', 'worker', 'client', 'codec'];
const FORBIDDEN = ['sandbox', 'bench', 'test'];

function sourceFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(p);
    return /\.(c|m)?[jt]sx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every module specifier in a source text. */
export function importSpecifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, // import x from 'y', export { x } from 'y'
    /\bimport\s*['"]([^'"]+)['"]/g, // import 'y'
    /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g, // import('y'), require('y')
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]);
  return out;
}

/** The forbidden top-level folder a specifier reaches from `file`, if any. */
export function forbiddenTarget(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.') && !spec.startsWith('/')) return undefined; // a package
  const rel = path.relative(ROOT, path.resolve(path.dirname(file), spec));
  const top = rel.split(path.sep)[0];
  return FORBIDDEN.includes(top) ? top : undefined;
}

describe('production code imports no test harness', () => {
  it('the scanner finds every kind of import and resolves relative paths', () => {
    const text = [
      "import { a } from '../../sandbox/redis';",
      "import type { B } from '../bench/lab';",
      "export * from '../test/helpers';",
      "import '../sandbox/side-effect';",
      "const x = await import('../sandbox/lazy');",
      "const y = require('../bench/cjs');",
      "import { ok } from './sandbox';",
      "// import { no } from '../sandbox/commented';",
      "import mysql from 'mysql2/promise';",
    ].join('\n');
    const file = path.join(ROOT, 'activities', 'backup', 'x.ts');
    const specs = importSpecifiers(text);
    expect(specs).toEqual(expect.arrayContaining(['../../sandbox/redis', '../bench/lab', '../test/helpers', '../sandbox/side-effect', '../sandbox/lazy', '../bench/cjs', './sandbox', 'mysql2/promise']));
    expect(specs).not.toContain('../sandbox/commented');
    const hits = specs.map((s) => forbiddenTarget(file, s)).filter(Boolean);
    // activities/backup/x.ts: ../../sandbox is ROOT/sandbox; ../bench, ../test and ../sandbox land inside activities/.
    expect(hits).toEqual(['sandbox']);
    expect(forbiddenTarget(path.join(ROOT, 'client', 'x.ts'), '../test/helpers')).toBe('test');
    expect(forbiddenTarget(path.join(ROOT, 'client', 'x.ts'), './sandbox')).toBeUndefined();
  });

  it('no file under core, inventory, activities, workflows, worker, client or codec imports sandbox/, bench/ or test/', () => {
    const files = PRODUCTION.flatMap((d) => sourceFiles(path.join(ROOT, d)));
    expect(files.length).toBeGreaterThan(50);
    const offences = files.flatMap((f) =>
      importSpecifiers(readFileSync(f, 'utf8'))
        .filter((s) => forbiddenTarget(f, s))
        .map((s) => `${path.relative(ROOT, f)} imports ${s}`),
    );
    expect(offences).toEqual([]);
  });
});
