// The page's only way to the server: the JSON API, with the signed-in user's bearer token.
//
// The token lives in sessionStorage: it lasts as long as the tab, is not shared with other tabs,
// and is never sent automatically (no cookie), so other sites cannot make requests with it.

const SESSION_KEY = 'dentite.session';

/** An error answer of the API (`{error: {code, message, fields}}`), or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message, fields, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields ?? {};
    this.retryAfter = retryAfter;
  }
}

/** `{token, expiresAt, user: {id, email, role, practiceId}}`, or null when signed out. */
export function currentSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    if (!session?.token || new Date(session.expiresAt) <= new Date()) return null;
    return session;
  } catch {
    return null;
  }
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** Owners and admins change settings; staff only read them. */
export function mayEdit(session) {
  return session?.user?.role === 'owner' || session?.user?.role === 'admin';
}

export async function signIn(email, password) {
  const session = await request('POST', '/api/auth/login', { email, password }, { authenticated: false });
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

/**
 * Calls the API and returns its JSON answer. A 401 on an authenticated call means the session
 * ended (expired or signed out elsewhere): the session is dropped and `onSessionEnded` runs.
 */
export async function request(method, path, body, { authenticated = true } = {}) {
  const headers = headersFor('application/json', authenticated);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await reach(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response, authenticated);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/**
 * Follows a server-sent event stream of the API, calling `onEvent(name)` for each named event,
 * until the server ends it (resolves) or `signal` aborts it (rejects with an AbortError).
 * `fetch`, not EventSource: only it can send the bearer token.
 */
export async function follow(path, onEvent, signal) {
  const response = await reach(path, { headers: headersFor('text/event-stream', true), signal });
  if (!response.ok) throw await failure(response, true);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll('\r\n', '\n');
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const name = buffer.slice(0, end).split('\n').find((line) => line.startsWith('event:'));
      buffer = buffer.slice(end + 2);
      // Blocks without a name are the server's keep-alive comments.
      if (name) onEvent(name.slice('event:'.length).trim());
      end = buffer.indexOf('\n\n');
    }
  }
}

function headersFor(accept, authenticated) {
  const headers = { Accept: accept };
  if (!authenticated) return headers;
  const session = currentSession();
  if (!session) {
    sessionEnded();
    throw new ApiError(401, 'unauthorized', 'Your session has ended. Sign in again.');
  }
  headers.Authorization = `Bearer ${session.token}`;
  return headers;
}

async function reach(path, init) {
  try {
    return await fetch(path, { ...init, cache: 'no-store' });
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', 'Could not reach the Dentite server. Check your connection and try again.');
  }
}

/** The API's error answer as an ApiError; a 401 of an authenticated call ends the session. */
async function failure(response, authenticated) {
  let detail = {};
  try {
    detail = JSON.parse(await response.text())?.error ?? {};
  } catch {
    detail = {};
  }
  const retryAfter = Number(response.headers.get('Retry-After')) || undefined;
  const error = new ApiError(
    response.status,
    detail.code ?? 'internal',
    detail.message ?? `The server answered ${response.status} ${response.statusText}.`,
    detail.fields,
    retryAfter,
  );
  if (response.status === 401 && authenticated) {
    signOut();
    sessionEnded();
    error.message = 'Your session has ended. Sign in again.';
  }
  return error;
}

let sessionEndedHandler = () => {};

export function onSessionEnded(handler) {
  sessionEndedHandler = handler;
}

function sessionEnded() {
  sessionEndedHandler();
}

const SETTINGS = '/api/practice-settings/messaging';

