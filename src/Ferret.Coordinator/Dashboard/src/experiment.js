// One experiment as the dashboard shows it. REST fills it in; live events then change it in place. Every
// event handler is idempotent, because an event may also be in the REST answer that follows it.
import { api, serverNow } from './api.js';
import { $, el, badge, bytes, number, seconds, time, countdown, shortFingerprint, toneOf, outcome } from './format.js';

const MAX_ACTIVITY = 100;
const MAX_REJECTIONS = 100;

export class Experiment {
  constructor(charts, { experimentEnded }) {
    this.charts = charts;
    this.experimentEnded = experimentEnded;
    this.id = null;
    this.reset();
    this.filling = null;
    this.queued = [];
    setInterval(() => this.tick(), 1000);
  }

  reset() {
    this.info = null;
    this.rounds = new Map();
    this.open = null;
    this.clients = new Map();
    this.rejections = [];
    this.rejectionCount = 0;
    this.fingerprint = null;
    $('activity').replaceChildren();
  }

  async show(summary) {
    if (!summary) return;
    if (summary.id !== this.id) {
      this.id = summary.id;
      this.reset();
    }
    $('experiment').hidden = false;
    await this.fill();
  }

  /** Fills in from the REST views; events that arrive meanwhile are applied after it. */
  async fill() {
    if (!this.id) return;
    const id = this.id;
    const run = (async () => {
      const [info, clients, rejections] = await Promise.all([
        api(`/api/experiments/${encodeURIComponent(id)}`),
        api(`/api/experiments/${encodeURIComponent(id)}/clients`),
        api(`/api/experiments/${encodeURIComponent(id)}/rejections?limit=${MAX_REJECTIONS}`),
      ]);
      if (id !== this.id) return;
      this.info = info;
      this.rounds = new Map(info.roundLog.map((r) => [r.round, rowOfView(r)]));
      const open = info.openRound;
      if (open && this.rounds.has(open.round)) this.rounds.get(open.round).assigned = open.assigned;
      this.open = open ? {
        round: open.round, deadlineUtc: open.deadlineUtc, assigned: open.assigned,
        clients: new Map(open.clients.map((c) => [c.clientId, { state: c.state, reason: c.reason }])),
      } : null;
      this.clients = new Map(clients.map((c) => [c.id, c]));
      this.rejections = rejections;
      this.rejectionCount = info.rejections ?? rejections.length;
      this.fingerprint = info.modelFingerprint;
    })();
    this.filling = run;
    try {
      await run;
    } catch (e) {
      this.note(`could not read the experiment: ${e.message}`);
    } finally {
      if (this.filling === run) this.filling = null;
    }
    const queued = this.queued.splice(0);
    for (const [kind, e] of queued) this.apply(kind, e);
    this.render();
  }

  onRoundEvent(e) { this.receive('round', e); }

  onClientEvent(e) { this.receive('client', e); }

  receive(kind, e) {
    if (e.experimentId !== this.id) return;
    if (this.filling) {
      this.queued.push([kind, e]);
      return;
    }
    this.apply(kind, e);
    this.render();
  }

  apply(kind, e) {
    if (kind === 'round') this.applyRound(e);
    else this.applyClient(e);
  }

  applyRound(e) {
    if (e.kind === 'opened') {
      this.open = {
        round: e.round, deadlineUtc: e.deadlineUtc, assigned: e.assigned,
        clients: new Map((e.assignedClients ?? []).map((c) => [c, { state: 'Assigned', reason: null }])),
      };
      this.rounds.set(e.round, { round: e.round, state: 'Open', assigned: e.assigned, aggregated: 0, missing: 0 });
      for (const c of e.assignedClients ?? []) this.updateClient(c, { lastRound: e.round, lastState: 'Assigned' });
      this.note(`round ${e.round} opened: ${e.assigned} clients assigned`);
      return;
    }
    if (e.kind === 'stage') {
      // A secure round moved to its next stage; it is still open.
      this.note(`round ${e.round} ${e.detail ?? 'next stage'}`);
      return;
    }
    const closed = {
      round: e.round, state: e.kind === 'completed' ? 'Completed' : e.kind === 'abandoned' ? 'Abandoned' : e.kind,
      assigned: e.assigned, aggregated: e.aggregated, missing: e.missing, trainLoss: e.meanTrainLoss,
      bytesUp: e.bytesUp, bytesDown: e.bytesDown, seconds: e.seconds, note: e.detail ?? privacyNote(e.epsilon),
    };
    this.rounds.set(e.round, closed);
    if (this.open?.round === e.round) this.open = null;
    this.note(e.kind === 'completed'
      ? `round ${e.round} completed: ${e.aggregated}/${e.assigned} packets, train loss ${number(e.meanTrainLoss)}, ${seconds(e.seconds)}`
      : `round ${e.round} ${e.kind}${e.detail ? `: ${e.detail}` : ''}`);
    // Who missed the round and the experiment's new state are in the log: read them back.
    setTimeout(() => this.fill(), 0);
    if (e.experimentEnded) this.experimentEnded();
  }

