// The dashboard: fills in from the REST views, then follows the hub's live events.
import { api, ApiError, adoptFromLocation, credentials } from './api.js';
import { Live } from './live.js';
import { RoundCharts } from './charts.js';
import { Experiment } from './experiment.js';
import { setupAdmin } from './admin.js';
import { $, el, badge, toneOf, dateTime } from './format.js';

const EXPERIMENT_LIST_SECONDS = 15;

const app = {
  session: null,
  experiments: [],
  selectedId: null,
  live: null,
  view: null,
};

async function main() {
  const refused = await adoptFromLocation();
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => select(selectedFromLocation()));
  if (refused && !credentials.key) showSignIn(refused);
  else if (credentials.key) await start();
  else showSignIn();
}

function showSignIn(message = '') {
  $('sign-in').hidden = false;
  $('main').hidden = true;
  $('session').hidden = true;
  $('sign-in-error').textContent = message;
  $('sign-in-key').focus();
}

async function signIn(event) {
  event.preventDefault();
  credentials.set($('sign-in-key').value.trim());
  $('sign-in-key').value = '';
  await start();
}

async function signOut() {
  credentials.clear();
  await app.live?.stop();
  location.reload();
}

async function start() {
  try {
    app.session = await api('/api/session');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      credentials.clear();
      showSignIn(e.message);
    } else {
      showSignIn(`The coordinator did not answer: ${e.message}`);
    }
    return;
  }
  $('sign-in').hidden = true;
  $('main').hidden = false;
  $('session').hidden = false;
  const admin = app.session.role === 'admin';
  $('session-role').textContent = admin ? 'Signed in as admin' : `Watching as ${app.session.name || app.session.role} (read-only)`;
  for (const node of document.querySelectorAll('.admin-only')) node.hidden = !admin;

  app.view = new Experiment(new RoundCharts(), {
    experimentEnded: () => refreshExperiments(),
  });
  app.live = new Live(() => credentials.key, {
    onRoundEvent: (e) => app.view.onRoundEvent(e),
    onClientEvent: (e) => app.view.onClientEvent(e),
    onState: showConnection,
    onResumed: async () => {
      await refreshExperiments();
      await app.view.fill();
    },
  });
  if (admin) {
    setupAdmin({
      selectedId: () => app.selectedId,
      experiments: () => app.experiments,
      created: async (id) => { await refreshExperiments(); location.hash = `experiment=${encodeURIComponent(id)}`; },
      stopped: async () => { await refreshExperiments(); await app.view.fill(); },
    });
  }
  await refreshExperiments();
  await select(selectedFromLocation());
  app.live.start();
  setInterval(refreshExperiments, EXPERIMENT_LIST_SECONDS * 1000);
}

function showConnection(state) {
  const node = $('connection');
  const words = { live: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', offline: 'coordinator unreachable, retrying' };
  node.textContent = words[state] ?? state;
  node.className = `pill ${state === 'live' ? 'live' : state === 'offline' ? 'offline' : 'reconnecting'}`;
  node.dataset.state = state;
}

function selectedFromLocation() {
  const id = new URLSearchParams(location.hash.slice(1)).get('experiment');
  if (id && app.experiments.some((e) => e.id === id)) return id;
  // The newest experiment still running, else the newest one.
  const running = app.experiments.filter((e) => e.state === 'Running' || e.state === 'Created');
  const pick = (running.length ? running : app.experiments).at(-1);
  return pick?.id ?? null;
}

async function select(id) {
  if (!id) {
    $('experiment').hidden = true;
    return;
  }
  app.selectedId = id;
  renderExperiments();
  await app.live?.watch(id);
  await app.view.show(app.experiments.find((e) => e.id === id));
}

async function refreshExperiments() {
  try {
    app.experiments = await api('/api/experiments');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      credentials.clear();
      showSignIn(e.message);
    }
    return;
  }
  renderExperiments();
  if (!app.selectedId && app.experiments.length) await select(selectedFromLocation());
  // Stopped or finished elsewhere (another admin, the last round): read the selected one again.
  const selected = app.experiments.find((e) => e.id === app.selectedId);
  if (selected && app.view.info && selected.state !== app.view.info.state) await app.view.fill();
}

function renderExperiments() {
  const body = $('experiments').tBodies[0];
  $('no-experiments').hidden = app.experiments.length > 0;
  body.replaceChildren(...[...app.experiments].reverse().map((e) => {
    const selected = e.id === app.selectedId;
    return el('tr', { class: selected ? 'selected' : undefined, 'data-id': e.id },
      el('td', {}, el('a', { href: `#experiment=${encodeURIComponent(e.id)}`, 'aria-current': selected ? 'true' : undefined, text: e.name }),
        el('div', { class: 'muted mono', text: e.id })),
      el('td', { text: e.algorithm }),
      el('td', {}, badge(e.state.toLowerCase(), toneOf(e.state))),
      el('td', { class: 'num', text: String(e.rounds) }),
      el('td', { text: dateTime(e.createdUtc) }),
      el('td', {}, selected ? el('span', { class: 'muted', text: 'watching' }) : ''));
  }));
}

main();
