// Lint: TypeScript rules everywhere, and the determinism fence around workflows/.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.sandbox/**', 'test-artifacts/**', 'dist/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code is replayed: no I/O, no Node builtins, no database clients, and activities by type only.
    files: ['workflows/**/*.ts', 'core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node builtins.' })),
            { name: 'ioredis', message: 'Database I/O belongs in activities/.' },
            { name: 'mysql2', message: 'Database I/O belongs in activities/.' },
            { name: 'mysql2/promise', message: 'Database I/O belongs in activities/.' },
          ],
          patterns: [
            { group: ['**/activities', '**/activities/**'], allowTypeImports: true, message: 'Import activities as types only.' },
            { group: ['**/inventory', '**/inventory/**', '**/sandbox/**', '**/worker/**'], message: 'Workflow code must not load I/O modules.' },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
