// ide-hold.mjs URL TOKEN MS: holds WebSockets to VS Code (through berthd) open
// for MS ms and sends nothing, as an IDE tab that nobody touches. A socket
// that code-server closes is opened again, as the page would. Prints OPEN at
// the first connection, then the number of connections made.
const [, , url, token, ms] = process.argv;
const until = Date.now() + Number(ms);
let opened = 0;
const open = () =>
  new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token } });
    ws.onopen = () => {
      if (opened++ === 0) console.log('OPEN');
    };
    ws.onmessage = () => {};
    ws.onerror = () => {};
    ws.onclose = () => resolve();
    setTimeout(() => { ws.close(); }, Math.max(0, until - Date.now()));
  });
while (Date.now() < until) {
  await open();
  if (Date.now() < until) await new Promise((r) => setTimeout(r, 500));
}
console.log('CONNECTIONS ' + opened);
process.exit(opened > 0 ? 0 : 1);
