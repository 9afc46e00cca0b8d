/* nodes.js - the dashboard's "Cluster nodes" panel, for admins of a berthd
 * on a Swarm (GET /api/v1/admin/nodes): each node's state, availability,
 * role, address, CPUs, memory, running tasks and labels, read again every
 * 10 s. Hidden on one host (no nodes) and for users who are not admins.
 * Needs common.js. */
(function () {
  'use strict';
  var B = window.Berth;
  var el = B.el;
  var panel = document.getElementById('nodes-panel');
  var body = document.getElementById('nodes-body');
  var status = document.getElementById('nodes-status');
  if (!panel || !body) return;

  function gib(bytes) {
    return bytes ? (bytes / 1073741824).toFixed(1) + ' GiB' : '-';
  }

  function labels(l) {
    var keys = Object.keys(l || {}).sort();
    return keys.length ? keys.map(function (k) { return k + '=' + l[k]; }).join(', ') : '-';
  }

  function render(nodes) {
    body.textContent = '';
    nodes.forEach(function (n) {
      var role = (n.role || '') + (n.leader ? ' (leader)' : '');
      body.appendChild(el('tr', { 'data-node': n.name, 'data-state': n.state || '' },
        el('th', { scope: 'row', text: n.name }),
        el('td', { class: 'node-state state-' + (n.state || ''), text: n.state || '?' }),
        el('td', { text: n.availability || '?' }),
        el('td', { text: role }),
        el('td', { text: n.address || '-' }),
        el('td', { text: String(n.cpus || '-') }),
        el('td', { text: gib(n.memory_bytes) }),
        el('td', { class: 'node-tasks', text: String(n.tasks || 0) }),
        el('td', { text: labels(n.labels) })));
    });
    status.textContent = nodes.length + ' node' + (nodes.length === 1 ? '' : 's') + ', read ' +
      new Date().toLocaleTimeString();
  }

  function refresh() {
    B.api('admin/nodes').then(function (r) {
      if (!r || !r.cluster) {
        panel.hidden = true;
        return;
      }
      panel.hidden = false;
      render(r.nodes || []);
      setTimeout(refresh, 10000);
    }, function () {
      panel.hidden = true; /* not an admin, or no cluster */
    });
  }
  refresh();
})();
