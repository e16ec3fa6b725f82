// The coordinator's REST API with the viewer's bearer key; the key lives in this browser's localStorage only.
const KEY = 'ferret.dashboard.key';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Signs in from the address: a one-time link (#signin=CODE) is redeemed for this browser's own key, a key link
 * (#key=KEY) is kept as it is. Either way the secret leaves the address bar and the history at once. Returns
 * why it could not sign in, or null.
 */
export async function adoptFromLocation() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = params.get('key');
  const code = params.get('signin');
  if (!key && !code) return null;
  params.delete('key');
  params.delete('signin');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  if (key) {
    credentials.set(key);
    return null;
  }
  try {
    const redeemed = await api('/api/sign-in', { method: 'POST', body: { code } });
    credentials.set(redeemed.key);
    return null;
  } catch (e) {
    return e.status === 401 ? 'This sign-in link was already used or has expired; ask for a new one, or paste a key.' : e.message;
  }
}

export const credentials = {
  get key() { return localStorage.getItem(KEY); },
  set(key) { localStorage.setItem(KEY, key); },
  clear() { localStorage.removeItem(KEY); },
};

// Browser and coordinator clocks may differ; the Date header of every answer keeps the deadline countdown honest.
let skewMs = 0;
export const serverNow = () => Date.now() + skewMs;

/** Calls the API; answers with parsed JSON (or null), throws ApiError with the coordinator's reason. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (credentials.key) headers.Authorization = 'Bearer ' + credentials.key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const date = Date.parse(response.headers.get('Date') ?? '');
  if (!Number.isNaN(date)) skewMs = date + 500 - Date.now();
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, reason(response.status, text));
  return text ? JSON.parse(text) : null;
}

/** One line out of a ProblemDetails or a plain answer. */
function reason(status, text) {
  if (status === 401) return 'The key was not accepted (unknown, revoked or expired).';
  if (status === 403) return 'This key may only watch; that action needs the admin key.';
  try {
    const problem = JSON.parse(text);
    if (problem && typeof problem === 'object') {
      if (problem.errors) return Object.entries(problem.errors).map(([field, errors]) => `${field}: ${[].concat(errors).join(' ')}`).join('; ');
      if (problem.detail) return problem.detail;
      if (problem.title) return problem.title;
    }
    if (typeof problem === 'string') return problem;
  } catch {
    // not JSON: the text itself
  }
  return text || `HTTP ${status}`;
}
