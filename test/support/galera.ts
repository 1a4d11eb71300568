/**
 * Throwaway MariaDB Galera clusters on loopback, from Debian's galera-4 (libgalera_smm.so) and the
 * throwaway servers of test/support/mariadb.ts. Node 1 bootstraps a new cluster and gets the fixtures
 * (the snapshot account, app.t); it is then stopped and every other node starts from a copy of its data
 * directory with gvwstate.dat removed, so that each join is an IST (or none at all) instead of an rsync
 * SST, which would run as `nobody` and need the data directories open to it (shared docs/galera.md).
 * Each node: its own port, a Galera base port P and P+1 for IST, an SST port, 127.0.0.1 only.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Connection } from 'mysql2/promise';
import { findBinary, freePort } from '../../src/commands/throwaway';
import { mariadbInstalled, startMariaDB, startMariaDBOnDatadir, type TestServer } from './mariadb';
import { sleep, waitFor } from './wait';

const runFile = promisify(execFile);

export const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';
const CLUSTER_NAME = 'vms-test';
/** small: four nodes' caches on one test machine (the default is 128M) */
const GCACHE_SIZE = '32M';
const SYNC_TIMEOUT_MS = 60_000;

/** Why this machine cannot run a Galera cluster, or undefined if it can. */
export function galeraUnavailable(): string | undefined {
  if (!mariadbInstalled()) return 'MariaDB is not installed';
  if (!fs.existsSync(GALERA_PROVIDER)) return `${GALERA_PROVIDER} is missing (apt-get install galera-4)`;
  if (findBinary('rsync') === undefined) return 'rsync is missing (apt-get install rsync; wsrep_sst_method = rsync)';
  return undefined;
}

export interface GaleraNode {
  readonly name: string;
  readonly server: TestServer;
  /** Galera's group communication port (IST listens on basePort + 1) */
  readonly basePort: number;
}

export interface GaleraCluster {
  readonly nodes: GaleraNode[];
  /** gcomm:// address of node 1, which joiners name */
  readonly address: string;
  /**
   * Starts a node on an existing data directory (a copy of a member's, or a restored image) that joins
   * the cluster; gvwstate.dat, the old node's identity, is removed first. The directory stays where it
   * is and is left to its owner.
   */
  join(datadir: string): Promise<GaleraNode>;
  /** Stops every node and deletes their directories (data directories elsewhere are left to their owner). */
  remove(): Promise<void>;
}

export interface ClusterOptions {
  /** nodes, at least 1 (default 3) */
  size?: number;
  /** per node after the first: where its data directory goes (e.g. on a loop-mounted filesystem); must not exist yet */
  datadirs?: Array<string | undefined>;
}

export async function startGaleraCluster(options: ClusterOptions = {}): Promise<GaleraCluster> {
  const size = options.size ?? 3;
  const nodes: GaleraNode[] = [];
  const scratch: string[] = [];
  const removeAll = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.server.remove().catch(() => undefined)));
    for (const directory of scratch) fs.rmSync(directory, { recursive: true, force: true });
  };
  try {
    const firstPort = await freeBasePort();
    // The fixtures only once the new cluster is Primary: before that the node refuses statements.
    const first = await startMariaDB({ serverId: 1, extraArgs: nodeArgs('node1', firstPort, await freePort(), 'gcomm://', true), untilReady: (server) => waitSynced(server) });
    nodes.push({ name: 'node1', server: first, basePort: firstPort });
    // A clean stop saves the position in grastate.dat: copies of this directory join by IST.
    await first.stop();
    // The joiners' data directories stay where they are copied to, open to the rsync daemon (see startJoiner).
    const joinerDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-galera-'));
    scratch.push(joinerDirectory);
    {
      const copies: string[] = [];
      for (let index = 1; index < size; index += 1) {
        const target = options.datadirs?.[index] ?? path.join(joinerDirectory, `node${index + 1}`);
        await runFile('cp', ['-a', first.datadir, target]);
        copies.push(target);
      }
      await first.start();
      await waitSynced(first);
      const address = `gcomm://127.0.0.1:${firstPort}`;
      const cluster: GaleraCluster = {
        nodes,
        address,
        join: async (datadir) => {
          let node: GaleraNode;
          try {
            node = await startJoiner(`node${nodes.length + 1}`, nodes.length + 1, address, datadir);
          } catch (error) {
            // The donor's side of a failed state transfer is in node 1's error log.
            throw new Error(`${(error as Error).message}\nnode1 (the donor) on the state transfer:\n${errorLog(first).split("\n").filter((line) => /SST|rsync|ERROR|State transfer/.test(line)).slice(-30).join("\n")}`);
          }
          nodes.push(node);
          return node;
        },
        remove: removeAll,
      };
      for (const copy of copies) await cluster.join(copy);
      return cluster;
    }
  } catch (error) {
    await removeAll();
    throw error;
  }
}

