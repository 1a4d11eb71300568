/**
 * doctor's view of the agents installed here: for each, the freeze_timeout a freeze under it gets (the
 * configured one, else the agent's default), the agent's own limit (read from its settings where they
 * can be read, else its documented default), and whether the freeze ends before the agent gives up.
 */
import fs = require('node:fs');
import path = require('node:path');
import { fitsLimit, FREEZE_OVERHEAD_SECONDS, PROFILES, type AgentProfile, type LimitSource } from '../agents/profiles';
import { withAgentDefaults, type Settings } from '../config/settings';

export interface AgentCheck {
  name: string;
  verdict: 'ok' | 'warn';
  detail: string;
  fix?: string;
}

export interface Machine {
  /** the prefix the executable is installed under (PREFIX/sbin/vmware-mysql-snapshot) */
  prefix: string;
  /** prepended to every absolute path read (tests) */
  root: string;
}

export function thisMachine(): Machine {
  let executable = process.execPath;
  try {
    executable = fs.realpathSync(executable);
  } catch {
    // keep the path as given
  }
  return { prefix: path.dirname(path.dirname(executable)), root: '' };
}

export function agentChecks(settings: Settings, machine: Machine = thisMachine()): AgentCheck[] {
  const checks: AgentCheck[] = [];
  for (const profile of PROFILES) {
    const marker = profile.installedMarkers.map((file) => file.replace('{prefix}', machine.prefix)).find((file) => fs.existsSync(machine.root + file));
    if (marker === undefined) continue;
    checks.push(budgetCheck(settings, profile, machine), ...extraChecks(profile, machine));
  }
  return checks;
}

function budgetCheck(settings: Settings, profile: AgentProfile, machine: Machine): AgentCheck {
  const budget = withAgentDefaults(settings, profile.id).freezeTimeout;
  const where = settings.freezeTimeoutSet ? `freeze_timeout ${budget} s (${settings.file})` : `freeze_timeout ${budget} s (this agent's default)`;
  const read = profile.limitSource === undefined ? undefined : readLimit(profile.limitSource, machine);
  const limit = read?.seconds ?? profile.limitSeconds;
  const limitText =
    limit === undefined
      ? 'its limit is not known'
      : read?.seconds !== undefined
        ? `its limit ${limit} s (${read.where})`
        : `its limit ${limit} s (its default${read?.problem === undefined ? '' : `; ${read.problem}`})`;
  const name = `agent ${profile.id}`;
  const freezesText = profile.freezesFilesystems === true ? '' : profile.freezesFilesystems === false ? '; it freezes no filesystem: the lock ends at its post script' : '';
  if (fitsLimit(budget, limit)) return { name, verdict: 'ok', detail: `${profile.title}: ${where}, ${limitText}${freezesText}` };
  return {
    name,
    verdict: 'warn',
    detail: `${profile.title}: ${where} does not end ${FREEZE_OVERHEAD_SECONDS} s before ${limitText}: the agent may give up while the freeze still waits`,
    fix: `set freeze_timeout to at most ${Math.max(1, (limit ?? 0) - FREEZE_OVERHEAD_SECONDS)} in ${settings.file}, or raise the agent's limit${profile.limitSource === undefined ? '' : ` (${profile.limitSource.file})`}`,
  };
}

function extraChecks(profile: AgentProfile, machine: Machine): AgentCheck[] {
  const checks: AgentCheck[] = [];
  const needed = profile.enabledBy;
  if (needed !== undefined) {
    const setting = `[${needed.section}] ${needed.key} = ${needed.value}`;
    const read = readIni(machine.root + needed.file, needed.section, needed.key);
    checks.push(
      read.value?.toLowerCase() === needed.value
        ? { name: `agent ${profile.id} enabled`, verdict: 'ok', detail: `${setting} in ${needed.file}` }
        : {
            name: `agent ${profile.id} enabled`,
            verdict: 'warn',
            detail: `${needed.file} does not say ${setting}${read.problem === undefined ? '' : ` (${read.problem})`}: the agent runs no script`,
            fix: `set ${setting} in ${needed.file}, then ${needed.fix}`,
          },
    );
  }
  for (const note of profile.notes ?? []) checks.push({ name: `agent ${profile.id} note`, verdict: 'ok', detail: note });
  return checks;
}

function readLimit(source: LimitSource, machine: Machine): { seconds?: number; where: string; problem?: string } {
  const file = machine.root + source.file;
  if (source.kind === 'ini') {
    const read = readIni(file, source.section, source.key);
    if (read.value === undefined) return { where: source.file, ...(read.problem === undefined ? {} : { problem: read.problem }) };
    const seconds = Number(read.value);
    return Number.isFinite(seconds) && seconds > 0 ? { seconds, where: `[${source.section}] ${source.key} in ${source.file}` } : { where: source.file, problem: `[${source.section}] ${source.key} = ${read.value} is not a number of seconds` };
  }
  try {
    const value = (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>)[source.key];
    if (value === undefined) return { where: source.file, problem: `${source.key} is not in ${source.file}` };
    const seconds = Number(value);
    return Number.isFinite(seconds) && seconds > 0 ? { seconds, where: `${source.key} in ${source.file}` } : { where: source.file, problem: `${source.key} = ${String(value)} in ${source.file} is not a number of seconds` };
  } catch (error) {
    return { where: source.file, problem: `cannot read ${source.file}: ${(error as Error).message}` };
  }
}

/** One key of an INI file (`[section]`, `key = value`, `#` and `;` comments); the last one wins. */
function readIni(file: string, section: string, key: string): { value?: string; problem?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    return { problem: (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file}: ${(error as Error).message}` };
  }
  let current = '';
  let value: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      current = (header[1] ?? '').trim();
      continue;
    }
    const pair = /^([^=:]+)[=:](.*)$/.exec(line);
    if (current.toLowerCase() === section.toLowerCase() && pair !== null && (pair[1] ?? '').trim().toLowerCase() === key.toLowerCase()) value = (pair[2] ?? '').trim();
  }
  return value === undefined ? {} : { value };
}
