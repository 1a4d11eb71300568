/**
 * SHA-1 (FIPS 180-4) for the one use mysql2 has for it: the mysql_native_password scramble, computed at
 * every connection with a password. Loading node:crypto for it takes ~11 ms in the pinned runtime (39
 * modules), on the way to the lock of both freeze and the holder; this takes microseconds. The executable
 * gives mysql2 a node:crypto whose createHash('sha1') is this, and which loads the real module for
 * anything else (scripts/build.ts). test/unit/sha1.test.ts checks it against node:crypto.
 */
export class Sha1 {
  private readonly chunks: Buffer[] = [];

  update(data: string | Buffer | Uint8Array, encoding?: BufferEncoding): this {
    this.chunks.push(typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return this;
  }

  digest(): Buffer;
  digest(encoding: BufferEncoding): string;
  digest(encoding?: BufferEncoding): Buffer | string {
    const result = sha1(Buffer.concat(this.chunks));
    return encoding === undefined ? result : result.toString(encoding);
  }
}

function sha1(message: Buffer): Buffer {
  // Padding: a 1 bit, zeros, and the length in bits as a 64-bit big-endian number, to a multiple of 64 bytes.
  const padded = Buffer.alloc(Math.ceil((message.length + 9) / 64) * 64);
  message.copy(padded);
  padded[message.length] = 0x80;
  const bits = message.length * 8;
  padded.writeUInt32BE(Math.floor(bits / 0x1_0000_0000), padded.length - 8);
  padded.writeUInt32BE(bits >>> 0, padded.length - 4);

  const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
  const w = new Uint32Array(80);
  for (let block = 0; block < padded.length; block += 64) {
    for (let t = 0; t < 16; t += 1) w[t] = padded.readUInt32BE(block + t * 4);
    for (let t = 16; t < 80; t += 1) w[t] = rotl((w[t - 3] ?? 0) ^ (w[t - 8] ?? 0) ^ (w[t - 14] ?? 0) ^ (w[t - 16] ?? 0), 1);
    let [a, b, c, d, e] = h as [number, number, number, number, number];
    for (let t = 0; t < 80; t += 1) {
      const [f, k] = t < 20 ? [(b & c) | (~b & d), 0x5a827999] : t < 40 ? [b ^ c ^ d, 0x6ed9eba1] : t < 60 ? [(b & c) | (b & d) | (c & d), 0x8f1bbcdc] : [b ^ c ^ d, 0xca62c1d6];
      const temp = (rotl(a, 5) + f + e + k + (w[t] ?? 0)) >>> 0;
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = temp;
    }
    h[0] = ((h[0] ?? 0) + a) >>> 0;
    h[1] = ((h[1] ?? 0) + b) >>> 0;
    h[2] = ((h[2] ?? 0) + c) >>> 0;
    h[3] = ((h[3] ?? 0) + d) >>> 0;
    h[4] = ((h[4] ?? 0) + e) >>> 0;
  }
  const digest = Buffer.alloc(20);
  h.forEach((word, index) => digest.writeUInt32BE(word, index * 4));
  return digest;
}

function rotl(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}