  applyClient(e) {
    const name = e.clientName || this.clients.get(e.clientId)?.name || e.clientId;
    const inOpen = this.open && this.open.round === e.round ? this.open.clients.get(e.clientId) : null;
    switch (e.kind) {
      case 'joined':
        this.updateClient(e.clientId, { name, online: true });
        this.note(`${name} joined`);
        break;
      case 'left':
        this.updateClient(e.clientId, { name, online: false });
        this.note(`${name} disconnected${e.detail ? `: ${e.detail}` : ''}`);
        break;
      case 'received': {
        const client = this.clients.get(e.clientId);
        const fresh = !(client?.lastRound === e.round && client?.lastState === 'Received');
        if (inOpen) inOpen.state = 'Received';
        this.updateClient(e.clientId, { name, lastRound: e.round, lastState: 'Received', delivered: (client?.delivered ?? 0) + (fresh ? 1 : 0) });
        this.note(`${name}: packet for round ${e.round}, ${bytes(e.bytes)}, train loss ${number(e.trainLoss)}`);
        break;
      }
      case 'rejected': {
        const key = rejectionKey(e.clientId, e.round, e.detail, e.atUtc);
        if (!this.rejections.some((r) => rejectionKey(r.clientId, r.round, r.reason, r.atUtc) === key)) {
          this.rejections = [{ round: e.round, clientId: e.clientId, reason: e.detail ?? '', bytes: e.bytes, atUtc: e.atUtc }, ...this.rejections].slice(0, MAX_REJECTIONS);
          this.rejectionCount += 1;
        }
        this.note(`${name}: packet for round ${e.round} rejected: ${e.detail ?? ''}`);
        break;
      }
      case 'fingerprint': {
        const mismatch = (e.detail ?? '').startsWith('MISMATCH ');
        const fp = mismatch ? e.detail.slice('MISMATCH '.length) : e.detail;
        this.updateClient(e.clientId, { name, fingerprintRound: e.round, fingerprint: fp, fingerprintAgrees: !mismatch });
        if (!this.fingerprint || e.round > this.fingerprint.round) this.fingerprint = { round: e.round, fingerprint: fp, reports: 1, agree: !mismatch };
        else if (e.round === this.fingerprint.round && mismatch) this.fingerprint.agree = false;
        if (mismatch) this.note(`${name}: model fingerprint after round ${e.round} DISAGREES: ${shortFingerprint(fp)}`);
        break;
      }
      default: {
        // 'failed' and any kind this page does not know yet (a failed device check, say): a failure with its reason.
        const reason = e.detail || e.kind;
        if (inOpen) Object.assign(inOpen, { state: 'Failed', reason });
        const client = this.clients.get(e.clientId);
        const fresh = !(client?.lastFailureRound === e.round && client?.lastFailureReason === reason);
        this.updateClient(e.clientId, {
          name, lastFailureRound: e.round, lastFailureState: e.kind === 'failed' ? 'Failed' : e.kind, lastFailureReason: reason,
          failures: (client?.failures ?? 0) + (fresh ? 1 : 0),
        });
        this.note(`${name}: ${e.kind === 'failed' ? `failed round ${e.round}` : e.kind}: ${reason}`);
      }
    }
  }

  updateClient(id, changes) {
    const known = this.clients.get(id);
    if (!known) {
      this.clients.set(id, { id, name: id, device: null, online: false, delivered: 0, failures: 0, rejections: 0, ...changes });
      setTimeout(() => this.fill(), 250); // a client new to this page: the REST view knows its device
    } else {
      Object.assign(known, changes);
    }
  }

