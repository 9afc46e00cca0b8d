/* sshkeys.js - the dashboard's "SSH keys" panel: the caller's public keys for
 * the SSH gateway (GET/POST /api/v1/ssh-keys, DELETE /api/v1/ssh-keys/{id})
 * and how to connect (GET /api/v1/ssh-host). Needs common.js. */
(function () {
  'use strict';
  var B = window.Berth;
  var el = B.el;
  var form = document.getElementById('sshkey-form');
  var list = document.getElementById('sshkey-list');
  if (!form || !list) return;
  var keyBox = document.getElementById('sshkey-key');
  var nameBox = document.getElementById('sshkey-name');
  var err = document.getElementById('sshkey-error');
  var status = document.getElementById('sshkey-status');
  var how = document.getElementById('sshkey-how');

  function ago(t) {
    if (!t) return 'never';
    var s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
    if (s < 90) return 'just now';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 129600) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' days ago';
  }

  function remove(k, button) {
    button.disabled = true;
    B.api('ssh-keys/' + encodeURIComponent(k.id), { method: 'DELETE' }).then(function () {
      B.announce('SSH key ' + (k.name || k.fingerprint) + ' removed');
      refresh();
    }, function (e) {
      status.textContent = 'Could not remove the key: ' + e.message;
      button.disabled = false;
    });
  }

  function render(keys) {
    list.textContent = '';
    status.textContent = keys.length ? '' : 'No keys yet: add the public key of the machine you connect from.';
    keys.forEach(function (k) {
      var btn = el('button', { type: 'button', class: 'ghost', onclick: function () { remove(k, btn); } },
        'Remove', el('span', { class: 'visually-hidden', text: ' ' + (k.name || k.fingerprint) }));
      list.appendChild(el('li', { class: 'sshkey', 'data-id': String(k.id) },
        el('div', { class: 'sshkey-main' },
          el('strong', { text: k.name || '(no name)' }), ' ',
          el('span', { class: 'muted', text: k.type || '' }),
          el('div', null, el('code', { class: 'sshkey-fp', text: k.fingerprint || '' })),
          el('div', { class: 'muted', text: 'Last used ' + ago(k.last_used_at) })),
        btn));
    });
  }

  function refresh() {
    return B.api('ssh-keys').then(function (r) {
      render((r && r.keys) || []);
    }, function (e) {
      status.textContent = 'Cannot list your SSH keys: ' + e.message;
    });
  }

  B.api('ssh-host').then(function (h) {
    var listen = (h && h.listen) || '';
    var i = listen.lastIndexOf(':');
    var host = listen.slice(0, i), port = listen.slice(i + 1);
    if (host === '0.0.0.0' || host === '::' || !host) host = location.hostname;
    how.textContent = '';
    how.appendChild(el('span', { text: 'Connect with ' }));
    how.appendChild(el('code', { text: 'ssh -p ' + port + ' WORKSPACE@' + host }));
    how.appendChild(el('span', { text: ', or add every workspace to ~/.ssh/config with ' }));
    how.appendChild(el('code', { text: 'berth ssh-config --install' }));
    how.appendChild(el('span', { text: ' (VS Code Remote-SSH and JetBrains Gateway then list them).' }));
  }, function () {
    how.textContent = 'The SSH gateway is off on this server (berthd --ssh-listen).';
  });

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    err.hidden = true;
    var key = keyBox.value.trim();
    if (!key) {
      err.textContent = 'Paste a public key (the contents of ~/.ssh/id_ed25519.pub, say).';
      err.hidden = false;
      keyBox.focus();
      return;
    }
    var body = { key: key };
    if (nameBox.value.trim()) body.name = nameBox.value.trim();
    B.api('ssh-keys', { method: 'POST', body: body }).then(function (k) {
      keyBox.value = '';
      nameBox.value = '';
      B.announce('SSH key ' + (k && k.fingerprint ? k.fingerprint : '') + ' added');
      refresh();
    }, function (e) {
      err.textContent = 'Could not add the key: ' + e.message;
      err.hidden = false;
      keyBox.focus();
    });
  });

  refresh();
})();
