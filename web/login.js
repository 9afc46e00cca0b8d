/* login.js - the login form: POST /api/v1/auth/login (mode cookie), then go
 * to ?next= when it is a path on this site, else to the dashboard. */
(function () {
  'use strict';
  var B = window.Berth;
  var params = new URLSearchParams(location.search);
  var next = B.safeNext(params.get('next'));

  var form = document.getElementById('login-form');
  var user = document.getElementById('username');
  var pass = document.getElementById('password');
  var errBox = document.getElementById('login-error');
  var submit = document.getElementById('login-submit');

  function showError(msg, field) {
    errBox.textContent = msg;
    errBox.hidden = false;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  // Already logged in (a bookmark of this page): go on.
  if (B.cookie('berth_csrf')) B.api('me', { noLoginRedirect: true }).then(
    function () {
      location.replace(next);
    },
    function () {}
  );

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    errBox.hidden = true;
    user.removeAttribute('aria-invalid');
    pass.removeAttribute('aria-invalid');
    if (!user.value.trim()) return showError('Enter your username.', user);
    if (!pass.value) return showError('Enter your password.', pass);
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    B.api('auth/login', {
      method: 'POST',
      body: { username: user.value.trim(), password: pass.value, mode: 'cookie' },
      noLoginRedirect: true
    }).then(
      function () {
        location.replace(next);
      },
      function (e) {
        submit.disabled = false;
        submit.textContent = 'Log in';
        if (e.status === 401) {
          pass.value = '';
          showError('Wrong username or password.', pass);
        } else if (e.status === 429) {
          var s = parseInt(e.retryAfter, 10);
          showError('Too many failed attempts. Try again ' +
            (s > 0 ? 'in ' + (s >= 120 ? Math.ceil(s / 60) + ' minutes' : s + ' seconds') : 'later') + '.');
        } else {
          showError(e.message || 'Logging in failed.');
        }
      }
    );
  });
})();
