/**
 * What the holder records in run_dir, and the messages between freeze, holder and thaw.
 * freeze <-> holder: the channel made when freeze starts it (src/snapshot/channel.ts; private, carries the credentials).
 * thaw -> holder: RELEASE_SIGNAL, sent only to the PID this state names, after proving it is that process
 * (or to a holder proven by its claim on run_dir, src/state/holderclaim.ts); the answer is the final
 * state, written right after the release.
 */
import fs = require('node:fs');
import type { ClientSettings } from '../config/settings';
import { HOLDER_NAME } from '../agents/dispatch';
import type { ErrorCode } from '../errors';
import type { LockMode } from '../config/settings';
import type { LockPlan } from '../server/lockmodes';
import type { Coordinates, ReplicationProbe } from '../server/coordinates';
import type { FilesystemFreeze } from './fsthaw';
import type { ThawStart } from './thawstart';
import type { ConnectionProof, ServerInfo } from '../server/session';
import type { ProcessIdentity } from '../state/processes';

export type HolderPhase = 'locking' | 'held' | 'released' | 'expired' | 'lost' | 'aborted';

/**
 * requested: by thaw or freezeFail (RELEASE_SIGNAL); thaw_started: thaw's exec seen (thawstart.ts);
 * filesystem_thaw: see fsthaw.ts
 */
export type ReleaseReason = 'requested' | 'thaw_started' | 'filesystem_thaw' | 'expired' | 'lost' | 'aborted';

/** How thaw and freezeFail ask the holder to release (SIGUSR1 would start Node's inspector). */
export const RELEASE_SIGNAL: NodeJS.Signals = 'SIGUSR2';

export interface HolderState {
  version: 1;
  phase: HolderPhase;
  holder: ProcessIdentity;
  freezePid: number;
  connection: ConnectionProof | null;
  startedAt: number;
  lockedAt?: number;
  releasedAt?: number;
  releaseReason?: ReleaseReason;
  maxLockTime: number;
  lockMode?: LockMode;
  coordinates?: Coordinates;
  /** statements still to run after the release if the holder could not (thaw runs them) */
  afterRelease?: string[];
  /** a human sentence for `lost` and `aborted` */
  detail?: string;
  /** the data directory whose filesystem's thaw ends the hold (release_at = filesystem_thaw) */
  thawProbe?: string;
  /** the freeze of that filesystem, seen while the lock was held */
  filesystemFreeze?: FilesystemFreeze;
  /** the thaw whose start ended the hold (releaseReason thaw_started) */
  thawStart?: ThawStart;
}

/** What thaw made of a holder's state, kept as last.json for `status`. */
export interface LastRun extends HolderState {
  thaw: { operation: string; at: number; outcome: 'released' | 'nothing_held' | 'inconsistent' };
}

const PHASES: readonly string[] = ['locking', 'held', 'released', 'expired', 'lost', 'aborted'];

export function isHolderState(value: unknown): value is HolderState {
  if (typeof value !== 'object' || value === null) return false;
  const state = value as Partial<HolderState>;
  const holder = state.holder as Partial<ProcessIdentity> | undefined;
  return (
    state.version === 1 &&
    typeof state.phase === 'string' &&
    PHASES.includes(state.phase) &&
    typeof holder === 'object' &&
    holder !== null &&
    Number.isInteger(holder.pid) &&
    (holder.pid ?? 0) > 1 &&
    typeof holder.startTime === 'string' &&
    typeof holder.name === 'string' &&
    typeof holder.exe === 'string' &&
    typeof state.startedAt === 'number'
  );
}

/**
 * A state we may act on: well-formed, and naming a holder of ours, i.e. a process started as
 * pre-freeze-mysql-lock from this very executable. Anything else is untrusted and nothing is signalled
 * on its account, even if the PID and start time it names are a live process's true identity.
 */
export function isOurHolderState(value: unknown): value is HolderState {
  if (!isHolderState(value)) return false;
  const { name, exe } = value.holder;
  const ours = ownExecutable();
  return name === HOLDER_NAME && (exe === ours || exe === `${ours} (deleted)`);
}

let executable: string | undefined;
function ownExecutable(): string {
  executable ??= fs.realpathSync(process.execPath);
  return executable;
}

export function isLastRun(value: unknown): value is LastRun {
  return isHolderState(value) && typeof (value as Partial<LastRun>).thaw === 'object';
}

export interface HolderStart {
  type: 'start';
  /** the version of the freeze that sent it: an upgrade between spawn and start must not go unnoticed */
  version: string;
  client: ClientSettings;
  lockWaitTimeout: number;
  maxLockTime: number;
  /** how long freeze may wait for a quiet moment: the holder's connection idles that long */
  freezeTimeout: number;
  runDir: string;
  logFile: string;
  /** freeze's configuration file, absolute: a thaw for the same one ends the hold at its start (thawstart.ts) */
  configFile: string;
  freezePid: number;
  attempt: number;
}

/** freeze -> holder once the moment is quiet: take the lock */
export interface LockRequest {
  type: 'lock';
  plan: LockPlan;
  /** run on the holder's connection after the release, best effort (e.g. restart the replica applier) */
  afterRelease: string[];
  /** whether to read replica channels under the lock (freeze asked before locking) */
  replication: ReplicationProbe;
  /** a Galera node: read its position (uuid:seqno) under the lock as well */
  galera: boolean;
  /** the server as freeze's session read it: the holder's connection asks nothing before its lock */
  server: Omit<ServerInfo, 'connectionId'>;
  /** release_at = filesystem_thaw: the data directory whose filesystem is watched once freeze has exited */
  thawProbe: string | null;
}

export type ToHolder = HolderStart | LockRequest | { type: 'ack' } | { type: 'abort' };

export type FromHolder =
  /** the id the server gave the holder's connection (in its handshake) */
  | { type: 'connected'; connectionId: number }
  | { type: 'locked'; coordinates: Coordinates; lockedAt: number; waitedMs: number }
  | { type: 'failed'; code: ErrorCode; message: string; timedOut: boolean }
  /** locked, but in a way that must not be kept (a Galera node not desynced): released at once; try again later */
  | { type: 'refused'; reason: string };

/** How long the lock was (or has been) held, in ms; null if it never was. */
export function heldMs(state: Pick<HolderState, 'lockedAt' | 'releasedAt'>, now = Date.now()): number | null {
  if (state.lockedAt === undefined) return null;
  return (state.releasedAt ?? now) - state.lockedAt;
}