/** The settings routes the page uses, named for what they do. */
export const settingsApi = {
  read: () => request('GET', SETTINGS),
  status: () => request('GET', `${SETTINGS}/status`),
  saveEmail: (body) => request('PUT', `${SETTINGS}/email`, body),
  removeEmail: () => request('DELETE', `${SETTINGS}/email`),
  validateEmail: (body) => request('POST', `${SETTINGS}/email/validate`, body),
  testEmail: (to) => request('POST', `${SETTINGS}/email/test`, { to }),
  saveSms: (body) => request('PUT', `${SETTINGS}/sms`, body),
  removeSms: () => request('DELETE', `${SETTINGS}/sms`),
  validateSms: (body) => request('POST', `${SETTINGS}/sms/validate`, body),
  testSms: (to) => request('POST', `${SETTINGS}/sms/test`, { to }),
  setUpDomain: (body) => request('POST', `${SETTINGS}/email/domain`, body),
  readDomain: () => request('GET', `${SETTINGS}/email/domain`),
  verifyDomain: () => request('POST', `${SETTINGS}/email/domain/verify`),
  removeDomain: () => request('DELETE', `${SETTINGS}/email/domain`),
  usage: (days) => request('GET', `/api/analytics/messaging?days=${encodeURIComponent(days)}`),
  daily: (days) => request('GET', `/api/analytics/messaging/daily?days=${encodeURIComponent(days)}`),
  audit: (cursor) => request('GET', `${SETTINGS}/audit${cursor == null ? '' : `?cursor=${encodeURIComponent(cursor)}`}`),
};

/** The practice's messages: one page of a filter, one message's story, and news of changes. */
export const activityApi = {
  page: (filter, cursor) => {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filter)) if (value) query.set(name, value);
    if (cursor) query.set('cursor', cursor);
    query.set('limit', '25');
    return request('GET', `/api/outreach/logs?${query}`);
  },
  message: (id) => request('GET', `/api/outreach/logs/${encodeURIComponent(id)}`),
  /** `ready` once following, then `changed` whenever the practice's messages change. */
  follow: (onEvent, signal) => follow('/api/outreach/logs/changes', onEvent, signal),
};

export const patientsApi = {
  page: (search, cursor) => {
    const query = new URLSearchParams({ limit: '25' });
    if (search) query.set('search', search);
    if (cursor) query.set('cursor', cursor);
    return request('GET', `/api/patients?${query}`);
  },
  create: (body) => request('POST', '/api/patients', body),
  update: (id, body) => request('PATCH', `/api/patients/${encodeURIComponent(id)}`, body),
  remove: (id) => request('DELETE', `/api/patients/${encodeURIComponent(id)}`),
  consents: (id) => request('GET', `/api/patients/${encodeURIComponent(id)}/consents`),
  recordConsent: (id, body) => request('POST', `/api/patients/${encodeURIComponent(id)}/consents`, body),
  preview: (body) => request('POST', '/api/outreach/messages/preview', body),
  send: (body) => request('POST', '/api/outreach/messages', body),
};

const SEQUENCES = '/api/sequences';
const sequencePath = (id) => `${SEQUENCES}/${encodeURIComponent(id)}`;

export const sequencesApi = {
  page: (cursor) => request('GET', `${SEQUENCES}?${new URLSearchParams(cursor ? { limit: '25', cursor } : { limit: '25' })}`),
  read: (id) => request('GET', sequencePath(id)),
  create: (body) => request('POST', SEQUENCES, body),
  update: (id, body) => request('PATCH', sequencePath(id), body),
  remove: (id) => request('DELETE', sequencePath(id)),
  enrol: (id, body) => request('POST', `${sequencePath(id)}/enrollments`, body),
  enrollments: (id, status, cursor) => {
    const query = new URLSearchParams({ limit: '25' });
    if (status) query.set('status', status);
    if (cursor) query.set('cursor', cursor);
    return request('GET', `${sequencePath(id)}/enrollments?${query}`);
  },
  stop: (id, patientId) => request('DELETE', `${sequencePath(id)}/enrollments/${encodeURIComponent(patientId)}`),
  preview: (body) => request('POST', '/api/outreach/messages/preview', body),
};

export const rulesApi = {
  read: () => request('GET', `${SETTINGS}/compliance`),
  save: (body) => request('PUT', `${SETTINGS}/compliance`, body),
};

export const suppressionsApi = {
  page: ({ channel, search, cursor }) => {
    const query = new URLSearchParams();
    if (channel) query.set('channel', channel);
    if (search) query.set('search', search);
    if (cursor) query.set('cursor', cursor);
    return request('GET', `/api/suppressions?${query}`);
  },
  lift: (id) => request('DELETE', `/api/suppressions/${encodeURIComponent(id)}`),
};
