/**
 * Run by the pinned runtime while the executable is built (scripts/build.ts): compiles one bundled
 * library exactly as loadPackage will, runs it (so that what its loading compiles is in the cache too),
 * and writes V8's code cache for it.   node codecache.js <package> <bundle> <cache file>
 */
import * as fs from 'node:fs';
import * as vm from 'node:vm';
import { PACKAGES, runPackage, wrapPackage, type PackageName } from '../src/packages';

const [name, bundle, cacheFile] = process.argv.slice(2);
if (!PACKAGES.includes(name as PackageName) || bundle === undefined || cacheFile === undefined) {
  process.stderr.write('usage: codecache.js <package> <bundle> <cache file>\n');
  process.exit(2);
}
const { code, filename } = wrapPackage(name as PackageName, fs.readFileSync(bundle, 'utf8'));
const script = new vm.Script(code, { filename });
runPackage(script, require);
fs.writeFileSync(cacheFile, script.createCachedData());
// Some libraries start timers or handlers when loaded: their work here is done.
process.exit(0);
