// Small formatting and DOM helpers. Everything a client or the network sent goes in as text, never as HTML.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export const number = (n, digits = 4) => (n === null || n === undefined || Number.isNaN(n) ? '–' : Number(n).toFixed(digits));

export const seconds = (s) => (s === null || s === undefined ? '–' : `${Number(s).toFixed(1)} s`);

export const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–');

export const dateTime = (iso) => (iso ? new Date(iso).toLocaleString() : '–');

/** The first 16 hex digits of a model fingerprint, as `ferret demo` prints it. */
export const shortFingerprint = (fp) => (fp ? fp.slice(0, 16) : '–');

export function countdown(ms) {
  if (ms <= 0) return '0:00';
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** A state badge: its tone says good/attention/bad, its text says it in words. */
export function badge(text, tone) {
  return el('span', { class: `state ${tone}`, text });
}

const tones = {
  Completed: 'ok', Received: 'ok', Running: 'ok', online: 'ok',
  Open: 'warn', Assigned: 'warn', Created: 'neutral', waiting: 'warn',
  Abandoned: 'bad', Failed: 'bad', Missed: 'bad', Rejected: 'bad', Stopped: 'neutral', offline: 'bad', revoked: 'bad',
};

export const toneOf = (state) => tones[state] ?? 'neutral';

/** What an assignment state means to a person watching. */
export const outcome = (state) => ({ Assigned: 'waiting', Received: 'delivered', Missed: 'missing', Failed: 'failed', Rejected: 'rejected' }[state] ?? state ?? '–');
