/* settings.js - the dashboard's "Your settings" panel: the idle timeout of
 * the caller's workspaces and their dotfiles repository (GET/PUT
 * /api/v1/settings). Needs common.js. */
(function () {
  'use strict';
  var B = window.Berth;
  var form = document.getElementById('settings-form');
  if (!form) return;
  var idle = document.getElementById('set-idle');
  var url = document.getElementById('set-dot-url');
  var install = document.getElementById('set-dot-install');
  var target = document.getElementById('set-dot-target');
  var err = document.getElementById('settings-error');
  var status = document.getElementById('settings-status');

  function show(s) {
    idle.value = s.idle_timeout || '';
    var r = s.idle_range || {};
    idle.placeholder = (r.default_minutes || 30) + 'm';
    document.getElementById('set-idle-hint').textContent = 'From ' + r.min_minutes + ' minutes to ' +
      r.max_minutes + ' minutes' + (r.never_allowed ? ', or never' : '') + ' (45m, 2h); empty: the default, ' +
      (r.default_minutes || 30) + ' minutes.';
    var d = s.dotfiles || {};
    url.value = d.url || '';
    install.value = d.install || '';
    target.value = d.target || '';
  }

  B.api('settings').then(show, function (e) {
    status.textContent = 'Could not load your settings: ' + e.message;
  });

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    err.hidden = true;
    status.textContent = '';
    var body = {
      idle_timeout: idle.value.trim() || null,
      dotfiles: url.value.trim() ? {
        url: url.value.trim(),
        install: install.value.trim() || null,
        target: target.value.trim() || null
      } : null
    };
    B.api('settings', { method: 'PUT', body: body }).then(function (s) {
      show(s);
      status.textContent = 'Saved.';
      B.announce('Settings saved');
    }, function (e) {
      err.textContent = 'Could not save: ' + e.message;
      err.hidden = false;
      (/idle/i.test(e.message) ? idle : url).focus();
    });
  });
})();