  note(text) {
    const list = $('activity');
    list.prepend(el('li', {}, el('time', { datetime: new Date().toISOString(), text: new Date().toLocaleTimeString() }), text));
    while (list.children.length > MAX_ACTIVITY) list.lastElementChild.remove();
  }

  // ---- rendering -----------------------------------------------------------------------------------

  render() {
    if (!this.info) return;
    this.renderSummary();
    this.renderOpenRound();
    this.renderHistory();
    this.renderClients();
    this.renderRejections();
    const closed = [...this.rounds.values()].filter((r) => r.state === 'Completed' || r.state === 'Abandoned').sort((a, b) => a.round - b.round);
    this.charts.update(closed);
  }

  renderSummary() {
    const info = this.info;
    $('experiment-title').textContent = `Experiment ${info.name}`;
    $('summary-state').replaceChildren(badge(info.state.toLowerCase(), toneOf(info.state)));
    $('summary-algorithm').textContent = `${info.algorithm}, K = ${info.candidateSeeds}, ${info.fraction * 100}% per round`;
    const done = [...this.rounds.values()].filter((r) => r.state === 'Completed').length;
    $('summary-rounds').textContent = `${done} of ${info.rounds}`;
    const fp = this.fingerprint;
    $('summary-fingerprint').replaceChildren(fp
      ? el('span', {}, shortFingerprint(fp.fingerprint), ' ', badge(fp.agree ? 'agreed' : 'MISMATCH', fp.agree ? 'ok' : 'bad'), el('div', { class: 'muted', text: `after round ${fp.round}` }))
      : el('span', { class: 'muted', text: 'none reported yet' }));
    $('summary-rejections').textContent = String(this.rejectionCount);
    $('summary-parameters').textContent = info.parameters.toLocaleString('en');
    $('summary-privacy').textContent = privacySummary(info.privacy);
    const stop = $('stop-experiment');
    stop.disabled = info.state === 'Completed' || info.state === 'Stopped';
  }

  renderOpenRound() {
    const open = this.open;
    $('open-round').hidden = !open;
    $('no-open-round').hidden = !!open;
    if (!open) return;
    const states = [...open.clients.values()];
    const received = states.filter((c) => c.state === 'Received').length;
    const failed = states.filter((c) => c.state === 'Failed').length;
    $('open-round-name').textContent = `Round ${open.round}`;
    $('open-round-received').textContent = String(received);
    $('open-round-assigned').textContent = String(open.assigned);
    $('open-round-failed').textContent = failed ? `, ${failed} failed` : '';
    const progress = $('open-round-progress');
    progress.max = Math.max(1, open.assigned);
    progress.value = received;
    progress.textContent = `${received} of ${open.assigned}`;
    $('open-round-clients').replaceChildren(...[...open.clients.entries()].map(([id, c]) => {
      const client = this.clients.get(id);
      const offline = c.state === 'Assigned' && client && client.online === false;
      const word = offline ? 'offline, missing' : outcome(c.state);
      return el('li', { 'data-client': id }, badge(`${client?.name ?? id}: ${word}`, offline ? 'bad' : toneOf(c.state)));
    }));
    this.tick();
  }

  tick() {
    if (!this.open) return;
    const left = Date.parse(this.open.deadlineUtc) - serverNow();
    $('open-round-countdown').textContent = left > 0 ? countdown(left) : '0:00, closing';
  }

  renderHistory() {
    const rows = [...this.rounds.values()].sort((a, b) => b.round - a.round);
    $('history').tBodies[0].replaceChildren(...rows.map((r) => el('tr', { 'data-round': r.round },
      el('td', { class: 'num', text: String(r.round) }),
      el('td', {}, badge(r.state.toLowerCase(), toneOf(r.state))),
      el('td', { class: 'num', text: r.state === 'Open' ? `…/${r.assigned}` : `${r.aggregated}/${r.assigned}` }),
      el('td', { class: 'num', text: r.state === 'Open' ? '–' : String(r.missing) }),
      el('td', { class: 'num', text: number(r.trainLoss) }),
      el('td', { class: 'num', text: bytes(r.bytesUp) }),
      el('td', { class: 'num', text: bytes(r.bytesDown) }),
      el('td', { class: 'num', text: seconds(r.seconds) }),
      el('td', {}, el('span', { class: 'reason', text: r.note ?? '' })))));
  }

