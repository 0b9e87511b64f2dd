// The console's shell: who is signed in (and until when), the banners for a hub that went away
// or a token that expired, and the hash routes of the views (#/photo/<id>, #/tail/<room>,
// #/user/<id>, #/hub).

import * as api from './api.js';
import { h, localTime, relative } from './format.js';
import { claimedExpiry, signInProblem, signInView, views } from './views.js';

const root = document.getElementById('view');
const banner = document.getElementById('banner');
const nav = document.getElementById('nav');
const identity = document.getElementById('identity');

let me = null;
let leave = [];
let hubBack = [];
let generation = 0;
let expiryTimer = null;
let bannerTimer = null;

function showBanner(kind, ...content) {
  clearTimeout(bannerTimer);
  banner.className = `banner ${kind}`;
  banner.replaceChildren(...content);
  banner.hidden = false;
}

function hideBanner(after = 0) {
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => { banner.hidden = true; }, after);
}

function renderIdentity() {
  if (!me) {
    identity.hidden = true;
    nav.hidden = true;
    return;
  }
  const expires = me.expiresAt ? new Date(me.expiresAt) : null;
  const soon = expires && expires - Date.now() < 10 * 60000;
  identity.replaceChildren(
    h('span', { class: 'who', title: 'The token\'s user (sub)' }, me.userId),
    h('span', { class: 'perms' }, me.permissions.length
      ? me.permissions.map((p) => h('span', { class: 'perm' }, p)) : h('span', { class: 'perm none' }, 'no permissions')),
    expires ? h('span', { class: `expiry${soon ? ' soon' : ''}`, title: localTime(expires) }, `expires ${relative(expires)}`) : null,
    h('button', { class: 'link', onclick: () => api.signOut() }, 'Sign out'));
  identity.hidden = false;
  nav.hidden = false;
}

function scheduleExpiry() {
  clearTimeout(expiryTimer);
  if (!me?.expiresAt) return;
  // `expiresAt` is when the hub stops accepting the token (its exp plus the leeway).
  const left = new Date(me.expiresAt) - Date.now();
  expiryTimer = setTimeout(() => api.expired(), Math.max(0, Math.min(left, 2 ** 31 - 1)));
}

function signIn(message) {
  stopView();
  me = null;
  renderIdentity();
  signInView(root, {
    message,
    done: (who) => {
      me = who;
      hideBanner();
      renderIdentity();
      scheduleExpiry();
      route();
    },
  });
}

function stopView() {
  generation += 1;
  for (const stop of leave) stop();
  leave = [];
  hubBack = [];
}

function route() {
  if (!me) return;
  stopView();
  const mine = generation;
  const [name, ...params] = location.hash.replace(/^#\/?/, '').split('/').map((p) => decodeURIComponent(p));
  const view = views[name] ? name : 'photo';
  for (const link of nav.querySelectorAll('a')) link.classList.toggle('active', link.dataset.view === view);
  root.replaceChildren();
  root.dataset.view = view;
  const ctx = {
    me,
    alive: () => generation === mine,
    onLeave: (stop) => (generation === mine ? leave.push(stop) : stop()),
    onHubBack: (again) => generation === mine && hubBack.push(again),
    expired: () => api.expired(),
  };
  views[view](root, params.filter(Boolean), ctx).catch((error) => {
    root.append(h('div', { class: 'callout danger' }, h('strong', {}, 'The console failed'), h('p', {}, String(error))));
  });
}

api.on('down', ({ since }) => {
  showBanner('warning', h('strong', {}, 'The hub is not answering.'),
    ` Since ${localTime(since)}; checking again every 2 s. Views reload by themselves when it is back.`);
});

api.on('up', () => {
  showBanner('success', h('strong', {}, 'The hub is back.'), ' Reconnected.');
  hideBanner(4000);
  const again = hubBack;
  if (again.length) again.forEach((f) => f());
  else route();
});

api.on('expired', () => {
  const exp = me?.expiresAt ?? claimedExpiry(api.token() ?? '');
  const at = exp ? ` at ${localTime(exp)} (${relative(exp)})` : '';
  signIn(h('div', { class: 'callout danger' }, h('strong', {}, 'Your token has expired'),
    h('p', {}, `It expired${at}. Paste a fresh one to carry on; you will come back to this view.`)));
});

api.on('signed-out', () => signIn());

window.addEventListener('hashchange', route);
setInterval(renderIdentity, 30000);

async function start() {
  if (!api.token()) return signIn();
  try {
    me = await api.get('me');
  } catch (error) {
    if (error.expired) return; // the `expired` listener shows the sign-in with its message
    return signIn(signInProblem(error, api.token()));
  }
  renderIdentity();
  scheduleExpiry();
  route();
}

start();
