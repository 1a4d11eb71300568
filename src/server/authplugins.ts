/**
 * mysql2's SHA-2 login plugins, with one difference: when the server asks for the password in full
 * (caching_sha2_password's full authentication, sha256_password), it goes in clear only over a proven
 * Unix socket, and otherwise only encrypted with the server public key the admin configured
 * (server_public_key_path). Asking the other end for its key, as mysql2 does without TLS, would hand the
 * password to whoever answers with a key of their own.
 */
import crypto = require('node:crypto');

const FAST_AUTH_SUCCESS = 3;
const PERFORM_FULL_AUTHENTICATION = 4;

type AuthHandler = (data: Buffer) => Buffer | null;
type AuthPlugin = (context: { connection: unknown }) => AuthHandler;

export interface PasswordChannel {
  password: string;
  /** a Unix socket proven to be the server's (see endpoint.ts) */
  provenSocket: boolean;
  /** PEM text of server_public_key_path, read as a trusted file */
  serverPublicKey?: string;
}

export function authPlugins(channel: PasswordChannel): Record<string, AuthPlugin> {
  return { caching_sha2_password: cachingSha2Password(channel), sha256_password: sha256Password(channel) };
}

function cachingSha2Password(channel: PasswordChannel): AuthPlugin {
  return () => {
    let scramble: Buffer | undefined;
    return (data) => {
      if (scramble === undefined) {
        scramble = data.subarray(0, 20);
        return scrambleToken(channel.password, scramble);
      }
      if (data.length === 1 && data[0] === FAST_AUTH_SUCCESS) return null;
      if (data.length === 1 && data[0] === PERFORM_FULL_AUTHENTICATION) return fullPassword(channel, scramble, 'caching_sha2_password');
      throw new Error('unexpected caching_sha2_password packet from the server');
    };
  };
}

function sha256Password(channel: PasswordChannel): AuthPlugin {
  return () => (data) => fullPassword(channel, data.subarray(0, 20), 'sha256_password');
}

function fullPassword(channel: PasswordChannel, scramble: Buffer, plugin: string): Buffer {
  if (channel.provenSocket) return Buffer.from(`${channel.password}\0`, 'utf8');
  if (channel.serverPublicKey !== undefined) {
    const xored = xorRotating(Buffer.from(`${channel.password}\0`, 'utf8'), scramble);
    return crypto.publicEncrypt({ key: channel.serverPublicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING }, xored);
  }
  throw Object.assign(
    new Error(
      `the server asks for the whole password (${plugin}) over TCP without TLS; it is not sent in clear, nor encrypted with a key the other end provides: ` +
        'connect by the server\'s Unix socket (socket = ... in [client]), or set server_public_key_path in [client] to the server\'s public key (its public_key.pem)',
    ),
    { code: 'VMS_PASSWORD_REFUSED' },
  );
}

/** SHA256(password) XOR SHA256(SHA256(SHA256(password)), scramble), as the server expects. */
function scrambleToken(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const sha256 = (...parts: Buffer[]): Buffer => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
  const stage1 = sha256(Buffer.from(password, 'utf8'));
  const stage3 = sha256(sha256(stage1), scramble);
  return Buffer.from(stage1.map((byte, index) => byte ^ (stage3[index] ?? 0)));
}

function xorRotating(data: Buffer, key: Buffer): Buffer {
  return Buffer.from(data.map((byte, index) => byte ^ (key[index % key.length] ?? 0)));
}