async function startJoiner(name: string, serverId: number, address: string, datadir: string): Promise<GaleraNode> {
  fs.rmSync(path.join(datadir, 'gvwstate.dat'), { force: true });
  await openToRsyncDaemon(datadir);
  const basePort = await freeBasePort();
  const args = nodeArgs(name, basePort, await freePort(), address, false);
  const server = await startMariaDBOnDatadir(datadir, { serverId, extraArgs: args, datadir });
  try {
    await waitSynced(server);
  } catch (error) {
    await server.remove();
    throw error;
  }
  return { name, server, basePort };
}

/**
 * Even an IST runs wsrep_sst_rsync, whose daemon on the joiner runs as `nobody` when mariadbd runs as
 * root: it must reach the data directory (search permission on the directories above it, up to the
 * temporary directory) and write into it (owned by nobody; mariadbd, root, reads and writes it anyway).
 */
async function openToRsyncDaemon(datadir: string): Promise<void> {
  if (process.geteuid?.() !== 0) return;
  const top = path.resolve(os.tmpdir());
  for (let directory = path.dirname(path.resolve(datadir)); directory.startsWith(`${top}/`); directory = path.dirname(directory)) {
    const mode = fs.statSync(directory).mode & 0o7777;
    if ((mode & 0o001) === 0) fs.chmodSync(directory, mode | 0o001);
  }
  await runFile('chown', ['-R', 'nobody', datadir]);
}

function nodeArgs(name: string, basePort: number, sstPort: number, clusterAddress: string, bootstrap: boolean): string[] {
  return [
    '--wsrep-on=ON',
    `--wsrep-provider=${GALERA_PROVIDER}`,
    `--wsrep-cluster-name=${CLUSTER_NAME}`,
    `--wsrep-cluster-address=${clusterAddress}`,
    `--wsrep-provider-options=base_port=${basePort};ist.recv_addr=127.0.0.1:${basePort + 1};gcache.size=${GCACHE_SIZE}`,
    '--wsrep-node-address=127.0.0.1',
    `--wsrep-node-name=${name}`,
    `--wsrep-sst-receive-address=127.0.0.1:${sstPort}`,
    '--wsrep-sst-method=rsync',
    '--innodb-autoinc-lock-mode=2',
    ...(bootstrap ? ['--wsrep-new-cluster'] : []),
  ];
}

/** A port P with P + 1 free as well (Galera listens on base_port, IST on base_port + 1). */
async function freeBasePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries += 1) {
    const port = await freePort();
    if (port < 65535 && (await isFree(port + 1))) return port;
  }
  throw new Error('no two adjacent free TCP ports on 127.0.0.1');
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const listener = net.createServer();
    listener.once('error', () => resolve(false));
    listener.listen(port, '127.0.0.1', () => listener.close(() => resolve(true)));
  });
}

/** SHOW GLOBAL STATUS LIKE 'wsrep%' (and Uptime), as a map. */
export async function wsrepStatus(server: TestServer): Promise<Map<string, string>> {
  const rows = await server.query<Array<{ Variable_name: string; Value: string }>>("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'wsrep%'");
  return new Map(rows.map((row) => [row.Variable_name.toLowerCase(), String(row.Value)]));
}

