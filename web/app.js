/* app.js - the dashboard: the caller's workspaces with live state (server-sent
 * events from /api/v1/stream), their actions, the create form and the logs
 * (fetch + ReadableStream on logs?follow=1). Needs common.js. */
(function () {
  'use strict';
  var B = window.Berth;
  var el = B.el;

  var BUSY = { creating: 1, starting: 1, stopping: 1, rebuilding: 1, deleting: 1 };
  var STATE_TEXT = {
    creating: 'Creating',
    starting: 'Starting',
    running: 'Running',
    stopping: 'Stopping',
    stopped: 'Stopped',
    rebuilding: 'Rebuilding',
    deleting: 'Deleting',
    failed: 'Failed',
    unavailable: 'Unavailable'
  };
  var MAX_LOG_LINES = 5000;

  var list = document.getElementById('ws-list');
  var listStatus = document.getElementById('list-status');
  var countEl = document.getElementById('ws-count');
  var liveEl = document.getElementById('live');
  var cards = new Map(); // id -> card
  var loaded = false;

  /* ------------------------------------------------------------ helpers --- */

  var rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat('en', { numeric: 'auto' }) : null;
  function ago(iso) {
    var t = Date.parse(iso);
    if (isNaN(t)) return '';
    var s = Math.round((t - Date.now()) / 1000);
    var units = [
      ['year', 31536000],
      ['month', 2592000],
      ['week', 604800],
      ['day', 86400],
      ['hour', 3600],
      ['minute', 60]
    ];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(s) >= units[i][1]) {
        var n = Math.round(s / units[i][1]);
        return rtf ? rtf.format(n, units[i][0]) : Math.abs(n) + ' ' + units[i][0] + 's ago';
      }
    }
    return 'just now';
  }

  function checkout(ws) {
    var short = ws.commit ? ws.commit.slice(0, 7) : '';
    if (ws.branch) return ws.branch + (short ? ' @ ' + short : '');
    if (ws.ref) return ws.ref + (short ? ' @ ' + short : '');
    if (short) return short;
    return 'default branch';
  }

  function checkoutLabel(ws) {
    if (ws.branch) return 'Branch';
    if (ws.ref) return 'Ref';
    if (ws.commit) return 'Commit';
    return 'Branch';
  }

  function hidden(node, yes) {
    node.hidden = !!yes;
  }

  /* ------------------------------------------------------------- cards --- */

  function makeCard(ws) {
    var id = ws.id;
    var c = { id: id, ws: ws, logCtrl: null, logLines: 0, logLoaded: false, portsFor: null };
    var hid = 'ws-' + id + '-name';
    c.nameEl = el('h3', { id: hid, class: 'ws-name', tabindex: '-1' });
    c.stateEl = el('span', { class: 'state' });
    c.lifeEl = el('span', { class: 'lifecycle muted', hidden: true });
    c.repoEl = el('dd', { class: 'ws-repo' });
    c.refDt = el('dt', { text: 'Branch' });
    c.refEl = el('dd');
    c.timeEl = el('time');
    c.idleEl = el('dd', { class: 'ws-idle' });
    c.idleDt = el('dt', { text: 'Idle stop' });
    c.idleNotice = el('p', { class: 'ws-idle-notice', role: 'status', hidden: true });
    c.idleSelect = el('select', { 'aria-label': 'Idle timeout of ' + ws.name, 'data-setting': 'idle' });
    [['default', 'Your setting'], ['15m', '15 minutes'], ['30m', '30 minutes'], ['1h', '1 hour'],
      ['2h', '2 hours'], ['4h', '4 hours'], ['never', 'Never']].forEach(function (o) {
      c.idleSelect.appendChild(el('option', { value: o[0], text: o[1] }));
    });
    c.idleSelect.addEventListener('change', function () {
      var v = c.idleSelect.value;
      putSettings(c, { idle_timeout: v === 'default' ? null : v });
    });
    c.pinBox = el('input', { type: 'checkbox', 'data-setting': 'pin' });
    c.pinBox.addEventListener('change', function () { putSettings(c, { pinned: c.pinBox.checked }); });
    c.settingsErr = el('p', { class: 'action-error', role: 'alert', hidden: true });
    c.settingsEl = el('details', { class: 'ws-settings' },
      el('summary', null, 'Settings'),
      el('label', { class: 'inline' }, 'Stop when idle for ', c.idleSelect),
      el('label', { class: 'inline' }, c.pinBox, ' Keep (pinned: never deleted for being unused)'),
      c.settingsErr);
    // Not an alert region: a failure is announced once, with the state change.
    c.errorEl = el('div', { class: 'ws-error', hidden: true });
    c.readyEl = el('p', { class: 'ws-ready', hidden: true });
    c.actionErr = el('p', { class: 'action-error', role: 'alert', hidden: true });

    function label(text) {
      return [text, el('span', { class: 'visually-hidden', text: ' ' + ws.name })];
    }
    function btn(text, cls, onclick) {
      var b = el('button', { type: 'button', class: cls, onclick: onclick });
      label(text).forEach(function (n) {
        b.appendChild(typeof n === 'string' ? document.createTextNode(n) : n);
      });
      return b;
    }
    c.ideBtn = el('a', { class: 'button primary', href: '/w/' + encodeURIComponent(id) + '/ide/',
      target: '_blank', rel: 'noopener', 'data-action': 'ide' },
      'Open VS Code', el('span', { class: 'visually-hidden', text: ' for ' + ws.name + ' (opens in a new tab)' }));
    c.termBtn = el('a', { class: 'button', href: '/terminal.html?ws=' + encodeURIComponent(id),
      target: '_blank', rel: 'noopener', 'data-action': 'terminal' },
      'Terminal', el('span', { class: 'visually-hidden', text: ' for ' + ws.name + ' (opens in a new tab)' }));
    c.startBtn = btn('Start', '', function () { if (!c.pending) act(c, 'start'); });
    c.stopBtn = btn('Stop', '', function () { if (!c.pending) act(c, 'stop'); });
    c.rebuildBtn = btn('Rebuild', '', function () { if (!c.pending) act(c, 'rebuild'); });
    c.deleteBtn = btn('Delete', 'danger', function () { if (!c.pending) confirmDelete(c); });
    [c.startBtn, c.stopBtn, c.rebuildBtn, c.deleteBtn].forEach(function (b, i) {
      b.setAttribute('data-action', ['start', 'stop', 'rebuild', 'delete'][i]);
    });

    c.tasksList = el('ul', { class: 'tasks-list' });
    c.tasksEl = el('section', { class: 'ws-tasks', 'aria-label': 'Tasks of ' + ws.name, hidden: true },
      el('h4', { text: 'Tasks' }), c.tasksList);
    c.tasksKey = '';

    c.portsList = el('ul', { class: 'ports-list' });
    c.portsEl = el('section', { class: 'ws-ports', 'aria-label': 'Ports of ' + ws.name, hidden: true },
      el('h4', { text: 'Ports' }), c.portsList);

    c.logPre = el('pre', { class: 'log', tabindex: '0', 'aria-label': 'Log of ' + ws.name });
    c.logState = el('span', { class: 'log-state muted' });
    c.logEl = el('details', { class: 'ws-log' },
      el('summary', null, 'Log ', c.logState), c.logPre);
    c.logEl.addEventListener('toggle', function () {
      if (c.logEl.open && !c.logCtrl && !c.logLoaded) loadLog(c, null);
      renderError(c);
    });

    c.li = el('li', { class: 'ws-card', 'data-id': id, 'aria-labelledby': hid },
      el('div', { class: 'ws-head' }, c.nameEl, c.stateEl, c.lifeEl),
      el('dl', { class: 'ws-meta' },
        el('div', null, el('dt', { text: 'Repository' }), c.repoEl),
        el('div', null, c.refDt, c.refEl),
        el('div', null, el('dt', { text: 'Created' }), el('dd', null, c.timeEl)),
        el('div', null, c.idleDt, c.idleEl)),
      c.idleNotice,
      c.errorEl,
      c.readyEl,
      el('div', { class: 'ws-actions' }, c.ideBtn, c.termBtn, c.startBtn, c.stopBtn, c.rebuildBtn, c.deleteBtn),
      c.actionErr,
      c.tasksEl,
      c.portsEl,
      c.settingsEl,
      c.logEl);
    return c;
  }

  /* "25 min", "2 h 5 min", "40 s" */
  function span(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    var m = Math.round(s / 60);
    return Math.floor(m / 60) + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
  }

  /* When the workspace stops for idleness and what kept it alive last; for
   * a stopped one, when retention deletes it. */
  function renderIdle(c) {
    var ws = c.ws;
    var idle = ws.idle || {};
    var since = (Date.now() - (c.idleAt || Date.now())) / 1000;
    var text = '';
    var notice = '';
    if (ws.state === 'running') {
      var last = idle.last_activity_kind ? 'last: ' + idle.last_activity_kind + ', ' +
        span((idle.idle_seconds || 0) + since) + ' ago' : '';
      if (idle.timeout_minutes == null) text = 'never' + (last ? ' (' + last + ')' : '');
      else {
        var left = (idle.stops_in_seconds || 0) - since;
        text = 'in ' + span(left) + ' (after ' + span(idle.timeout_minutes * 60) + ' idle' +
          (last ? '; ' + last : '') + ')';
        if (idle.warning) notice = 'No activity: ' + ws.name + ' stops in ' + span(left) + ' unless it is used.';
      }
    } else if (idle.deleted_at) {
      text = 'deleted ' + ago(idle.deleted_at) + ' unless started or pinned';
      if (idle.deletion_warning) notice = ws.name + ' is unused and will be deleted ' + ago(idle.deleted_at) +
        '. Start it or pin it (Settings) to keep it.';
    }
    c.idleEl.textContent = text || '—';
    c.idleDt.textContent = ws.state === 'running' ? 'Idle stop' : 'Retention';
    c.idleNotice.textContent = notice;
    hidden(c.idleNotice, !notice);
    var own = idle.workspace_timeout_minutes;
    var v = own == null ? 'default' : own === 'never' ? 'never'
      : own % 60 === 0 ? own / 60 + 'h' : own + 'm';
    if (!c.idleSelect.querySelector('option[value="' + v + '"]')) {
      c.idleSelect.appendChild(el('option', { value: v, text: v }));
    }
    if (document.activeElement !== c.idleSelect) c.idleSelect.value = v;
    c.pinBox.checked = !!idle.pinned;
  }

  function putSettings(c, body) {
    hidden(c.settingsErr, true);
    B.api('workspaces/' + encodeURIComponent(c.id) + '/settings', { method: 'PUT', body: body }).then(
      function (idle) {
        c.ws.idle = idle;
        c.idleAt = Date.now();
        renderIdle(c);
        B.announce('Saved the settings of ' + c.ws.name);
      },
      function (e) {
        c.settingsErr.textContent = 'Could not save: ' + e.message;
        hidden(c.settingsErr, false);
        renderIdle(c);
      });
  }

  function renderCard(c, prev) {
    var ws = c.ws;
    var s = ws.state;
    var busy = !!BUSY[s];
    c.nameEl.textContent = ws.name;
    c.li.setAttribute('data-state', s);
    c.stateEl.className = 'state state-' + s + (busy ? ' busy' : '');
    c.stateEl.textContent = STATE_TEXT[s] || s;
    // ready (waitFor) while later lifecycle commands still run, or cut short
    var life = ws.lifecycle || '';
    var lifeText = s !== 'running' ? ''
      : life.indexOf('running ') === 0 ? life.slice(8) + ' still running…'
      : life === 'interrupted' ? 'lifecycle commands interrupted; rebuild to run them again' : '';
    if (s === 'unavailable')
      lifeText = 'its node ' + (ws.node || '') + ' is down or drained: it comes back as it was when the node does';
    else if (ws.node && !lifeText)
      lifeText = 'on node ' + ws.node;
    c.lifeEl.textContent = lifeText;
    hidden(c.lifeEl, !lifeText);
    c.repoEl.textContent = ws.repo;
    c.repoEl.title = ws.repo;
    c.refDt.textContent = checkoutLabel(ws);
    c.refEl.textContent = checkout(ws);
    c.timeEl.setAttribute('datetime', ws.created_at || '');
    c.timeEl.title = ws.created_at ? new Date(ws.created_at).toLocaleString() : '';
    c.timeEl.textContent = ago(ws.created_at);
    c.idleAt = Date.now();
    renderIdle(c);

    var focused = c.li.contains(document.activeElement) ? document.activeElement : null;
    // VS Code does not reach a workspace on a cluster yet (docs/cluster.md)
    hidden(c.ideBtn, s !== 'running' || ws.ide === false);
    hidden(c.termBtn, s !== 'running');
    hidden(c.startBtn, !(s === 'stopped' || s === 'failed'));
    c.startBtn.firstChild.nodeValue = s === 'failed' ? 'Retry' : 'Start';
    hidden(c.stopBtn, s !== 'running');
    hidden(c.rebuildBtn, !(s === 'running' || s === 'stopped' || s === 'failed'));
    hidden(c.deleteBtn, busy);
    setPending(c, !!c.pending);
    // Never leave focus on a button that just disappeared.
    if (focused && focused.hidden) c.nameEl.focus();

    renderError(c);
    renderTasks(c);
    if (s === 'running' && c.portsFor !== 'running') loadPorts(c);
    if (s !== 'running') {
      c.portsFor = null;
      hidden(c.portsEl, true);
    }

    if (prev && prev !== s) {
      if (s === 'failed') B.announce(ws.name + ' failed: ' + (ws.error || 'no reason given'));
      else B.announce(ws.name + ' is ' + (STATE_TEXT[s] || s).toLowerCase());
      if (c.waitReady && !busy) readyOrNot(c);
    }
  }

  function renderError(c) {
    var ws = c.ws;
    c.errorEl.textContent = '';
    if (!ws.error) {
      hidden(c.errorEl, true);
      return;
    }
    var failed = ws.state === 'failed';
    c.errorEl.className = 'ws-error ' + (failed ? 'is-failed' : 'is-warning');
    var title = failed ? 'Failed' : 'A lifecycle command failed; the workspace is usable';
    if (failed && c.failedStep) title = 'Failed while ' + c.failedStep;
    c.errorEl.appendChild(el('strong', { class: 'error-title', text: title }));
    c.errorEl.appendChild(el('p', { class: 'error-message', text: ws.error }));
    if (!c.logEl.open) {
      c.errorEl.appendChild(el('button', { type: 'button', class: 'linkish', onclick: function () {
        c.logEl.open = true;
        c.logPre.focus();
      } }, 'Show the log'));
    }
    hidden(c.errorEl, false);
    if (failed && c.failedStepFor !== ws.updated_at) {
      c.failedStepFor = ws.updated_at;
      findFailedStep(c);
    }
  }

  /* The step a failed workspace was in: its last event that is not a state
   * change ("cloning '...'", "creating container from '...'", ...). */
  function findFailedStep(c) {
    B.api('workspaces/' + encodeURIComponent(c.id) + '/events').then(function (r) {
      var ev = (r && r.events) || [];
      var step = null;
      for (var i = ev.length - 1; i >= 0; i--) {
        if (ev[i].type !== 'state') {
          step = ev[i].message;
          break;
        }
      }
      if (step && step !== c.failedStep) {
        c.failedStep = step;
        if (cards.get(c.id) === c) renderError(c);
      }
    }, function () {});
  }

  /* After a create (or start/rebuild), once the workspace rests: say so and
   * offer VS Code and the terminal. */
  function readyOrNot(c) {
    c.waitReady = false;
    var ws = c.ws;
    if (ws.state === 'running') {
      c.readyEl.textContent = '';
      c.readyEl.appendChild(document.createTextNode(ws.name + ' is ready. '));
      hidden(c.readyEl, false);
      c.li.classList.add('just-ready');
      var a = document.activeElement;
      if (!a || a === document.body || c.li.contains(a) || a.id === 'create-submit') c.ideBtn.focus();
    } else if (ws.state === 'failed') {
      c.logEl.open = true;
      c.li.classList.remove('just-ready');
    }
  }

  function insertSorted(c) {
    // Newest first, as the API lists them.
    var t = c.ws.created_at || '';
    var kids = list.children;
    for (var i = 0; i < kids.length; i++) {
      var other = cards.get(kids[i].getAttribute('data-id'));
      if (other && (other.ws.created_at || '') < t) {
        list.insertBefore(c.li, kids[i]);
        return;
      }
    }
    list.appendChild(c.li);
  }

  function upsert(ws) {
    if (!ws || !ws.id) return null;
    var c = cards.get(ws.id);
    if (!c) {
      c = makeCard(ws);
      cards.set(ws.id, c);
      insertSorted(c);
      renderCard(c, null);
      updateCount();
      return c;
    }
    var prev = c.ws.state;
    c.ws = ws;
    renderCard(c, loaded ? prev : null);
    return c;
  }

  function removeCard(id) {
    var c = cards.get(id);
    if (!c) return;
    if (c.logCtrl) c.logCtrl.abort();
    var hadFocus = c.li.contains(document.activeElement);
    cards.delete(id);
    c.li.remove();
    updateCount();
    B.announce(c.ws.name + ' was deleted');
    if (hadFocus) document.getElementById('list-title').focus();
  }

  function updateCount() {
    var n = cards.size;
    countEl.textContent = n ? n + (n === 1 ? ' workspace' : ' workspaces') : '';
    if (!loaded) return;
    if (n) {
      hidden(listStatus, true);
    } else {
      listStatus.textContent = 'No workspaces yet. Create one from a git repository.';
      hidden(listStatus, false);
    }
  }

  /* ---------------------------------------------------------- actions --- */

  /* While an action is on its way the buttons say they are unavailable but
   * stay focusable (a disabled button would drop the keyboard focus). */
  function setPending(c, yes) {
    c.pending = yes;
    [c.startBtn, c.stopBtn, c.rebuildBtn, c.deleteBtn].forEach(function (b) {
      if (yes) b.setAttribute('aria-disabled', 'true');
      else b.removeAttribute('aria-disabled');
    });
  }

  function act(c, action) {
    var path = 'workspaces/' + encodeURIComponent(c.id) + (action === 'delete' ? '' : '/' + action);
    setPending(c, true);
    hidden(c.actionErr, true);
    c.readyEl.hidden = true;
    c.li.classList.remove('just-ready');
    B.api(path, { method: action === 'delete' ? 'DELETE' : 'POST' }).then(
      function (ws) {
        setPending(c, false);
        if (cards.get(c.id) !== c) return;
        var offset = ws && ws.log_offset;
        if (action === 'start' || action === 'rebuild') c.waitReady = true;
        if (ws) upsert(ws);
        else renderCard(c, null);
        if (typeof offset === 'number' && action !== 'delete') followLog(c, offset);
        else if (action === 'delete') watchUntilRest(c, offset);
      },
      function (e) {
        setPending(c, false);
        if (e.status === 404) return removeCard(c.id);
        c.actionErr.textContent = 'Could not ' + action + ' ' + c.ws.name + ': ' + e.message;
        hidden(c.actionErr, false);
        renderCard(c, null);
        refresh(c.id);
      }
    );
  }

  /* Delete: the log follower ends when the workspace is gone; then check. */
  function watchUntilRest(c, offset) {
    if (typeof offset !== 'number') return;
    streamLog(c, offset, true).then(function () { refresh(c.id); });
  }

  var dialog = document.getElementById('confirm');
  function confirmDelete(c) {
    document.getElementById('confirm-title').textContent = 'Delete ' + c.ws.name + '?';
    document.getElementById('confirm-text').textContent =
      'Its container and its files (uncommitted and unpushed work included) are removed. This cannot be undone.';
    dialog.returnValue = '';
    dialog.onclose = function () {
      dialog.onclose = null;
      if (dialog.returnValue === 'ok') act(c, 'delete');
      else if (cards.get(c.id) === c) c.deleteBtn.focus();
    };
    dialog.showModal();
  }

  /* One workspace again from the API (after a log stream ends: covers a
   * missed or late event). 404: it is gone. */
  function refresh(id) {
    return B.api('workspaces/' + encodeURIComponent(id)).then(
      function (ws) { upsert(ws); },
      function (e) { if (e.status === 404) removeCard(id); }
    );
  }

  /* -------------------------------------------------------------- logs --- */

  function appendLog(c, text) {
    var pre = c.logPre;
    var atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    var lines = text.split('\n');
    var frag = document.createDocumentFragment();
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (i === lines.length - 1) {
        // The rest of an unfinished line waits for its newline.
        c.logTail = line;
        break;
      }
      var cls = line.slice(0, 4) === '==> ' ? (/^==> failed\b/.test(line) ? 'log-step log-fail' : 'log-step') : null;
      frag.appendChild(el('span', { class: cls }, line + '\n'));
      c.logLines++;
    }
    pre.appendChild(frag);
    while (c.logLines > MAX_LOG_LINES && pre.firstChild) {
      pre.removeChild(pre.firstChild);
      c.logLines--;
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  /* Read logs?after=N[&follow=1] into the card's log panel. Resolves when
   * the server ends the stream (the workspace rests) or it is aborted. */
  function streamLog(c, after, follow) {
    if (c.logCtrl) c.logCtrl.abort();
    var ctrl = new AbortController();
    c.logCtrl = ctrl;
    c.logPre.textContent = '';
    c.logLines = 0;
    c.logTail = '';
    c.logState.textContent = follow ? '(live)' : '';
    var q = [];
    if (follow) q.push('follow=1');
    if (after !== null && after !== undefined) q.push('after=' + after);
    var url = 'workspaces/' + encodeURIComponent(c.id) + '/logs' + (q.length ? '?' + q.join('&') : '');
    return B.request(url, { accept: 'text/plain', signal: ctrl.signal }).then(function (res) {
      var dec = new TextDecoder();
      if (!res.body || !res.body.getReader) {
        return res.text().then(function (t) { appendLog(c, t); });
      }
      var reader = res.body.getReader();
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) {
            appendLog(c, c.logTail + dec.decode() + (c.logTail ? '\n' : ''));
            c.logTail = '';
            return;
          }
          var t = dec.decode(r.value, { stream: true });
          appendLog(c, c.logTail + t);
          return pump();
        });
      }
      return pump();
    }).then(
      function () {
        if (c.logCtrl === ctrl) {
          c.logCtrl = null;
          c.logLoaded = true;
          c.logState.textContent = '';
        }
      },
      function (e) {
        if (c.logCtrl === ctrl) c.logCtrl = null;
        if (e && e.name === 'AbortError') return;
        c.logState.textContent = '';
        if (e && e.status === 404) return;
        appendLog(c, '[could not read the log: ' + (e && e.message) + ']\n');
      }
    );
  }

  /* Follow an action's log (create, start, rebuild...) in the open panel. */
  function followLog(c, after) {
    c.logEl.open = true;
    streamLog(c, after, true).then(function () { refresh(c.id); });
  }

  /* The whole log, live while the workspace is busy. */
  function loadLog(c) {
    var busy = !!BUSY[c.ws.state];
    streamLog(c, null, busy).then(function () { if (busy) refresh(c.id); });
  }

  /* ------------------------------------------------------------- ports --- */

  /* Ports: read once when the workspace starts, then kept live by the
   * stream's "ports" events. A port that appears later (a dev server was
   * started) is announced with a notification, unless its portsAttributes
   * say onAutoForward "silent" (or "ignore", which the server leaves out). */
  /* The terminals the workspace's tasks run in (.gitpod.yml tasks,
   * customizations.berth.tasks): a link to each while it runs. */
  function renderTasks(c) {
    var tasks = c.ws.state === 'running' && Array.isArray(c.ws.tasks) ? c.ws.tasks : [];
    var key = tasks.join('\n');
    if (key === c.tasksKey) return;
    c.tasksKey = key;
    c.tasksList.textContent = '';
    tasks.forEach(function (name) {
      var href = '/terminal.html?ws=' + encodeURIComponent(c.id) + '&task=' + encodeURIComponent(name);
      c.tasksList.appendChild(el('li', { 'data-task': name },
        el('a', { href: href, target: '_blank', rel: 'noopener' }, name,
          el('span', { class: 'visually-hidden', text: ' (task terminal, opens in a new tab)' }))));
    });
    hidden(c.tasksEl, !tasks.length);
  }

  function loadPorts(c, attempt) {
    attempt = attempt || 0;
    c.portsFor = 'running';
    B.request('workspaces/' + encodeURIComponent(c.id) + '/ports').then(function (res) {
      return res.json();
    }).then(function (r) {
      if (cards.get(c.id) !== c || c.ws.state !== 'running') return;
      renderPorts(c, (r && r.ports) || [], !!(r && r.detecting));
      if (r && r.detecting && attempt < 5) {
        setTimeout(function () {
          if (cards.get(c.id) === c && c.ws.state === 'running') loadPorts(c, attempt + 1);
        }, 2000);
      }
    }).catch(function () {
      hidden(c.portsEl, true);
    });
  }

  function portText(p) {
    return String(p.port) + (p.label ? ' — ' + p.label : p.process ? ' — ' + p.process : '') +
      (p.protocol && p.protocol !== 'http' ? ' (' + p.protocol + ')' : '') +
      (p.listening === false ? ' (not listening yet)' : '');
  }

  function portLink(p, text) {
    var url = p.url;
    var safe = url && url.charAt(0) === '/' && url.charAt(1) !== '/';
    return safe
      ? el('a', { href: url, target: '_blank', rel: 'noopener' }, text,
        el('span', { class: 'visually-hidden', text: ' (opens in a new tab)' }))
      : text;
  }

  function renderPorts(c, ports, detecting) {
    var before = c.knownPorts;
    c.knownPorts = {};
    c.portsList.textContent = '';
    ports.forEach(function (p) {
      if (!p || typeof p.port !== 'number') return;
      c.knownPorts[p.port] = p.listening !== false;
      c.portsList.appendChild(el('li', { 'data-port': String(p.port) }, portLink(p, portText(p)),
        el('span', { class: 'muted', text: ' · ' + (p.visibility || 'private') })));
      // newly listening since the last list (not on the first one)
      if (before && !before[p.port] && p.listening !== false &&
          (p.on_auto_forward || 'notify') === 'notify') {
        notifyPort(c, p);
      }
    });
    if (!ports.length) {
      c.portsList.appendChild(el('li', { class: 'muted',
        text: detecting ? 'Looking for listening ports…' : 'No forwarded ports.' }));
    }
    hidden(c.portsEl, false);
  }

  var toasts = document.getElementById('toasts');

  function notifyPort(c, p) {
    var text = (p.label ? p.label + ' on port ' : 'Port ') + p.port + ' of ' + c.ws.name +
      ' is available';
    var close = el('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×' });
    var t = el('div', { class: 'toast', role: 'status', 'data-port': String(p.port) },
      el('span', { text: text + ' ' }), portLink(p, 'Open'), close);
    close.addEventListener('click', function () { t.remove(); });
    toasts.appendChild(t);
    setTimeout(function () { t.remove(); }, 15000);
  }

  /* -------------------------------------------------------- the list --- */

  function loadList() {
    return B.api('workspaces').then(function (r) {
      var seen = {};
      ((r && r.workspaces) || []).forEach(function (ws) {
        seen[ws.id] = 1;
        upsert(ws);
      });
      Array.from(cards.keys()).forEach(function (id) {
        if (!seen[id]) removeCard(id);
      });
      loaded = true;
      updateCount();
    }, function (e) {
      listStatus.textContent = 'Could not load the workspaces: ' + e.message;
      listStatus.classList.add('form-error');
      hidden(listStatus, false);
    });
  }

  /* --------------------------------------------------- live updates --- */

  var es = null;
  var retryMs = 1000;
  var retryTimer = null;
  var everOpen = false;

  function setLive(state, text) {
    liveEl.setAttribute('data-state', state);
    liveEl.textContent = text;
  }

  function connect() {
    retryTimer = null;
    if (es) es.close();
    es = new EventSource(B.API + '/stream', { withCredentials: true });
    es.addEventListener('open', function () {
      retryMs = 1000;
      setLive('live', 'Live');
      // After a reconnect: catch up with what happened meanwhile (a deletion
      // has no event to replay).
      if (everOpen) loadList();
      everOpen = true;
    });
    es.addEventListener('workspace', function (ev) {
      try {
        upsert(JSON.parse(ev.data));
      } catch (e) { /* a malformed event: ignore */ }
    });
    es.addEventListener('ports', function (ev) {
      try {
        var msg = JSON.parse(ev.data);
        var c = cards.get(msg.id);
        if (c && c.ws.state === 'running') renderPorts(c, msg.ports || [], false);
      } catch (e) { /* ignore */ }
    });
    es.addEventListener('deleted', function (ev) {
      try {
        removeCard(JSON.parse(ev.data).id);
      } catch (e) { /* ignore */ }
    });
    es.addEventListener('error', function () {
      if (es.readyState === EventSource.CONNECTING) {
        setLive('retry', 'Reconnecting…');
        return;
      }
      // Closed for good (an HTTP error): a 401 means the session is over.
      es.close();
      setLive('down', 'Offline');
      B.api('me').then(function () {
        if (!retryTimer) retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      }, function () {
        if (!retryTimer) retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      });
    });
  }

  /* ------------------------------------------------------ create form --- */

  var form = document.getElementById('create-form');
  var repoIn = document.getElementById('repo');
  var kindSel = document.getElementById('ref-kind');
  var refIn = document.getElementById('ref-value');
  var refHint = document.getElementById('ref-hint');
  var nameIn = document.getElementById('ws-name');
  var dcIn = document.getElementById('devcontainer');
  var createErr = document.getElementById('create-error');
  var submit = document.getElementById('create-submit');
  var submitting = false;

  var KINDS = {
    branch: ['Branch to check out', 'default branch', 'Leave empty for the repository’s default branch.'],
    commit: ['Commit to check out', 'a1b2c3d', 'A full or abbreviated commit hash.'],
    ref: ['Ref to check out', 'refs/pull/7/head', 'Any ref the remote has, for example refs/pull/7/head.']
  };
  function syncKind() {
    var k = KINDS[kindSel.value];
    refIn.setAttribute('aria-label', k[0]);
    refIn.placeholder = k[1];
    refHint.textContent = k[2];
  }
  kindSel.addEventListener('change', syncKind);

  function formError(msg, field) {
    createErr.textContent = msg;
    hidden(createErr, false);
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    hidden(createErr, true);
    [repoIn, refIn, nameIn, dcIn].forEach(function (f) { f.removeAttribute('aria-invalid'); });
    var repo = repoIn.value.trim();
    var ref = refIn.value.trim();
    var name = nameIn.value.trim();
    var dc = dcIn.value.trim();
    if (!repo) return formError('Enter the repository to clone.', repoIn);
    if (kindSel.value !== 'branch' && !ref) {
      return formError('Enter the ' + kindSel.value + ' to check out, or choose Branch for the default branch.', refIn);
    }
    if (name && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
      return formError('A name has lower-case letters, digits and dashes, and starts with a letter or digit.', nameIn);
    }
    if (submitting) return;
    var body = { repo: repo };
    if (ref) body[kindSel.value] = ref;
    if (name) body.name = name;
    if (dc) body.devcontainer_path = dc;
    submitting = true;
    submit.setAttribute('aria-disabled', 'true');
    submit.textContent = 'Creating…';
    B.api('workspaces', { method: 'POST', body: body }).then(
      function (ws) {
        submitting = false;
        submit.removeAttribute('aria-disabled');
        submit.textContent = 'Create workspace';
        form.reset();
        syncKind();
        loaded = true;
        var c = upsert(ws);
        if (!c) return;
        c.waitReady = true;
        followLog(c, typeof ws.log_offset === 'number' ? ws.log_offset : null);
        updateCount();
        B.announce('Creating ' + ws.name + '; its log follows.');
        c.li.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
        if (!BUSY[ws.state]) readyOrNot(c);
      },
      function (e) {
        submitting = false;
        submit.removeAttribute('aria-disabled');
        submit.textContent = 'Create workspace';
        var field = null;
        if (e.status === 409 || /\bname\b/i.test(e.message)) field = nameIn;
        else if (/\b(repo|url|transport)\b/i.test(e.message)) field = repoIn;
        else if (/\b(branch|commit|ref)\b/i.test(e.message)) field = refIn;
        formError('Could not create the workspace: ' + e.message, field);
      }
    );
  });

  /* ------------------------------------------------------------ start --- */

  document.getElementById('logout').addEventListener('click', function () {
    B.api('auth/logout', { method: 'POST', noLoginRedirect: true }).then(function () {}, function () {}).then(function () {
      location.assign('/login.html');
    });
  });

  B.api('me').then(function (me) {
    var meEl = document.getElementById('me');
    meEl.textContent = me.name + (me.admin ? ' (admin)' : '');
  }, function () {});

  // Relative ages ("5 minutes ago") go stale: re-render them each minute.
  setInterval(function () {
    cards.forEach(function (c) { c.timeEl.textContent = ago(c.ws.created_at); });
  }, 60000);
  // The idle countdown runs here; what kept a workspace alive is fetched again
  // every 30 s (the event stream sends a change of state, not every keystroke).
  setInterval(function () {
    cards.forEach(renderIdle);
  }, 5000);
  setInterval(function () {
    if (document.hidden) return;
    B.api('workspaces').then(function (r) {
      ((r && r.workspaces) || []).forEach(function (ws) {
        var c = cards.get(ws.id);
        if (!c) return;
        c.ws.idle = ws.idle;
        c.idleAt = Date.now();
        renderIdle(c);
      });
    }, function () {});
  }, 30000);

  loadList().then(connect);
})();