  renderClients() {
    const clients = [...this.clients.values()].sort((a, b) => a.name.localeCompare(b.name));
    // Clients leave when an experiment ends: offline is a warning only while it runs.
    const running = this.info.state === 'Running' || this.info.state === 'Created';
    $('no-clients').hidden = clients.length > 0;
    $('clients').tBodies[0].replaceChildren(...clients.map((c) => {
      const connection = c.revoked ? 'revoked' : c.online ? 'online' : 'offline';
      const failure = c.failures
        ? el('span', { class: 'reason' }, `${c.failures}: `, el('strong', { text: c.lastFailureReason ?? outcome(c.lastFailureState) }), c.lastFailureRound ? ` (round ${c.lastFailureRound})` : '')
        : el('span', { class: 'muted', text: 'none' });
      const fp = c.fingerprint
        ? el('span', { class: 'mono' }, shortFingerprint(c.fingerprint), ' ', badge(c.fingerprintAgrees === false ? 'differs' : 'agrees', c.fingerprintAgrees === false ? 'bad' : 'ok'))
        : el('span', { class: 'muted', text: '–' });
      return el('tr', { 'data-client': c.id },
        el('th', { scope: 'row' }, c.name, el('div', { class: 'muted mono', text: c.id })),
        el('td', { text: c.device ?? '–' }),
        el('td', {}, badge(connection, connection === 'offline' && !running ? 'neutral' : toneOf(connection))),
        el('td', { class: 'num', text: c.lastRound ?? '–' }),
        el('td', {}, c.lastState ? badge(outcome(c.lastState), toneOf(c.lastState)) : el('span', { class: 'muted', text: '–' })),
        el('td', { class: 'num', text: String(c.delivered ?? 0) }),
        el('td', {}, failure, c.rejections ? el('div', { class: 'muted', text: `${c.rejections} packets rejected` }) : ''),
        el('td', {}, fp));
    }));
  }

  renderRejections() {
    $('no-rejections').hidden = this.rejections.length > 0;
    $('rejections').tBodies[0].replaceChildren(...this.rejections.map((r) => el('tr', {},
      el('td', { text: time(r.atUtc) }),
      el('td', { class: 'num', text: r.round ?? '–' }),
      el('td', { text: this.clients.get(r.clientId)?.name ?? r.clientId ?? '–' }),
      el('td', {}, el('span', { class: 'reason', text: r.reason })),
      el('td', { class: 'num', text: bytes(r.bytes) }))));
  }
}

function rowOfView(r) {
  const m = r.metrics;
  return {
    round: r.round, state: r.state, assigned: m?.assigned ?? r.aggregated + r.missing, aggregated: r.aggregated, missing: r.missing,
    trainLoss: m?.meanTrainLoss, bytesUp: m?.bytesUp, bytesDown: m?.bytesDown,
    seconds: m?.seconds ?? (r.closedUtc ? (Date.parse(r.closedUtc) - Date.parse(r.openedUtc)) / 1000 : null), note: r.reason ?? privacyNote(m?.privacy?.epsilon),
  };
}

const privacyNote = (epsilon) => (epsilon == null ? null : `ε = ${epsilon.toFixed(2)} so far`);

// What protects the clients' updates, and the epsilon spent by the completed rounds.
function privacySummary(p) {
  if (!p) return 'none: the coordinator sees every packet';
  const parts = [];
  if (p.threshold != null) parts.push(`secure aggregation, threshold ${p.threshold}${p.neighbours ? `, ${p.neighbours} neighbours` : ''}`);
  if (p.noiseMultiplier != null) {
    parts.push(`DP (${p.noise} noise, z = ${p.noiseMultiplier}, clip ${number(p.currentClipNorm)}${p.adaptiveClipping ? ' adaptive' : ''}): ε = ${(p.epsilonSpent ?? 0).toFixed(2)} at δ = ${p.delta} after ${p.accountedRounds} rounds`);
  }
  return parts.join('; ');
}

const rejectionKey = (client, round, reason, at) => `${client}|${round}|${reason}|${Date.parse(at)}`;
