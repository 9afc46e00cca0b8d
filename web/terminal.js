/* terminal.js - a full-window xterm.js terminal on a workspace's shell.
 *
 * terminal.html?ws=ID opens a new login shell; the id of its session (sent
 * by berthd first) goes into the URL hash (#session=...), so reloading the
 * page, or coming back to it, reattaches to the same shell and shows its
 * recent output again. A page without a session in the hash starts a new
 * shell: several terminals per workspace are several tabs.
 * terminal.html?ws=ID&task=NAME attaches to the terminal a task of the
 * workspace runs in (berthd started it; it has no session in the hash).
 *
 * Frames (docs/api.md): a type character then the payload. Client: '0'
 * input bytes, '1' {"cols","rows"}; server: '0' output, '1' {"session"},
 * '2' {"exit"}. The type is the ASCII digit (0x30...), as berthd sends it; a
 * raw 0/1/2 byte is accepted from the server too.
 * Needs common.js, xterm.js and addon-fit.js. */
(function () {
  'use strict';
  var B = window.Berth;

  var params = new URLSearchParams(location.search);
  var wsId = params.get('ws') || '';
  var task = params.get('task') || '';
  var statusEl = document.getElementById('term-status');
  var titleEl = document.getElementById('term-title');
  var reconnectBtn = document.getElementById('term-reconnect');
  var a11yBtn = document.getElementById('term-a11y');
  var newLink = document.getElementById('term-new');
  var host = document.getElementById('term');

  function status(state, text) {
    statusEl.setAttribute('data-state', state);
    statusEl.textContent = text;
  }

  if (!wsId) {
    status('down', 'No workspace: open a terminal from the workspaces page.');
    return;
  }
  if (typeof window.Terminal !== 'function' || !window.FitAddon) {
    status('down', 'The terminal could not load (xterm.js is missing from /vendor/).');
    return;
  }

  var enc = new TextEncoder();
  var dec = new TextDecoder();
  var wsName = wsId;
  var shellTitle = '';
  newLink.href = '/terminal.html?ws=' + encodeURIComponent(wsId);

  /* ------------------------------------------------------ the session --- */

  function hashSession() {
    var m = /(?:^#|&)session=([^&]*)/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : '';
  }
  function setSession(id) {
    session = id;
    var url = location.pathname + location.search + (id ? '#session=' + encodeURIComponent(id) : '');
    history.replaceState(null, '', url);
    try {
      if (id) sessionStorage.setItem('berth.term.' + wsId, id);
      else sessionStorage.removeItem('berth.term.' + wsId);
    } catch (e) { /* storage may be off */ }
  }
  var session = hashSession();

  /* -------------------------------------------------------- the terminal --- */

  var term = new window.Terminal({
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", ui-monospace, Menlo, Consolas, "Liberation Mono", monospace',
    fontSize: 14,
    scrollback: 10000,
    allowProposedApi: false,
    theme: {
      background: '#11151c',
      foreground: '#d8dee9',
      cursor: '#f0f4fc',
      selectionBackground: '#3b4f7a'
    }
  });
  var fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(host);
  window.berthTerminal = term; // for tests and the console
  safeFit();
  term.focus();

  function safeFit() {
    try {
      fit.fit();
    } catch (e) { /* not laid out yet */ }
  }

  // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (Ctrl+C is the shell's).
  term.attachCustomKeyEventHandler(function (ev) {
    if (ev.type !== 'keydown' || !ev.ctrlKey || !ev.shiftKey) return true;
    var k = ev.key.toLowerCase();
    if (k === 'c' && term.hasSelection() && navigator.clipboard) {
      navigator.clipboard.writeText(term.getSelection()).catch(function () {});
      ev.preventDefault();
      return false;
    }
    if (k === 'v' && navigator.clipboard && navigator.clipboard.readText) {
      navigator.clipboard.readText().then(function (t) { term.paste(t); }, function () {});
      ev.preventDefault();
      return false;
    }
    return true;
  });

  var T_DATA = 0x30; // '0'
  var T_CONTROL = 0x31; // '1'
  var T_EXIT = 0x32; // '2'

  function send(type, bytes) {
    if (!sock || sock.readyState !== WebSocket.OPEN) return;
    var buf = new Uint8Array(bytes.length + 1);
    buf[0] = type;
    buf.set(bytes, 1);
    sock.send(buf);
  }
  term.onData(function (d) { send(T_DATA, enc.encode(d)); });
  term.onBinary(function (d) {
    var b = new Uint8Array(d.length);
    for (var i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 255;
    send(T_DATA, b);
  });
  term.onResize(function (size) {
    send(T_CONTROL, enc.encode(JSON.stringify({ cols: size.cols, rows: size.rows })));
  });
  term.onTitleChange(function (t) {
    shellTitle = t;
    setTitle();
  });

  var fitQueued = false;
  function queueFit() {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(function () {
      fitQueued = false;
      safeFit();
    });
  }
  if (window.ResizeObserver) new ResizeObserver(queueFit).observe(host);
  window.addEventListener('resize', queueFit);

  function setTitle() {
    titleEl.textContent = task ? 'task ' + task + ' · ' + wsName : wsName;
    document.title = (shellTitle ? shellTitle + ' · ' : '') + wsName + ' · Terminal · Berth';
  }

  // Touch screens: keys their keyboards lack. The buttons do not take the
  // focus, so the on-screen keyboard stays up.
  Array.prototype.forEach.call(document.querySelectorAll('#term-keys button'), function (b) {
    b.addEventListener('mousedown', function (ev) { ev.preventDefault(); });
    b.addEventListener('click', function () {
      var seq = b.getAttribute('data-seq');
      // Arrows follow the application cursor mode (vim, less...).
      if (seq.length === 3 && term.modes && term.modes.applicationCursorKeysMode) seq = '\x1bO' + seq.charAt(2);
      send(T_DATA, enc.encode(seq));
      term.focus();
    });
  });

  a11yBtn.addEventListener('click', function () {
    var on = a11yBtn.getAttribute('aria-pressed') !== 'true';
    a11yBtn.setAttribute('aria-pressed', on ? 'true' : 'false');
    term.options.screenReaderMode = on;
    term.focus();
  });

  /* ------------------------------------------------------ the socket --- */

  var sock = null;
  var exited = false;
  var everAttached = false; // this page has shown a shell's output
  var retries = 0;
  var retryTimer = null;

  function connect() {
    retryTimer = null;
    reconnectBtn.hidden = true;
    exited = false;
    var asked = session;
    var q = 'cols=' + term.cols + '&rows=' + term.rows +
      (task ? '&task=' + encodeURIComponent(task) : asked ? '&session=' + encodeURIComponent(asked) : '');
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
      B.API + '/workspaces/' + encodeURIComponent(wsId) + '/terminal?' + q;
    status('connecting', asked ? 'Reattaching…' : 'Connecting…');
    var s = new WebSocket(url);
    s.binaryType = 'arraybuffer';
    sock = s;
    var opened = false;

    s.onopen = function () {
      opened = true;
      retries = 0;
      status('live', 'Connected');
      // The size may have changed while we were away.
      send(T_CONTROL, enc.encode(JSON.stringify({ cols: term.cols, rows: term.rows })));
    };
    s.onmessage = function (ev) {
      if (typeof ev.data === 'string') return; // not in the protocol
      var d = new Uint8Array(ev.data);
      if (!d.length) return;
      var type = d[0] < T_DATA ? d[0] + T_DATA : d[0];
      if (type === T_DATA) {
        term.write(d.subarray(1));
        return;
      }
      var msg;
      try {
        msg = JSON.parse(dec.decode(d.subarray(1)));
      } catch (e) {
        return;
      }
      if (type === T_CONTROL && msg.session && task) {
        if (everAttached) term.reset();
        everAttached = true;
        status('live', 'Connected to task ' + task);
      } else if (type === T_CONTROL && msg.session) {
        // A reattach replays the shell's recent output: start clean.
        if (everAttached) term.reset();
        if (asked && msg.session !== asked) {
          term.write('\x1b[2m[the earlier shell has ended; this is a new one]\x1b[0m\r\n');
        }
        everAttached = true;
        setSession(String(msg.session));
        status('live', 'Connected');
      } else if (type === T_EXIT) {
        exited = true;
        var code = typeof msg.exit === 'number' ? msg.exit : '?';
        term.write('\r\n\x1b[2m[the shell exited' + (code ? ' with status ' + code : '') + ']\x1b[0m\r\n');
        if (task) {
          // the task's terminal is gone: what the button opens is a plain shell
          task = '';
          history.replaceState(null, '', '/terminal.html?ws=' + encodeURIComponent(wsId));
          setTitle();
        }
        setSession('');
        status('down', 'Shell exited');
        reconnectBtn.textContent = 'New shell';
        reconnectBtn.hidden = false;
      }
    };
    s.onclose = function () {
      if (sock !== s) return;
      sock = null;
      if (exited) return;
      if (opened) {
        retry('Disconnected; reconnecting…');
        return;
      }
      diagnose(asked);
    };
  }

  function retry(text) {
    retries++;
    if (retries > 8) {
      status('down', 'Disconnected');
      reconnectBtn.textContent = 'Reconnect';
      reconnectBtn.hidden = false;
      return;
    }
    status('retry', text);
    var ms = Math.min(500 * Math.pow(2, retries - 1), 15000);
    retryTimer = setTimeout(connect, ms);
  }

  /* The socket never opened: say why, as the API tells it. */
  function diagnose(asked) {
    B.api('workspaces/' + encodeURIComponent(wsId)).then(function (ws) {
      wsName = ws.name;
      setTitle();
      if (ws.state !== 'running') {
        status('down', wsName + ' is ' + ws.state + (ws.state === 'stopped' ? ': start it from the workspaces page' : ''));
        reconnectBtn.textContent = 'Reconnect';
        reconnectBtn.hidden = false;
        return;
      }
      if (asked) {
        // The shell we asked for is gone (it lingers 10 minutes): a new one.
        setSession('');
        retries = 0;
        connect();
        return;
      }
      retry('Could not connect; retrying…');
    }, function (e) {
      if (e.status === 404) status('down', 'No such workspace (or it is not yours).');
      else retry('Could not connect (' + e.message + '); retrying…');
    });
  }

  reconnectBtn.addEventListener('click', function () {
    if (retryTimer) clearTimeout(retryTimer);
    retries = 0;
    if (everAttached && !session) term.reset();
    connect();
    term.focus();
  });

  B.api('workspaces/' + encodeURIComponent(wsId)).then(function (ws) {
    wsName = ws.name;
    setTitle();
  }, function () {});
  setTitle();
  connect();
})();
