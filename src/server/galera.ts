/**
 * Galera nodes (MariaDB Galera Cluster, Percona XtraDB Cluster): whether the server is one, whether a
 * snapshot of it can be a consistent member, and its position (cluster state uuid and seqno of the last
 * committed write-set), read under the lock. FTWRL and BACKUP STAGE (from BLOCK_DDL) desync and pause a
 * Synced node: the other nodes keep committing, and the paused node's position stands still, so an image
 * taken under the lock joins a cluster by IST from it. Facts: docs/galera.md (shared), MariaDB's
 * sql/lock.cc and sql/backup.cc, galera's replicator_smm.cpp and saved_state.cpp.
 */
import type { RowDataPacket } from 'mysql2/promise';
import type { Session } from './session';

/** wsrep_local_state */
export const GALERA_STATES: Readonly<Record<number, string>> = { 0: 'Undefined', 1: 'Joining', 2: 'Donor/Desynced', 3: 'Joined', 4: 'Synced' };

export interface GaleraNode {
  /** wsrep_cluster_status: Primary, non-Primary, Disconnected */
  clusterStatus: string;
  /** wsrep_ready: the node accepts statements */
  ready: boolean;
  /** wsrep_local_state: 1 Joining, 2 Donor/Desynced, 3 Joined, 4 Synced */
  localState: number;
  localStateComment: string;
  clusterSize: number;
  /** the wsrep_desync variable: an admin desynced the node on purpose */
  desync: boolean;
  /** wsrep_desync_count: how many desyncs are in force (an SST donor, a backup, wsrep_desync) */
  desyncCount: number;
  /** wsrep_local_state_uuid and wsrep_last_committed: the node's position now */
  position: GaleraPosition;
  /** wsrep_local_cached_downto: the oldest write-set the gcache still holds (IST from here needs seqno + 1 >= it) */
  cachedDownto: number | null;
  /** gcache.size from wsrep_provider_options, in bytes */
  gcacheBytes: number | null;
  /** write-sets replicated and received since the server started, in bytes, and that time in seconds */
  writesetBytes: number;
  uptimeSeconds: number;
  sstMethod: string | null;
}

export interface GaleraPosition {
  uuid: string;
  seqno: number;
}

type Row = Record<string, unknown>;

const VARIABLES = ['wsrep_on', 'wsrep_desync', 'wsrep_provider_options', 'wsrep_sst_method'];
const STATUS = [
  'wsrep_provider_name',
  'wsrep_cluster_status',
  'wsrep_ready',
  'wsrep_local_state',
  'wsrep_local_state_comment',
  'wsrep_cluster_size',
  'wsrep_desync_count',
  'wsrep_local_state_uuid',
  'wsrep_last_committed',
  'wsrep_local_cached_downto',
  'wsrep_replicated_bytes',
  'wsrep_received_bytes',
  'Uptime',
];

function inList(names: readonly string[]): string {
  return names.map((name) => `'${name}'`).join(', ');
}

/**
 * The position and the node's state, in one statement: the holder runs it under the lock, with the
 * binary-log status. The state tells whether the lock desynced the node (see desyncRefusal).
 */
export const GALERA_LOCKED_STATEMENT = `SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_uuid', 'wsrep_last_committed', 'wsrep_local_state', 'wsrep_local_state_comment')`;

/** wsrep_local_state, with its comment */
export interface GaleraState {
  localState: number;
  comment: string;
}

/** What the holder reads of a Galera node under the lock. */
export interface GaleraLocked {
  position: GaleraPosition | null;
  /** null if the server did not say */
  state: GaleraState | null;
}

/** Name -> value of SHOW VARIABLES / SHOW STATUS rows, names in lower case. */
export function nameValues(rows: readonly Row[]): Map<string, string> {
  return new Map(rows.map((row) => [String(row['Variable_name']).toLowerCase(), String(row['Value'] ?? '')]));
}

/** The node, or undefined if the server is no Galera node (no wsrep, wsrep_on = OFF, or no provider loaded). */
export async function readGaleraNode(session: Session): Promise<GaleraNode | undefined> {
  const [variableRows] = await session.connection.query<RowDataPacket[]>(`SHOW GLOBAL VARIABLES WHERE Variable_name IN (${inList(VARIABLES)})`);
  const variables = nameValues(variableRows);
  if (variables.get('wsrep_on')?.toUpperCase() !== 'ON') return undefined;
  const [statusRows] = await session.connection.query<RowDataPacket[]>(`SHOW GLOBAL STATUS WHERE Variable_name IN (${inList(STATUS)})`);
  return parseGaleraNode(variables, nameValues(statusRows));
}

