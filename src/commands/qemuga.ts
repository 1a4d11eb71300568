/**
 * For doctor: will qemu-ga run our hook, and would a freeze of ours that fails stop the snapshot or only
 * be logged? Read from the running qemu-ga (its command line and QGA_CONF), or else from how its service
 * would start it (the unit's ExecStart, /etc/sysconfig/qemu-ga, qemu-ga.conf).
 *
 * qemu-ga runs one fsfreeze hook: -F[PATH] / --fsfreeze-hook[=PATH] on its command line (no PATH: its
 * built-in default), else fsfreeze-hook= in [general] of its qemu-ga.conf, else none. QEMU's dispatcher
 * runs fsfreeze-hook.d/* beside itself and always exits 0; ours (install.sh --qemu) fails a failed freeze.
 */
import fs = require('node:fs');
import path = require('node:path');

export interface QemuGaCheck {
  verdict: 'ok' | 'warn';
  detail: string;
  fix?: string;
}

/** Where the files are: `root` is / but for tests. */
export interface QemuGaPlaces {
  root: string;
  /** our executable, as its real path */
  executable: string;
}

const UNITS = ['/etc/systemd/system/qemu-guest-agent.service', '/lib/systemd/system/qemu-guest-agent.service', '/usr/lib/systemd/system/qemu-guest-agent.service'];
const CONFIGS = ['/etc/qemu/qemu-ga.conf', '/etc/qemu-ga/qemu-ga.conf'];
const DEFAULT_HOOKS = ['/etc/qemu/fsfreeze-hook', '/etc/qemu-ga/fsfreeze-hook'];
const SYSCONFIG = '/etc/sysconfig/qemu-ga';
const OUR_DISPATCHER_MARK = "Installed by vmware-mysql-snapshot's install.sh";

/** How one qemu-ga runs or would run: its arguments and the configuration file it reads. */
interface Invocation {
  source: string;
  argv: string[];
  configFile: string | undefined;
}

export function qemuGaCheck(places: QemuGaPlaces): QemuGaCheck | undefined {
  const running = runningQemuGa(places);
  const configured = configuredQemuGa(places);
  if (running === undefined && configured === undefined && !installedHere(places)) return undefined;
  const invocation = running ?? configured;
  if (invocation === undefined) {
    return { verdict: 'warn', detail: 'our hook is in fsfreeze-hook.d, but qemu-ga is neither running nor installed as a service', fix: 'install qemu-guest-agent' };
  }
  const verdict = judgeHook(places, invocation);
  if (running !== undefined && configured !== undefined) {
    const now = hookOf(places, running);
    const next = hookOf(places, configured);
    if (now !== next) {
      return {
        verdict: 'warn',
        detail: `${verdict.detail}; as configured it would run ${next ?? 'no hook'} instead`,
        fix: 'restart qemu-ga so that it reads its settings (systemctl restart qemu-guest-agent)',
      };
    }
  }
  return verdict;
}

function judgeHook(places: QemuGaPlaces, invocation: Invocation): QemuGaCheck {
  const hook = hookOf(places, invocation);
  const who = invocation.source;
  const install = 'sudo ./install.sh --qemu, then restart qemu-ga';
  if (hook === undefined) {
    return { verdict: 'warn', detail: `${who} runs no fsfreeze hook (no -F, no fsfreeze-hook= in ${invocation.configFile ?? 'qemu-ga.conf'}): a snapshot gets no lock`, fix: install };
  }
  const file = path.join(places.root, hook);
  const real = realPath(file);
  if (real === undefined) return { verdict: 'warn', detail: `${who} runs ${hook}, which is missing: qemu-ga's freeze fails`, fix: install };
  if (real === places.executable) return { verdict: 'ok', detail: `${who} runs our hook itself (${hook}): a freeze of ours that fails fails qemu-ga's freeze` };
  if (!linksToUs(path.join(path.dirname(file), 'fsfreeze-hook.d'), places)) {
    return { verdict: 'warn', detail: `${who} runs ${hook}, but ${path.join(path.dirname(hook), 'fsfreeze-hook.d')} has no link to our hook`, fix: install };
  }
  const text = fs.readFileSync(file, 'utf8');
  if (text.includes(OUR_DISPATCHER_MARK)) {
    return { verdict: 'ok', detail: `${who} runs our hook through ${hook}: a freeze of ours that fails fails qemu-ga's freeze, and the host knows` };
  }
  const lastLine = text.trim().split('\n').at(-1)?.trim();
  return {
    verdict: 'warn',
    detail: `${who} runs our hook through ${hook}, which ${lastLine === 'exit 0' ? 'always exits 0 (QEMU\'s dispatcher)' : 'may not pass a failure on'}: a freeze of ours that fails is only logged, qemu-ga freezes and the host snapshots without the lock (thaw then exits 3)`,
    fix: `${install} (it sets its own dispatcher, which fails a failed freeze, unless the admin set another one: then set that yourself)`,
  };
}

