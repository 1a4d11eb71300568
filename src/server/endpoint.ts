/**
 * Proof that we talk to the real server before any credential goes out. With the server down, any local
 * user could listen on its port or create its socket and ask for our password; so the password goes only
 * to a Unix socket that root or the server's account made in a directory nobody else can change, or over
 * a loopback TCP connection whose server end belongs to root or the server's account (the kernel says so:
 * the uid column of /proc/net/tcp{,6}, read for the very connection we opened).
 */
import fs = require('node:fs');
import net = require('node:net');
import path = require('node:path');
import { HookError } from '../errors';
import { checkDirectoryChain, trustedOwners } from '../safepath';

/** The account MySQL and MariaDB run as on every distribution we know. */
export const SERVER_ACCOUNT = 'mysql';

/** Root, us, and the server's account (when it exists). */
export function serverOwners(passwd = '/etc/passwd'): number[] {
  const owners = trustedOwners();
  const account = accountUid(SERVER_ACCOUNT, passwd);
  return account === undefined || owners.includes(account) ? owners : [...owners, account];
}

function accountUid(name: string, passwd: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(passwd, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields[2] !== undefined && /^\d+$/.test(fields[2])) return Number(fields[2]);
  }
  return undefined;
}

/**
 * The socket's real path, once proven: a socket owned by one of `owners`, in directories that belong to
 * them and that nobody else can write. A missing socket throws ENOENT (the server is down).
 */
export function provenSocketPath(socket: string, owners: readonly number[]): string {
  const realPath = fs.realpathSync(socket);
  const stat = fs.statSync(realPath);
  const fix = `; refusing to send the password there. If this is the server's socket, make it and its directory belong to root or ${SERVER_ACCOUNT}, or set socket (or host = 127.0.0.1) in [client]`;
  if (!stat.isSocket()) throw new HookError('UNSAFE', `${socket} is not a socket${fix}`);
  if (!owners.includes(stat.uid)) {
    throw new HookError('UNSAFE', `socket ${socket} belongs to uid ${stat.uid}, not to root or ${SERVER_ACCOUNT}: another user may be posing as the server${fix}`);
  }
  try {
    checkDirectoryChain(path.dirname(realPath), owners);
  } catch (error) {
    throw new HookError('UNSAFE', `socket ${socket}: ${(error as Error).message}: another user could put a socket of hers there${fix}`, { cause: error });
  }
  return realPath;
}

/**
 * A TCP connection to host:port whose server end belongs to one of `owners`; anything else is closed
 * before a byte is read. The server's greeting waits in the socket's buffer for mysql2.
 */
export async function provenTcpStream(host: string, port: number, owners: readonly number[], timeoutMs: number): Promise<net.Socket> {
  const socket = await connect(host, port, timeoutMs);
  const owner = listenerOwner(socket);
  const fix = `; refusing to send the password there. If this is the server, run it as root or ${SERVER_ACCOUNT}, or connect by its socket (socket = ... in [client])`;
  if (owner === undefined) {
    socket.destroy();
    throw new HookError('UNSAFE', `${host}:${port} is not a server on this machine (no local socket owns the connection), so it cannot be proven to be the server${fix}`);
  }
  if (!owners.includes(owner)) {
    socket.destroy();
    throw new HookError('UNSAFE', `the listener on ${host}:${port} belongs to uid ${owner}, not to root or ${SERVER_ACCOUNT}: another user may be posing as the server${fix}`);
  }
  return socket;
}

function connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`connect ETIMEDOUT ${host}:${port}`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The uid of the server end of `socket`, from /proc/net/tcp or tcp6; undefined if it is not local. */
export function listenerOwner(socket: net.Socket, tables: readonly string[] = ['/proc/net/tcp', '/proc/net/tcp6']): number | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return undefined;
  for (const table of tables) {
    // An IPv4 connection accepted by a dual-stack (::) listener is listed in tcp6, IPv4-mapped.
    const mapped = table.endsWith('6') && net.isIPv4(remoteAddress) ? '::ffff:' : '';
    const serverEnd = `${procAddress(mapped + remoteAddress)}:${procPort(remotePort)}`;
    const ourEnd = `${procAddress(mapped + localAddress)}:${procPort(localPort)}`;
    let text: string;
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
      const fields = line.trim().split(/\s+/);
      if (fields[1] === serverEnd && fields[2] === ourEnd && fields[7] !== undefined) return Number(fields[7]);
    }
  }
  return undefined;
}

function procPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** The kernel prints an address as 32-bit words in host (little-endian) order. */
export function procAddress(address: string): string {
  const bytes = net.isIPv4(address) ? ipv4Bytes(address) : ipv6Bytes(address);
  let text = '';
  for (let word = 0; word < bytes.length; word += 4) {
    for (let index = 3; index >= 0; index--) text += (bytes[word + index] ?? 0).toString(16).toUpperCase().padStart(2, '0');
  }
  return text;
}

function ipv4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

function ipv6Bytes(address: string): number[] {
  let text = address.split('%')[0] ?? '';
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  let tail: number[] = [];
  if (embedded !== undefined) {
    tail = ipv4Bytes(embedded);
    text = text.slice(0, -embedded.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head = '', rest] = text.split('::');
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const headGroups = groups(head);
  const restGroups = rest === undefined ? [] : groups(rest);
  const missing = 8 - tail.length / 2 - headGroups.length - restGroups.length;
  const all = [...headGroups, ...new Array<number>(rest === undefined ? 0 : missing).fill(0), ...restGroups];
  return [...all.flatMap((group) => [group >> 8, group & 0xff]), ...tail];
}
