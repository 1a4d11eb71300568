/**
 * Every agent that calls us, as data: the names it runs us under, the arguments it passes, its time
 * limit and how it kills, whether it freezes the filesystems, whether it calls post after a failed pre,
 * and where its own settings live. The dispatcher (dispatch.ts), freeze's time budget (snapshot/hook.ts),
 * doctor and install.sh read these; nothing else asks which agent it is.
 *
 * Sources: docs/hook-contract.md of the team (open-vm-tools, qemu-ga, google_guest_agent, Azure's
 * VMSnapshotLinux, the SSM agent); "unconfirmed" marks what no source we could read settles.
 */
export type AgentId = 'vmware' | 'vmware-backupscripts' | 'qemu' | 'gcp' | 'azure' | 'nutanix' | 'veeam' | 'aws';

export type Operation = 'freeze' | 'thaw' | 'freezeFail';

/**
 * What a name we are linked under does: the first word is one of `operations` (or, when absent and
 * `implicit` is set, that operation), then `args`. Strict names refuse anything else with their usage;
 * the others hand it to the command line, as any unknown name does.
 */
export interface NameRule {
  name: string;
  operations: readonly Operation[];
  implicit?: Operation;
  args: ArgumentShape;
  strict: boolean;
}

/** The arguments after the operation word (if any): how many, and what they are, for the usage line. */
export interface ArgumentShape {
  min: number;
  max: number;
  synopsis: string;
}

/** Where the agent's own time limit can be read on this machine. */
export type LimitSource =
  | { kind: 'ini'; file: string; section: string; key: string }
  | { kind: 'json'; file: string; key: string };

export interface AgentProfile {
  id: AgentId;
  title: string;
  /** install.sh's option for this layout */
  installOption: string;
  names: readonly NameRule[];
  /** Seconds the agent gives a pre script (or the whole quiesce) by default; undefined: no limit. */
  limitSeconds: number | undefined;
  /** Where the agent's configured limit is, when it can be read. */
  limitSource?: LimitSource;
  /** How the agent ends a script that runs too long. */
  onTimeout: 'none' | 'SIGKILL' | 'SIGKILL-group' | 'SIGTERM-then-SIGKILL';
  /** freeze_timeout when the configuration sets none: room left below limitSeconds for start-up and clean-up */
  defaultFreezeTimeout: number;
  /** The agent freezes the filesystems between our pre and post (the lock may end at that thaw). */
  freezesFilesystems: boolean | 'unconfirmed';
  /** The agent runs our post after a failed pre (it then reports the snapshot not consistent). */
  postAfterFailedPre: boolean | 'unconfirmed';
  /** Files that, when present, say this layout is installed (doctor); {prefix} is the executable's prefix. */
  installedMarkers: readonly string[];
  /** A setting of the agent without which it runs no script (doctor checks it). */
  enabledBy?: { file: string; section: string; key: string; value: string; fix: string };
  /** Advice doctor gives whenever the layout is installed. */
  notes?: readonly string[];
}

/** Seconds of a freeze outside freeze_timeout: start-up, and stopping a holder whose attempt is cut short. */
export const FREEZE_OVERHEAD_SECONDS = 4;

/** The directory of the per-agent links that the agents' wrapper scripts exec (below the prefix). */
export const AGENT_LINK_DIR = 'libexec/vmware-mysql-snapshot';

const NO_ARGS: ArgumentShape = { min: 0, max: 0, synopsis: '' };
const SCRIPT_ARG: ArgumentShape = { min: 0, max: 1, synopsis: '[scriptArg]' };
const ANY_ARGS: ArgumentShape = { min: 0, max: 16, synopsis: '[PARAMS...]' };
const ALL_OPERATIONS: readonly Operation[] = ['freeze', 'thaw', 'freezeFail'];
/** The agents with a pre and a post script only: a post after a failed pre is a thaw that finds nothing held. */
const PRE_POST: readonly Operation[] = ['freeze', 'thaw'];

/**
 * vmtoolsd's terms, whichever of its names it calls us under: its limit and where it is set, how it ends
 * a script past it, and that it freezes the filesystems between freeze and thaw.
 */
const VMWARE_TOOLS = {
  limitSeconds: 900,
  limitSource: { kind: 'ini', file: '/etc/vmware-tools/tools.conf', section: 'vmbackup', key: 'timeout' },
  onTimeout: 'SIGTERM-then-SIGKILL',
  defaultFreezeTimeout: 300,
  freezesFilesystems: true,
} as const satisfies Partial<AgentProfile>;