export async function waitSynced(server: TestServer, timeoutMs = SYNC_TIMEOUT_MS): Promise<void> {
  let last = new Map<string, string>();
  await waitFor(
    `${server.dir} to be Synced in the primary component`,
    async () => {
      last = await wsrepStatus(server).catch(() => new Map<string, string>());
      return last.get('wsrep_local_state') === '4' && last.get('wsrep_ready') === 'ON' && last.get('wsrep_cluster_status') === 'Primary' ? true : undefined;
    },
    { timeoutMs, pollMs: 100, describe: () => `state ${last.get('wsrep_local_state_comment') ?? '?'}, ${last.get('wsrep_cluster_status') ?? '?'}; end of error.log:\n${errorLogTail(server)}` },
  );
}

/** Waits until every node has committed the same last write-set (after the writers stopped). */
export async function waitConverged(servers: readonly TestServer[], timeoutMs = 30_000): Promise<number> {
  let seen: string[] = [];
  return waitFor(
    'the nodes to reach the same wsrep_last_committed',
    async () => {
      seen = await Promise.all(servers.map(async (server) => (await wsrepStatus(server)).get('wsrep_last_committed') ?? '?'));
      return seen.every((seqno) => seqno === seen[0]) ? Number(seen[0]) : undefined;
    },
    { timeoutMs, pollMs: 100, describe: () => seen.join(', ') },
  );
}

export function errorLog(server: TestServer): string {
  try {
    return fs.readFileSync(path.join(server.dir, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}

function errorLogTail(server: TestServer): string {
  return errorLog(server).trimEnd().split('\n').slice(-20).join('\n');
}

/** grastate.dat of a data directory, parsed. */
export function readGrastate(datadir: string): { uuid: string; seqno: number; safeToBootstrap: number } {
  const text = fs.readFileSync(path.join(datadir, 'grastate.dat'), 'utf8');
  const field = (name: string): string => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(text)?.[1] ?? '';
  return { uuid: field('uuid'), seqno: Number(field('seqno')), safeToBootstrap: Number(field('safe_to_bootstrap')) };
}

export interface Writer {
  /** Stops after the statement in flight; the number of inserts and the longest one, in ms. */
  stop(): Promise<{ inserts: number; longestMs: number; failures: string[] }>;
  /** the longest insert so far that began after `since` (epoch ms) */
  longestSince(since: number): number;
}

/**
 * INSERTs into app.t on a node of its own connection, one every `intervalMs`: how long each takes shows
 * whether the node stalls (flow control from a node that stopped applying would stop them all).
 */
export async function startWriter(server: TestServer, note: string, intervalMs = 10): Promise<Writer> {
  const connection: Connection = await server.connect();
  const samples: Array<{ at: number; ms: number }> = [];
  const failures: string[] = [];
  let running = true;
  const loop = (async (): Promise<void> => {
    while (running) {
      const started = Date.now();
      try {
        await connection.query('INSERT INTO app.t (v, note) VALUES (?, ?)', [samples.length, note]);
        samples.push({ at: started, ms: Date.now() - started });
      } catch (error) {
        failures.push((error as Error).message);
      }
      await sleep(intervalMs);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await connection.end().catch(() => connection.destroy());
      return { inserts: samples.length, longestMs: Math.max(0, ...samples.map((sample) => sample.ms)), failures };
    },
    longestSince: (since) => Math.max(0, ...samples.filter((sample) => sample.at >= since).map((sample) => sample.ms)),
  };
}

/** CHECKSUM TABLE of a table on a node. */
export async function checksum(server: TestServer, table: string): Promise<string> {
  const rows = await server.query<Array<{ Checksum: unknown }>>(`CHECKSUM TABLE ${table}`);
  return String(rows[0]?.Checksum);
}
