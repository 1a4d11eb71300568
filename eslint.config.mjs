// @ts-check
// `npm run lint`: typescript-eslint's recommended rules, the type-aware rules that catch real bugs in
// asynchronous code, and the import rule of the folders (docs/architecture.md): each folder of src/
// imports only from the folders below it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The folders of src/, lowest first: a folder may import from those before it, never after. */
const LAYERS = ['agents', 'config', 'server', 'state', 'snapshot', 'commands', 'runtime'];

/** `no-restricted-imports` for the files of one folder: every folder above it is out of bounds. */
function layerRule(folder) {
  const above = LAYERS.slice(LAYERS.indexOf(folder) + 1);
  const patterns = above.map((name) => ({
    group: [`../${name}/*`, ...(name === 'runtime' ? ['!../runtime/packages'] : [])],
    message: `src/${folder}/ sits below src/${name}/ and must not import from it (docs/architecture.md)`,
  }));
  return { files: [`src/${folder}/**/*.ts`], rules: { 'no-restricted-imports': ['error', { patterns }] } };
}

export default tseslint.config(
  { ignores: ['build/', 'dist/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test() and suite() return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'suite', 'describe', 'it'] }] }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // `import fs = require('node:fs')` is how src/ imports Node's modules (scripts/build.ts says why).
      '@typescript-eslint/no-require-imports': ['error', { allow: ['^node:'] }],
    },
  },
  {
    // Tests and build scripts read JSON log lines and mysql2's internals, whose shapes are theirs to check.
    files: ['test/**/*.ts', 'scripts/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-require-imports': 'off' },
  },
  ...LAYERS.map(layerRule),
  {
    // The leaves at the top of src/ (errors, log, clock, version) import no folder; main.ts starts them all.
    files: ['src/*.ts'],
    ignores: ['src/main.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['./*/*'], message: 'the files at the top of src/ are leaves: they import no folder of src/' }] }] },
  },
  { files: ['eslint.config.mjs'], ...tseslint.configs.disableTypeChecked },
);
