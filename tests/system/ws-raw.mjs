// ws-raw.mjs PORT HOST PATH [TOKEN]: a WebSocket client over a plain socket
// to 127.0.0.1:PORT with the given Host header (so a port subdomain needs no
// name resolution). Sends a text and a 300 kB binary message, prints the
// status line, the echoes ("text ..." and "binary LEN SHA1"), then closes.
import net from 'node:net';
import crypto from 'node:crypto';
const [, , port, host, path, token] = process.argv;
const key = crypto.randomBytes(16).toString('base64');
const sock = net.connect(Number(port), '127.0.0.1');
const frame = (op, payload) => {
  const mask = crypto.randomBytes(4);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | op, 0x80 | n])
    : n < 65536 ? Buffer.from([0x80 | op, 0x80 | 126, n >> 8, n & 255])
    : Buffer.concat([Buffer.from([0x80 | op, 0x80 | 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; })()]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
};
const binary = Buffer.alloc(300000, 0);
for (let i = 0; i < binary.length; i++) binary[i] = (i * 7) & 255;
let buf = Buffer.alloc(0);
let upgraded = false;
let got = 0;
const finish = (code) => { sock.end(); process.exit(code); };
sock.on('connect', () => {
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
    (token ? `Authorization: Bearer ${token}\r\n` : '') + '\r\n');
});
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  if (!upgraded) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.subarray(0, end).toString();
    console.log(head.split('\r\n')[0]);
    buf = buf.subarray(end + 4);
    if (!head.startsWith('HTTP/1.1 101')) finish(1);
    const want = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    if (!head.toLowerCase().includes('sec-websocket-accept: ' + want.toLowerCase())) { console.log('bad accept'); finish(1); }
    upgraded = true;
    sock.write(frame(1, Buffer.from('ping over the proxy')));
    sock.write(frame(2, binary));
  }
  for (;;) {
    if (buf.length < 2) return;
    const op = buf[0] & 15;
    let len = buf[1] & 127, off = 2;
    if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
    if (buf.length < off + len) return;
    const payload = buf.subarray(off, off + len);
    buf = buf.subarray(off + len);
    if (op === 1) console.log('text ' + payload.toString());
    if (op === 2) console.log('binary ' + len + ' ' + crypto.createHash('sha1').update(payload).digest('hex') +
      (Buffer.compare(payload, binary) === 0 ? ' same' : ' different'));
    if (++got === 2) { sock.write(frame(8, Buffer.alloc(0))); finish(0); }
  }
});
sock.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(2); });
setTimeout(() => { console.log('TIMEOUT'); finish(3); }, 20000);
