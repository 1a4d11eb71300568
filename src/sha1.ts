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

  // Plain 32-bit integer arithmetic (| 0) and no allocation in the loops: it runs once per connection,
  // in V8's interpreter.
  let h0 = 0x67452301;
  let h1 = 0xefcdab89 | 0;
  let h2 = 0x98badcfe | 0;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0 | 0;
  const w = new Int32Array(80);
  for (let block = 0; block < padded.length; block += 64) {
    for (let t = 0; t < 16; t += 1) w[t] = padded.readInt32BE(block + t * 4);
    for (let t = 16; t < 80; t += 1) {
      const x = w[t - 3]! ^ w[t - 8]! ^ w[t - 14]! ^ w[t - 16]!;
      w[t] = (x << 1) | (x >>> 31);
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let t = 0; t < 80; t += 1) {
      let f: number;
      let k: number;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc | 0;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6 | 0;
      }
      const temp = (((a << 5) | (a >>> 27)) + f + e + k + w[t]!) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = temp;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const digest = Buffer.alloc(20);
  digest.writeInt32BE(h0, 0);
  digest.writeInt32BE(h1, 4);
  digest.writeInt32BE(h2, 8);
  digest.writeInt32BE(h3, 12);
  digest.writeInt32BE(h4, 16);
  return digest;
}
