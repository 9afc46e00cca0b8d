/* common.js - what every Berth page shares: the API client (cookie session,
 * CSRF header, 401 -> login page) and small DOM helpers. A classic script:
 * it defines window.Berth and nothing else. */
(function () {
  'use strict';

  var API = '/api/v1';

  /* Berth's cookie `name`: over HTTPS it is named with the __Host- prefix. */
  function cookie(name) {
    return rawCookie('__Host-' + name) || rawCookie(name);
  }

  function rawCookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return '';
  }

  /* The path (with query and hash) of this page, for ?next= after a login. */
  function here() {
    return location.pathname + location.search + location.hash;
  }

  var redirecting = false;
  function toLogin() {
    if (redirecting) return;
    redirecting = true;
    location.assign('/login.html?next=' + encodeURIComponent(here()));
  }

  /* An API error: .status is the HTTP status (0: no answer), .message the
   * server's {"error"} or a description of what went wrong. */
  function ApiError(status, message) {
    var e = new Error(message);
    e.name = 'ApiError';
    e.status = status;
    return e;
  }

  function unsafe(method) {
    return method !== 'GET' && method !== 'HEAD';
  }

  /* fetch() for the API with the session cookie and, on state changes, the
   * CSRF header. Resolves to the Response when it is 2xx; rejects with an
   * ApiError otherwise. A 401 sends the page to the login form (and the
   * promise never settles), unless opts.noLoginRedirect. */
  function request(path, opts) {
    opts = opts || {};
    var method = (opts.method || 'GET').toUpperCase();
    var headers = { Accept: opts.accept || 'application/json' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (unsafe(method)) headers['X-Berth-CSRF'] = cookie('berth_csrf');
    var init = {
      method: method,
      headers: headers,
      credentials: 'same-origin',
      cache: 'no-store',
      signal: opts.signal
    };
    if (opts.body !== undefined) init.body = JSON.stringify(opts.body);
    return fetch(path.charAt(0) === '/' ? path : API + '/' + path, init).then(
      function (res) {
        if (res.ok) return res;
        if (res.status === 401 && !opts.noLoginRedirect) {
          toLogin();
          return new Promise(function () {});
        }
        return res.text().then(function (text) {
          var msg = '';
          try {
            msg = JSON.parse(text).error || '';
          } catch (e) {
            msg = '';
          }
          if (!msg) msg = res.status + ' ' + (res.statusText || 'error');
          var err = ApiError(res.status, msg);
          err.retryAfter = res.headers.get('Retry-After');
          throw err;
        });
      },
      function (e) {
        if (e && e.name === 'AbortError') throw e;
        throw ApiError(0, 'Berth is not answering (' + (e && e.message ? e.message : 'network error') + ')');
      }
    );
  }

  /* request() for a JSON answer (null for 204). */
  function api(path, opts) {
    return request(path, opts).then(function (res) {
      if (res.status === 204) return null;
      return res.text().then(function (t) {
        return t ? JSON.parse(t) : null;
      });
    });
  }

  /* el('button', {class: 'x', onclick: fn}, 'text', child...) */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else if (k.slice(0, 2) === 'on' && typeof v === 'function') node.addEventListener(k.slice(2), v);
        else if (v === true) node.setAttribute(k, '');
        else node.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return node;
  }

  /* Announce a message to screen readers (the page's #announcer region). */
  function announce(text) {
    var region = document.getElementById('announcer');
    if (!region) return;
    region.textContent = '';
    // A new text node after a tick so the same message twice is read twice.
    setTimeout(function () {
      region.textContent = text;
    }, 50);
  }

  /* A same-origin path from ?next=, else '/'. Refuses absolute and
   * protocol-relative URLs ("//evil", "/\\evil") and javascript: URLs. */
  function safeNext(next) {
    if (!next || next.charAt(0) !== '/' || next.charAt(1) === '/' || next.charAt(1) === '\\') return '/';
    try {
      var u = new URL(next, location.origin);
      if (u.origin !== location.origin) return '/';
      if (u.pathname === '/login.html') return '/';
      return u.pathname + u.search + u.hash;
    } catch (e) {
      return '/';
    }
  }

  window.Berth = {
    API: API,
    cookie: cookie,
    request: request,
    api: api,
    el: el,
    announce: announce,
    toLogin: toLogin,
    safeNext: safeNext,
    here: here
  };
})();