export const PROFILES: readonly AgentProfile[] = [
  {
    id: 'vmware',
    title: 'VMware Tools (legacy pre-freeze-script / post-thaw-script)',
    installOption: '(default)',
    names: [
      { name: 'pre-freeze-script', operations: ['freeze'], implicit: 'freeze', args: SCRIPT_ARG, strict: true },
      { name: 'post-thaw-script', operations: ['thaw', 'freezeFail'], args: SCRIPT_ARG, strict: true },
    ],
    ...VMWARE_TOOLS,
    postAfterFailedPre: false,
    installedMarkers: ['/usr/sbin/pre-freeze-script'],
  },
  {
    id: 'vmware-backupscripts',
    title: 'VMware Tools (backupScripts.d)',
    installOption: '--backup-scripts-d',
    names: [{ name: '50-mysql', operations: ALL_OPERATIONS, args: SCRIPT_ARG, strict: false }],
    ...VMWARE_TOOLS,
    // freezeFail goes to the scripts before the one that failed, never to the failed one itself.
    postAfterFailedPre: false,
    installedMarkers: ['/etc/vmware-tools/backupScripts.d/50-mysql'],
  },
  {
    id: 'qemu',
    title: 'QEMU guest agent (fsfreeze-hook.d)',
    installOption: '--qemu',
    names: [{ name: 'mysql', operations: ALL_OPERATIONS, args: SCRIPT_ARG, strict: false }],
    limitSeconds: undefined,
    onTimeout: 'none',
    defaultFreezeTimeout: 300,
    freezesFilesystems: true,
    postAfterFailedPre: true,
    installedMarkers: ['/etc/qemu/fsfreeze-hook.d/mysql', '/etc/qemu-ga/fsfreeze-hook.d/mysql'],
  },
  {
    id: 'gcp',
    title: 'Google Compute Engine guest agent (snapshot scripts)',
    installOption: '--gcp',
    // pre.sh and post.sh exec this link with the word, then the agent's one argument: the disk list.
    names: [{ name: 'gcp-hook', operations: PRE_POST, args: { min: 0, max: 1, synopsis: '[DISKS]' }, strict: true }],
    limitSeconds: 60,
    limitSource: { kind: 'ini', file: '/etc/default/instance_configs.cfg', section: 'Snapshots', key: 'timeout_in_seconds' },
    onTimeout: 'SIGKILL',
    defaultFreezeTimeout: 45,
    freezesFilesystems: false,
    postAfterFailedPre: 'unconfirmed',
    installedMarkers: ['/etc/google/snapshots/pre.sh'],
    enabledBy: { file: '/etc/default/instance_configs.cfg', section: 'Snapshots', key: 'enabled', value: 'true', fix: 'restart google-guest-agent' },
    notes: ['create the snapshots with --guest-flush (gcloud compute disks snapshot --guest-flush), or the scripts are not run'],
  },
  {
    id: 'azure',
    title: 'Azure VM Backup (VMSnapshotLinux script runner)',
    installOption: '--azure',
    names: [{ name: 'azure-hook', operations: PRE_POST, args: ANY_ARGS, strict: true }],
    limitSeconds: 30,
    limitSource: { kind: 'json', file: '/etc/azure/VMSnapshotScriptPluginConfig.json', key: 'timeoutInSeconds' },
    onTimeout: 'none',
    defaultFreezeTimeout: 20,
    freezesFilesystems: true,
    postAfterFailedPre: true,
    installedMarkers: ['/etc/azure/VMSnapshotScriptPluginConfig.json'],
  },
  {
    id: 'nutanix',
    title: 'Nutanix Guest Tools (pre_freeze / post_thaw)',
    installOption: '--nutanix',
    names: [{ name: 'nutanix-hook', operations: PRE_POST, args: ANY_ARGS, strict: true }],
    // Unconfirmed: NGT's limit is not documented, so the default budget is as short as Azure's.
    limitSeconds: undefined,
    onTimeout: 'SIGKILL',
    defaultFreezeTimeout: 20,
    freezesFilesystems: 'unconfirmed',
    postAfterFailedPre: 'unconfirmed',
    installedMarkers: ['/usr/local/sbin/pre_freeze'],
  },
  {
    id: 'veeam',
    title: 'Veeam Backup & Replication (pre-freeze / post-thaw scripts of the job)',
    installOption: '--veeam',
    names: [{ name: 'veeam-hook', operations: PRE_POST, args: ANY_ARGS, strict: true }],
    limitSeconds: 600,
    onTimeout: 'SIGKILL',
    defaultFreezeTimeout: 300,
    freezesFilesystems: 'unconfirmed',
    postAfterFailedPre: 'unconfirmed',
    installedMarkers: ['{prefix}/share/vmware-mysql-snapshot/veeam/pre-freeze.sh'],
    notes: ['select the two scripts of share/vmware-mysql-snapshot/veeam in the job (README: Veeam)'],
  },
  {
    id: 'aws',
    title: 'AWS Data Lifecycle Manager (SSM Command document)',
    installOption: '--aws',
    names: [{ name: 'aws-hook', operations: PRE_POST, args: NO_ARGS, strict: true }],
    limitSeconds: 10,
    onTimeout: 'SIGKILL-group',
    defaultFreezeTimeout: 6,
    freezesFilesystems: false,
    postAfterFailedPre: 'unconfirmed',
    installedMarkers: ['{prefix}/share/vmware-mysql-snapshot/aws/ssm-document.yaml'],
    notes: ['the SSM document must keep ExecutionTimeout above freeze_timeout + 4 s'],
  },
];

/** The profile a name belongs to, with the rule for that name. */
export function profileForName(name: string): { profile: AgentProfile; rule: NameRule } | undefined {
  for (const profile of PROFILES) {
    const rule = profile.names.find((candidate) => candidate.name === name);
    if (rule !== undefined) return { profile, rule };
  }
  return undefined;
}

export function profileById(id: AgentId): AgentProfile {
  const profile = PROFILES.find((candidate) => candidate.id === id);
  if (profile === undefined) throw new Error(`no agent profile ${id}`);
  return profile;
}

/** Whether a freeze bounded by freezeTimeout ends, locked or with nothing held, before the agent gives up. */
export function fitsLimit(freezeTimeout: number, limitSeconds: number | undefined): boolean {
  return limitSeconds === undefined || freezeTimeout + FREEZE_OVERHEAD_SECONDS <= limitSeconds;
}