export function parseGaleraNode(variables: ReadonlyMap<string, string>, status: ReadonlyMap<string, string>): GaleraNode | undefined {
  if (variables.get('wsrep_on')?.toUpperCase() !== 'ON') return undefined;
  // wsrep_on with wsrep_provider = none: a standalone server, no cluster to be a member of
  if ((status.get('wsrep_provider_name') ?? '') === '' || !status.has('wsrep_local_state')) return undefined;
  const number = (name: string): number | null => {
    const value = status.get(name);
    if (value === undefined || value === '') return null;
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : null;
  };
  const localState = number('wsrep_local_state') ?? 0;
  return {
    clusterStatus: status.get('wsrep_cluster_status') ?? 'unknown',
    ready: status.get('wsrep_ready')?.toUpperCase() === 'ON',
    localState,
    localStateComment: status.get('wsrep_local_state_comment') ?? GALERA_STATES[localState] ?? 'unknown',
    clusterSize: number('wsrep_cluster_size') ?? 0,
    desync: variables.get('wsrep_desync')?.toUpperCase() === 'ON',
    desyncCount: number('wsrep_desync_count') ?? 0,
    position: { uuid: status.get('wsrep_local_state_uuid') ?? '', seqno: number('wsrep_last_committed') ?? -1 },
    cachedDownto: number('wsrep_local_cached_downto'),
    gcacheBytes: parseSize(providerOption(variables.get('wsrep_provider_options') ?? '', 'gcache.size')),
    writesetBytes: (number('wsrep_replicated_bytes') ?? 0) + (number('wsrep_received_bytes') ?? 0),
    uptimeSeconds: number('uptime') ?? 0,
    sstMethod: variables.get('wsrep_sst_method') ?? null,
  };
}

/** One option of wsrep_provider_options ("a = 1; b.c = 2; ..."). */
export function providerOption(options: string, name: string): string | undefined {
  for (const part of options.split(';')) {
    const equals = part.indexOf('=');
    if (equals > 0 && part.slice(0, equals).trim() === name) return part.slice(equals + 1).trim();
  }
  return undefined;
}

/** Galera's sizes: a number with an optional K, M, G or T (powers of 1024). */
export function parseSize(value: string | undefined): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$/i.exec(value?.trim() ?? '');
  if (match === null) return null;
  const power = ' KMGT'.indexOf((match[2] ?? '').toUpperCase() || ' ');
  return Math.round(Number(match[1]) * 1024 ** power);
}

/**
 * Why a snapshot of this node cannot be a consistent member of its cluster, with what to do; undefined
 * when it can (Synced, or Donor/Desynced: the lock pauses it either way).
 */
export function galeraRefusal(node: GaleraNode): string | undefined {
  const ready = `wsrep_ready = ${node.ready ? 'ON' : 'OFF'}`;
  if (node.clusterStatus !== 'Primary') {
    return (
      `this Galera node is not in the primary component (wsrep_cluster_status = ${node.clusterStatus}, ${ready}): ` +
      'it has lost quorum, its data may be behind the cluster, and a snapshot of it would not be a consistent member. ' +
      'Snapshot a node of the primary component, or restore the cluster first (reconnect the nodes; bootstrap with pc.bootstrap=YES only on the most advanced node of a cluster that is gone)'
    );
  }
  if (node.localState === 1 || node.localState === 3) {
    const what = node.localState === 1 ? 'still joining the cluster (a state transfer runs)' : 'catching up with the cluster after its state transfer';
    return (
      `this Galera node is ${what} (wsrep_local_state = ${node.localState}, ${node.localStateComment}, ${ready}): its data is not a consistent member yet. ` +
      'Wait until it is Synced (wsrep_local_state = 4) and freeze again'
    );
  }
  if (node.localState !== 2 && node.localState !== 4) {
    return `this Galera node is in no state a member can be snapshotted in (wsrep_local_state = ${node.localState}, ${node.localStateComment}): wait until it is Synced (wsrep_local_state = 4) and freeze again`;
  }
  if (!node.ready) {
    return `this Galera node does not accept statements (wsrep_ready = OFF, wsrep_local_state = ${node.localState}, ${node.localStateComment}): wait until wsrep_ready = ON and freeze again`;
  }
  return undefined;
}

/** A node that is Donor/Desynced without wsrep_desync: something else desynced it, most likely a state transfer it donates. */
export function isDonorNow(node: GaleraNode): boolean {
  return node.localState === 2 && !node.desync;
}

/** What the lock does to this node, for the log and doctor. */
export function lockEffect(node: GaleraNode, mode: string): string {
  const at = mode === 'backup_stage' ? 'at BACKUP STAGE BLOCK_DDL' : 'once FLUSH TABLES WITH READ LOCK holds';
  if (node.localState === 4) return `the lock (${mode}) desyncs and pauses this node ${at}; the other nodes keep committing, and it catches up after the release`;
  if (node.desync) return `the node is desynced on purpose (wsrep_desync = ON): the lock (${mode}) only pauses it ${at}, and it stays desynced after the release`;
  return `the node is Donor/Desynced (a state transfer or a backup desynced it): the lock (${mode}) pauses it ${at}`;
}

export function describeGaleraNode(node: GaleraNode): string {
  return `Galera node of a ${node.clusterSize}-node cluster, ${node.localStateComment} (wsrep_local_state = ${node.localState}), ${node.clusterStatus}, at ${formatPosition(node.position)}`;
}

