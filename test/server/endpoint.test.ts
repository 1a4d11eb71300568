/** Proving the server before the password goes out (src/server/endpoint.ts, src/server/authplugins.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { authPlugins } from '../../src/server/authplugins';
import { listenerOwner, procAddress, provenSocketPath, provenTcpStream } from '../../src/server/endpoint';
import { HookError } from '../../src/errors';

const uid = process.geteuid?.() ?? 0;

test('addresses are spelled as /proc/net/tcp spells them', () => {
  assert.equal(procAddress('127.0.0.1'), '0100007F');
  assert.equal(procAddress('::1'), '00000000000000000000000001000000');
  assert.equal(procAddress('::ffff:127.0.0.1'), '0000000000000000FFFF00000100007F');
});

test('the server end of a loopback connection is found with its owner; a listener of another owner is refused', async () => {
  const server = net.createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const socket = await provenTcpStream('127.0.0.1', port, [uid], 5000);
    assert.equal(listenerOwner(socket), uid);
    socket.destroy();
    await assert.rejects(provenTcpStream('127.0.0.1', port, [uid + 1], 5000), (error: unknown) => error instanceof HookError && /belongs to uid/.test(error.message));
  } finally {
    server.close();
  }
});

test('a socket is used only if it and its directories belong to the server owners', async () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-endpoint-'));
  const socketPath = path.join(directory, 'mysqld.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  try {
    assert.equal(provenSocketPath(socketPath, [uid]), fs.realpathSync(socketPath));
    assert.throws(() => provenSocketPath(socketPath, [uid + 1]), /belongs to uid/);
    fs.chmodSync(directory, 0o777);
    assert.throws(() => provenSocketPath(socketPath, [uid]), /writable by group or others/);
    assert.throws(() => provenSocketPath(path.join(directory, 'none.sock'), [uid]), { code: 'ENOENT' });
  } finally {
    server.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

const scramble = crypto.randomBytes(20);
const FULL_AUTH = Buffer.from([4]);

test('caching_sha2_password: the fast-auth token is the one the server computes', () => {
  const handler = authPlugins({ password: 'pw', provenSocket: false })['caching_sha2_password']?.({ connection: {} });
  const token = handler?.(scramble);
  const sha256 = (data: Buffer): Buffer => crypto.createHash('sha256').update(data).digest();
  const stage1 = sha256(Buffer.from('pw'));
  const expected = Buffer.from(stage1.map((byte, index) => byte ^ (sha256(Buffer.concat([sha256(stage1), scramble]))[index] ?? 0)));
  assert.deepEqual(token, expected);
});

test('full authentication: in clear only over a proven socket; over TCP only with the configured key, never asking for one', () => {
  const overSocket = authPlugins({ password: 'pw', provenSocket: true })['caching_sha2_password']?.({ connection: {} });
  overSocket?.(scramble);
  assert.deepEqual(overSocket?.(FULL_AUTH), Buffer.from('pw\0'));

  const overTcp = authPlugins({ password: 'pw', provenSocket: false })['caching_sha2_password']?.({ connection: {} });
  overTcp?.(scramble);
  assert.throws(() => overTcp?.(FULL_AUTH), /is not sent in clear.*server_public_key_path/);
  assert.throws(() => authPlugins({ password: 'pw', provenSocket: false })['sha256_password']?.({ connection: {} })(scramble), /server_public_key_path/);

  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const withKey = authPlugins({ password: 'pw', provenSocket: false, serverPublicKey: publicKey })['caching_sha2_password']?.({ connection: {} });
  withKey?.(scramble);
  const encrypted = withKey?.(FULL_AUTH);
  assert.ok(encrypted !== null && encrypted !== undefined);
  const xored = crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING }, encrypted);
  assert.equal(Buffer.from(xored.map((byte, index) => byte ^ (scramble[index % 20] ?? 0))).toString(), 'pw\0');
});
