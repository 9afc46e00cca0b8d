/* prebuilds.js - the dashboard's prebuilds panel: the caller's prebuilds per
 * repository with their state, commit, size and log, and a button to prebuild
 * a branch again. Polls /api/v1/prebuilds while the tab is visible (prebuilds
 * change seldom; the workspace stream does not carry them). Needs common.js. */
(function () {
  'use strict';
  var B = window.Berth;
  var el = B.el;
  var POLL_MS = 5000;
  var STATE_TEXT = { building: 'Building', ready: 'Ready', failed: 'Failed', skipped: 'Skipped', removed: 'Removed' };

  var panel = document.getElementById('pb-list');
  var status = document.getElementById('pb-status');
  if (!panel || !status) return;
  var openLogs = new Set(); // ids whose log is shown
  var last = '';

  function size(n) {
    if (!n) return '—';
    if (n >= 1e9) return (n / 1e9).toFixed(1) + ' GB';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + ' MB';
    return Math.ceil(n / 1e3) + ' kB';
  }

  function logBlock(pb) {
    var pre = el('pre', { class: 'log', tabindex: '0', 'aria-label': 'Log of prebuild ' + pb.id });
    var d = el('details', { class: 'pb-log', 'data-id': pb.id }, el('summary', null, 'Log'), pre);
    if (openLogs.has(pb.id)) d.open = true;
    function load() {
      pre.textContent = 'Loading…';
      B.request('prebuilds/' + encodeURIComponent(pb.id) + '/logs', { accept: 'text/plain' }).then(function (res) {
        return res.text();
      }).then(function (t) {
        pre.textContent = t || '(no output yet)';
      }, function (e) {
        pre.textContent = 'Cannot load the log: ' + e.message;
      });
    }
    d.addEventListener('toggle', function () {
      if (d.open) {
        openLogs.add(pb.id);
        load();
      } else {
        openLogs.delete(pb.id);
      }
    });
    if (d.open) load();
    return d;
  }

  function again(pb, button) {
    button.disabled = true;
    B.api('prebuilds', { method: 'POST', body: { repo: pb.repo, branch: pb.branch } }).then(function (p) {
      B.announce('Prebuild ' + p.id + ' of ' + (pb.branch || 'the default branch') + ' started');
      refresh();
    }, function (e) {
      B.announce('Cannot start a prebuild: ' + e.message);
      button.disabled = false;
    });
  }

  function render(list) {
    var key = JSON.stringify(list);
    if (key === last) return;
    last = key;
    panel.textContent = '';
    status.textContent = list.length ? '' : 'No prebuilds yet: berth prebuild REPO makes one.';
    var byRepo = new Map();
    list.forEach(function (pb) {
      if (!byRepo.has(pb.repo)) byRepo.set(pb.repo, []);
      byRepo.get(pb.repo).push(pb);
    });
    byRepo.forEach(function (pbs, repo) {
      var rows = pbs.map(function (pb) {
        var btn = el('button', { type: 'button', class: 'ghost', onclick: function () { again(pb, btn); } },
          'Prebuild again', el('span', { class: 'visually-hidden', text: ' ' + (pb.branch || 'default branch') }));
        if (pb.state === 'building') btn.disabled = true;
        return el('tr', { 'data-id': pb.id, 'data-state': pb.state },
          el('td', { text: pb.branch || 'default' }),
          el('td', null, el('code', { text: pb.commit ? pb.commit.slice(0, 7) : '—' })),
          el('td', null, el('span', { class: 'state state-' + pb.state, text: STATE_TEXT[pb.state] || pb.state }),
            pb.error && pb.state === 'failed' ? el('div', { class: 'ws-error is-failed', text: pb.error }) : null),
          el('td', { text: size(pb.size) }),
          el('td', { text: pb.used_by ? String(pb.used_by) : '0' }),
          el('td', null, el('time', { datetime: pb.created_at, text: new Date(pb.created_at).toLocaleString() })),
          el('td', null, logBlock(pb), btn));
      });
      var tbody = el('tbody');
      rows.forEach(function (r) { tbody.appendChild(r); });
      panel.appendChild(el('section', { class: 'pb-repo' },
        el('h3', { text: repo }),
        el('table', { class: 'pb-table' },
          el('thead', null, el('tr', null, el('th', { text: 'Branch' }), el('th', { text: 'Commit' }),
            el('th', { text: 'State' }), el('th', { text: 'Size' }), el('th', { text: 'Workspaces' }),
            el('th', { text: 'Created' }), el('th', { text: '' }))),
          tbody)));
    });
  }

  function refresh() {
    return B.api('prebuilds').then(function (r) {
      render(r.prebuilds || []);
    }, function (e) {
      status.textContent = 'Cannot list prebuilds: ' + e.message;
    });
  }

  refresh();
  setInterval(function () {
    if (!document.hidden) refresh();
  }, POLL_MS);
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) refresh();
  });
})();