export function formatPosition(position: GaleraPosition): string {
  return `${position.uuid}:${position.seqno}`;
}

export function parseGaleraPosition(rows: readonly Row[]): GaleraPosition | null {
  const values = nameValues(rows);
  const uuid = values.get('wsrep_local_state_uuid');
  const seqno = Number(values.get('wsrep_last_committed'));
  // A state uuid is what Galera prints (gu_uuid); anything else is not written into grastate.dat.
  if (uuid === undefined || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid) || !Number.isInteger(seqno)) return null;
  return { uuid, seqno };
}

export function parseGaleraLocked(rows: readonly Row[]): GaleraLocked {
  const values = nameValues(rows);
  const localState = Number(values.get('wsrep_local_state') ?? Number.NaN);
  const state = Number.isInteger(localState) ? { localState, comment: values.get('wsrep_local_state_comment') ?? GALERA_STATES[localState] ?? 'unknown' } : null;
  return { position: parseGaleraPosition(rows), state };
}

/** The node's position and state, on a session of its own (the holder's, under the lock). */
export async function readGaleraLocked(session: Session): Promise<GaleraLocked> {
  const [rows] = await session.connection.query<RowDataPacket[]>(GALERA_LOCKED_STATEMENT);
  return parseGaleraLocked(rows);
}

/**
 * Why a lock just taken must be given back at once, or undefined if it may be kept. The server desyncs
 * the node only if its wsrep state machine counts it Synced at that moment (MariaDB's sql/lock.cc,
 * make_global_read_lock_block_commit); otherwise it only pauses it. A node paused but not desynced stops
 * applying and still takes part in flow control: once its receive queue passes gcs.fc_limit, every node
 * of the cluster stops committing until the release. Freeze looked at the node before, but its state can
 * change between that look and the lock (a state transfer it donated ends, a desync is lifted: Donor ->
 * Joined -> Synced). Under the lock, a desynced node reads Donor/Desynced (2). A state the server did not
 * report is no reason to refuse.
 */
export function desyncRefusal(state: GaleraState | null | undefined): string | undefined {
  if (state === null || state === undefined || state.localState === 2) return undefined;
  return (
    `the lock did not desync this Galera node (wsrep_local_state = ${state.localState}, ${state.comment}, under the lock): ` +
    'it was paused but still takes part in flow control, so holding it would stall every node of the cluster; it was released at once'
  );
}

/** grastate.dat as Galera writes it (saved_state.cpp): the state a node restored from the snapshot starts from. */
export function grastate(position: GaleraPosition): string {
  return ['# GALERA saved state', 'version: 2.1', `uuid:    ${position.uuid}`, `seqno:   ${position.seqno}`, 'safe_to_bootstrap: 0', ''].join('\n');
}

/** How a node restored from the snapshot joins its cluster at this position. */
export function joinSteps(position: GaleraPosition): string[] {
  return [
    `the image's grastate.dat should say uuid ${position.uuid}, seqno ${position.seqno} (Galera wrote it while the node was paused under the lock); if it says seqno -1, write the grastate.dat given here`,
    "remove gvwstate.dat from the data directory: it holds the old node's identity and cluster view",
    "start the node with wsrep_cluster_address naming a node of the cluster (gcomm://HOST:4567), never with --wsrep-new-cluster",
    `it joins by IST if the donor's gcache still holds the write-sets after seqno ${position.seqno} (on the donor: wsrep_local_cached_downto <= ${position.seqno + 1}); otherwise by a full SST`,
  ];
}

/**
 * How long the gcache keeps write-sets at the rate written since the server started: an image restored
 * later than that after its snapshot can no longer join by IST. undefined when no rate is known yet.
 */
export function gcacheCoverSeconds(node: GaleraNode): number | undefined {
  if (node.gcacheBytes === null || node.uptimeSeconds <= 0 || node.writesetBytes <= 0) return undefined;
  return node.gcacheBytes / (node.writesetBytes / node.uptimeSeconds);
}

/**
 * BACKUP STAGE desyncs and pauses a Galera node from MDEV-33211 on (the MariaDB releases of May 2024);
 * before that it paused nothing, the appliers went on committing under the backup locks, and a snapshot
 * would not be at the recorded position.
 */
const BACKUP_STAGE_PAUSES: ReadonlyArray<[number, number, number]> = [
  [10, 4, 34],
  [10, 5, 25],
  [10, 6, 18],
  [10, 11, 8],
  [11, 0, 6],
  [11, 1, 5],
  [11, 2, 4],
  [11, 4, 2],
];

export function backupStagePausesGalera(version: [number, number, number]): boolean {
  const [major, minor, patch] = version;
  if (major > 11 || (major === 11 && minor >= 5)) return true;
  const fixed = BACKUP_STAGE_PAUSES.find(([fixedMajor, fixedMinor]) => fixedMajor === major && fixedMinor === minor);
  return fixed !== undefined && patch >= fixed[2];
}
