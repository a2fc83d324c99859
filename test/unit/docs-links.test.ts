/**
 * The documentation stays navigable: every relative markdown link in README.md and docs/ resolves to an
 * existing file (and, with a #fragment, to a heading of that file, slugged as GitHub does), and README.md
 * stays short (the details live in docs/).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.join(__dirname, '..', '..');
const README_MAX_LINES = 220;

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? markdownFiles(p) : name.endsWith('.md') ? [p] : [];
  });
}

/** The text outside fenced code blocks and inline code spans: links in code are not links. */
function prose(text: string): string {
  return text
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
    .replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading anchors (github-slugger): lower case, punctuation dropped, spaces to dashes, -1, -2 for repeats. */
function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const body = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of body.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const heading = m[1].replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
    const base = heading.toLowerCase().replace(/[^\p{L}\p{N}\p{M}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

interface Link {
  file: string;
  target: string;
}

function links(file: string): Link[] {
  const text = prose(readFileSync(file, 'utf8'));
  const out: Link[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ file, target: m[1] });
  return out;
}

const files = [path.join(ROOT, 'README.md'), ...markdownFiles(path.join(ROOT, 'docs'))];

describe('documentation links', () => {
  it('finds the README and the docs', () => {
    expect(files.length).toBeGreaterThan(1);
  });

  it('every relative link resolves to an existing file and heading', () => {
    const broken: string[] = [];
    for (const file of files) {
      for (const { target } of links(file)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
        const [rawPath, fragment] = target.split('#', 2);
        const resolved = rawPath ? path.resolve(path.dirname(file), decodeURIComponent(rawPath)) : file;
        const where = `${path.relative(ROOT, file)}: (${target})`;
        if (!existsSync(resolved)) {
          broken.push(`${where} -> no such file ${path.relative(ROOT, resolved)}`);
          continue;
        }
        if (fragment !== undefined && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(fragment))
          broken.push(`${where} -> no heading #${fragment} in ${path.relative(ROOT, resolved)}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it(`README.md is at most ${README_MAX_LINES} lines`, () => {
    const lines = readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').length;
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });
});
