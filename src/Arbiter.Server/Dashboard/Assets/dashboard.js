// Arbiter dashboard: polls the read-only JSON under /ui/api/ once a second and redraws.
// Polling rather than server-sent events: EventSource cannot send the Authorization header that
// auth needs (a token in the URL would end up in logs), and a poll reads state as it is now, so a
// missed update is never a stale page.
'use strict';

const PollIntervalMs = 1000;
const TokenKey = 'arbiter-dashboard-token';
const state = { prefix: '', historyKey: null, timer: null, signedIn: false };

const $ = (id) => document.getElementById(id);

function toBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  bytes.forEach((b) => { binary += String.fromCharCode(b); });
  return btoa(binary);
}

function fromBase64(b64) {
  const binary = atob(b64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

// Builds an element; children are nodes or text (always set as text: keys and values are user data).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'onclick') node.addEventListener('click', value);
    else if (name === 'className') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(bytes) {
  return bytes ? bytes.text + (bytes.truncated ? '…' : '') : '';
}

function fillRows(tableId, rows) {
  const body = $(tableId).querySelector('tbody');
  body.replaceChildren(...rows);
}

async function api(path) {
  const headers = {};
  const token = sessionStorage.getItem(TokenKey);
  if (token) headers.Authorization = token;
  const response = await fetch('api/' + path, { headers, cache: 'no-store' });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    const error = new Error(body.error || `HTTP ${response.status}`);
    error.loginRequired = !!body.loginRequired;
    throw error;
  }
  return body;
}

function renderCluster(c) {
  $('member').textContent = `member ${c.memberName} (${c.memberId})${c.clustered ? '' : ' · single node'} · etcd API ${c.version}`;
  // The name when the leader is a listed member; its id otherwise (etcd reports 0 for none).
  $('leader').textContent = c.leaderName || (c.leaderId && c.leaderId !== '0' ? c.leaderId : 'none');
  $('leader').title = c.leaderId;
  $('leader').dataset.leaderName = c.leaderName || '';
  $('term').textContent = c.raftTerm;
  $('revision').textContent = c.revision;
  $('compact-revision').textContent = c.compactRevision || 'never';
  $('commit-index').textContent = c.raftCommitIndex;
  $('applied-index').textContent = c.raftAppliedIndex;
  $('db-size').textContent = `${(c.dbSizeBytes / 1024).toFixed(1)} KiB (${(c.dbSizeInUseBytes / 1024).toFixed(1)} KiB in use)`;
  $('alarms').textContent = c.alarms.length ? c.alarms.join(', ') : 'none';
  $('alarms').className = c.alarms.length ? 'alarm' : '';
  fillRows('members', c.members.map((m) => el('tr', { 'data-member': m.name, className: m.isLeader ? 'leader' : '' },
    el('td', {}, m.name, m.isSelf ? ' (this page)' : ''),
    el('td', {}, m.id),
    el('td', { className: 'role' }, m.isLeader ? 'leader' : 'follower'),
    el('td', {}, m.clientUrls.join(', ')),
    el('td', {}, m.peerUrls.join(', ')))));
}

function renderLocks(l) {
  fillRows('locks', l.locks.map((q) => el('tr', { 'data-lock': q.name.text },
    el('td', { className: 'name' }, text(q.name)),
    el('td', { className: 'holder' }, text(q.holder.key)),
    el('td', { className: 'lease' }, q.holder.lease),
    el('td', { className: 'fencing-token' }, q.holder.fencingToken),
    el('td', { className: 'waiters' }, q.waiters.length === 0 ? 'none'
      : el('ol', {}, q.waiters.map((w) => el('li', { className: 'waiter', 'data-fencing-token': w.fencingToken }, `${text(w.key)} (lease ${w.lease}, token ${w.fencingToken})`)))))));
  $('locks-empty').hidden = l.locks.length > 0;
  fillRows('elections', l.elections.map((q) => el('tr', { 'data-election': q.name.text },
    el('td', { className: 'name' }, text(q.name)),
    el('td', { className: 'leader-value' }, text(q.holder.value)),
    el('td', {}, text(q.holder.key)),
    el('td', {}, q.holder.lease),
    el('td', { className: 'fencing-token' }, q.holder.fencingToken),
    el('td', { className: 'waiters' }, q.waiters.length === 0 ? 'none' : q.waiters.map((w) => `${text(w.value)} (${text(w.key)})`).join(', ')))));
  fillRows('table-locks', l.tableLocks.map((t) => el('tr', { 'data-txn': t.txnId },
    el('td', {}, t.txnId), el('td', {}, text(t.key)), el('td', {}, t.rangeEnd ? text(t.rangeEnd) : ''),
    el('td', {}, t.mode), el('td', {}, t.granted ? 'granted' : 'waiting'), el('td', {}, t.granted ? t.fencingToken : ''), el('td', {}, t.sequence))));
  fillRows('transactions', l.transactions.map((t) => el('tr', { 'data-txn': t.txnId },
    el('td', {}, t.txnId), el('td', {}, t.lease), el('td', {}, t.locksHeld), el('td', {}, t.waitsFor.join(', ')),
    el('td', {}, t.openMs), el('td', {}, t.timeLeftMs))));
}

function renderLeases(l) {
  fillRows('leases', l.leases.map((lease) => el('tr', { 'data-lease': lease.id },
    el('td', {}, lease.id), el('td', { className: 'ttl' }, lease.ttlSeconds), el('td', {}, lease.grantedTtlSeconds),
    el('td', {}, lease.keys.map(text).join(', ')))));
  $('leases-note').textContent = l.total > l.leases.length ? `${l.leases.length} of ${l.total} leases shown.` : '';
}

function renderWatches(w) {
  const rows = [];
  for (const s of w.streams) {
    const watches = s.watches.length ? s.watches : [null];
    watches.forEach((watch, i) => rows.push(el('tr', { 'data-stream': s.streamId },
      el('td', {}, i === 0 ? s.streamId : ''),
      el('td', {}, i === 0 ? s.peer : ''),
      el('td', {}, i === 0 ? new Date(s.openedAt).toLocaleTimeString() : ''),
      el('td', {}, i === 0 ? s.pendingResponses : ''),
      el('td', {}, watch ? watch.watchId : '–'),
      el('td', { className: 'watch-key' }, watch ? text(watch.key) + (watch.prefix ? ' (prefix)' : watch.allFromKey ? ' and after' : watch.rangeEnd ? ` … ${text(watch.rangeEnd)}` : '') : 'no watch'),
      el('td', {}, watch ? watch.nextRevision : ''),
      el('td', {}, watch ? [watch.synced ? 'synced' : 'catching up', ...watch.filters, watch.prevKv ? 'prev_kv' : ''].filter(Boolean).join(' ') : ''))));
  }
  fillRows('watches', rows);
}

function showPrefix(prefix) {
  state.prefix = prefix;
  $('prefix').value = prefix;
  refresh();
}

function showHistory(keyText, keyBase64) {
  state.historyKey = { text: keyText, base64: keyBase64 };
  refresh();
}

function renderKeys(k) {
  const crumbs = [el('a', { href: '#', onclick: (e) => { e.preventDefault(); showPrefix(''); } }, '(all keys)')];
  const parts = state.prefix.split('/');
  let acc = '';
  for (let i = 0; i < parts.length - 1; i++) {
    acc += parts[i] + '/';
    const target = acc;
    crumbs.push(' › ', el('a', { href: '#', onclick: (e) => { e.preventDefault(); showPrefix(target); } }, parts[i] + '/'));
  }
  $('breadcrumbs').replaceChildren(...crumbs);
  $('folders').replaceChildren(...k.folders.map((f) => el('li', { 'data-folder': f.prefix.text },
    el('a', { href: '#', onclick: (e) => { e.preventDefault(); showPrefix(f.prefix.text); } }, f.prefix.text.slice(state.prefix.length)),
    ` (${f.keyCount})`)));
  fillRows('keys', k.keys.map((kv) => el('tr', { 'data-key': kv.key.text },
    el('td', {}, el('a', { href: '#', onclick: (e) => { e.preventDefault(); showHistory(kv.key.text, kv.key.base64); } }, text(kv.key))),
    el('td', { className: 'value' }, text(kv.value)),
    el('td', {}, kv.version), el('td', {}, kv.createRevision), el('td', {}, kv.modRevision), el('td', {}, kv.lease))));
  $('keys-note').textContent = `${k.scannedKeys} keys under this prefix at revision ${k.revision}` + (k.more ? ' (more not read)' : '') + '.';
}

function renderHistory(h) {
  $('history-panel').hidden = false;
  $('history-key').textContent = text(h.key);
  fillRows('history', h.versions.slice().reverse().map((v) => el('tr', { 'data-revision': v.modRevision, className: v.type.toLowerCase() },
    el('td', {}, v.modRevision), el('td', {}, v.type), el('td', {}, v.type === 'PUT' ? v.version : ''),
    el('td', {}, v.type === 'PUT' ? v.createRevision : ''), el('td', { className: 'value' }, v.value ? text(v.value) : ''), el('td', {}, v.lease))));
  $('history-note').textContent = (h.more ? 'Older versions not shown. ' : '') + (h.compactRevision ? `History before revision ${h.compactRevision} was compacted.` : '');
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    const prefix = state.prefix ? 'prefix=' + encodeURIComponent(toBase64(state.prefix)) : '';
    const [cluster, locks, leases, watches, keys, history] = await Promise.all([
      api('cluster'), api('locks'), api('leases'), api('watches'), api('keys?' + prefix),
      state.historyKey ? api('key?key=' + encodeURIComponent(state.historyKey.base64)) : Promise.resolve(null),
    ]);
    showContent();
    renderCluster(cluster);
    renderLocks(locks);
    renderLeases(leases);
    renderWatches(watches);
    renderKeys(keys);
    if (history) renderHistory(history);
    $('error').hidden = true;
    $('live').textContent = 'live · ' + new Date().toLocaleTimeString();
    $('live').className = 'live ok';
    $('live').dataset.revision = cluster.revision;
  } catch (error) {
    if (error.loginRequired) {
      showLogin(sessionStorage.getItem(TokenKey) ? error.message : '');
      return;
    }
    $('error').textContent = error.message;
    $('error').hidden = false;
    $('live').textContent = 'disconnected';
    $('live').className = 'live down';
  }
  state.timer = setTimeout(refresh, PollIntervalMs);
}

function showContent() {
  $('login').hidden = true;
  $('content').hidden = false;
  $('sign-out').hidden = !sessionStorage.getItem(TokenKey);
}

function showLogin(message) {
  clearTimeout(state.timer);
  sessionStorage.removeItem(TokenKey);
  $('content').hidden = true;
  $('login').hidden = false;
  $('sign-out').hidden = true;
  $('login-error').textContent = message || '';
  $('live').textContent = 'signed out';
  $('live').className = 'live down';
}

async function signIn(event) {
  event.preventDefault();
  // etcd's JSON gateway on the same port issues the token, as for any gateway client.
  const response = await fetch('../v3/auth/authenticate', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: $('login-user').value, password: $('login-password').value }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.token) {
    $('login-error').textContent = body.message || body.error || `sign-in failed (HTTP ${response.status})`;
    return;
  }
  $('login-password').value = '';
  sessionStorage.setItem(TokenKey, body.token);
  refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => showLogin(''));
  $('prefix-form').addEventListener('submit', (e) => { e.preventDefault(); showPrefix($('prefix').value); });
  refresh();
});