/** The hook path qemu-ga runs, or undefined for none. */
function hookOf(places: QemuGaPlaces, invocation: Invocation): string | undefined {
  for (let index = invocation.argv.length - 1; index >= 1; index -= 1) {
    const arg = invocation.argv[index] ?? '';
    if (arg === '-F' || arg === '--fsfreeze-hook') return defaultHook(places);
    if (arg.startsWith('--fsfreeze-hook=')) return arg.slice('--fsfreeze-hook='.length);
    if (/^-[^-]*F/.test(arg)) {
      // -F takes its optional argument attached: -F/path, and only as the last letter of a group.
      const rest = arg.slice(arg.indexOf('F') + 1);
      return rest === '' ? defaultHook(places) : rest;
    }
  }
  if (invocation.configFile === undefined) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(path.join(places.root, invocation.configFile), 'utf8');
  } catch {
    return undefined;
  }
  return keyFileValue(text, 'general', 'fsfreeze-hook');
}

/** The last value of `key` in `[group]` of a GKeyFile (qemu-ga.conf), as GLib reads it. */
export function keyFileValue(text: string, group: string, key: string): string | undefined {
  let current = '';
  let value: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.*)\]$/.exec(line);
    if (header !== null) current = header[1] ?? '';
    else if (current === group && line.includes('=') && line.slice(0, line.indexOf('=')).trim() === key) value = line.slice(line.indexOf('=') + 1).trim();
  }
  return value;
}

function defaultHook(places: QemuGaPlaces): string {
  return DEFAULT_HOOKS.find((hook) => fs.existsSync(path.join(places.root, hook))) ?? DEFAULT_HOOKS[0] ?? '';
}

function defaultConfig(places: QemuGaPlaces): string | undefined {
  return CONFIGS.find((config) => fs.existsSync(path.join(places.root, config)));
}

function runningQemuGa(places: QemuGaPlaces): Invocation | undefined {
  const proc = path.join(places.root, 'proc');
  let entries: string[];
  try {
    entries = fs.readdirSync(proc).filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined;
  }
  for (const pid of entries) {
    try {
      const argv = fs.readFileSync(path.join(proc, pid, 'cmdline'), 'latin1').split('\0').filter((arg, index, all) => arg !== '' || index < all.length - 1);
      if (path.basename(argv[0] ?? '') !== 'qemu-ga') continue;
      const environment = fs.readFileSync(path.join(proc, pid, 'environ'), 'latin1').split('\0');
      const qgaConf = environment.find((entry) => entry.startsWith('QGA_CONF='))?.slice('QGA_CONF='.length);
      return { source: `qemu-ga (pid ${pid})`, argv, configFile: qgaConf ?? defaultConfig(places) };
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** The service's ExecStart with /etc/sysconfig/qemu-ga's variables substituted. */
function configuredQemuGa(places: QemuGaPlaces): Invocation | undefined {
  for (const unit of UNITS) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(places.root, unit), 'utf8');
    } catch {
      continue;
    }
    const execStart = /^\s*ExecStart=[-@+!:]*(.*)$/m.exec(text)?.[1];
    if (execStart === undefined) continue;
    const variables = sysconfigVariables(places);
    const command = execStart.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced: string | undefined, bare: string | undefined) => variables.get(braced ?? bare ?? '') ?? '');
    return { source: `qemu-ga as ${unit} starts it`, argv: command.trim().split(/\s+/), configFile: defaultConfig(places) };
  }
  return undefined;
}

function sysconfigVariables(places: QemuGaPlaces): Map<string, string> {
  const variables = new Map<string, string>();
  let text = '';
  try {
    text = fs.readFileSync(path.join(places.root, SYSCONFIG), 'utf8');
  } catch {
    return variables;
  }
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_]\w*)=(.*)$/.exec(line);
    if (match !== null) variables.set(match[1] ?? '', (match[2] ?? '').trim().replace(/^(["'])(.*)\1$/, '$2'));
  }
  return variables;
}

function installedHere(places: QemuGaPlaces): boolean {
  return ['/etc/qemu/fsfreeze-hook.d', '/etc/qemu-ga/fsfreeze-hook.d'].some((dir) => linksToUs(path.join(places.root, dir), places));
}

function linksToUs(directory: string, places: QemuGaPlaces): boolean {
  try {
    return fs.readdirSync(directory).some((name) => realPath(path.join(directory, name)) === places.executable);
  } catch {
    return false;
  }
}

function realPath(file: string): string | undefined {
  try {
    return fs.realpathSync(file);
  } catch {
    return undefined;
  }
}
