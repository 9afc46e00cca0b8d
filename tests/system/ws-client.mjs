// ws-client.mjs URL TOKEN_OR_COOKIE [INPUT...]: a terminal WebSocket client for
// the system tests. Sends each INPUT as a keystroke frame (a "@resize C R"
// input sends a resize frame instead, "@sleep MS" waits), then prints
// "SESSION <id>", the output received, and "EXIT <n>" if the shell ended.
// Authenticates with a bearer token, or with "cookie:NAME=VALUE" plus an
// Origin header from ORIGIN in the environment.
const [, , url, cred, ...inputs] = process.argv;
const headers = {};
if (cred.startsWith('cookie:')) headers.Cookie = cred.slice(7);
else if (cred !== 'none') headers.Authorization = 'Bearer ' + cred;
if (process.env.ORIGIN) headers.Origin = process.env.ORIGIN;
const ws = new WebSocket(url, { headers });
ws.binaryType = 'arraybuffer';
let out = '';
let session = '';
let exit = null;
const enc = new TextEncoder();
const frame = (kind, text) => {
  const body = enc.encode(text);
  const b = new Uint8Array(1 + body.length);
  b[0] = kind.charCodeAt(0);
  b.set(body, 1);
  return b;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const done = () => {
  console.log('SESSION ' + session);
  process.stdout.write(out);
  if (exit !== null) console.log('\nEXIT ' + exit);
  process.exit(0);
};
ws.onmessage = (e) => {
  const b = new Uint8Array(e.data);
  const text = new TextDecoder().decode(b.slice(1));
  if (b[0] === 49) session = JSON.parse(text).session;
  else if (b[0] === 50) exit = JSON.parse(text).exit;
  else out += text;
};
ws.onerror = () => { console.log('ERROR'); process.exit(2); };
ws.onclose = () => done();
ws.onopen = async () => {
  await sleep(300);
  for (const i of inputs) {
    if (i.startsWith('@sleep ')) await sleep(Number(i.slice(7)));
    else if (i.startsWith('@resize ')) {
      const [c, r] = i.slice(8).split(' ').map(Number);
      ws.send(frame('1', JSON.stringify({ cols: c, rows: r })));
    } else ws.send(frame('0', i));
    await sleep(150);
  }
  await sleep(1000);
  done();
};
setTimeout(done, 60000);
