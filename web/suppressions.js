// The suppressions view: who the practice's messages do not reach and why, a page at a time,
// and, for owners and admins, lifting an entry made by mistake after a confirmation.

import { ApiError, mayEdit, suppressionsApi } from './api.js';
import { $, FormErrors, announce, busy, confirmAction, el, formatDate, show, showRows } from './dom.js';

const REASONS = {
  unsubscribed: 'Unsubscribed',
  bounced: 'Bounced: the address does not exist',
  spam_reported: 'Reported as spam',
  invalid: 'Not a valid address',
  opted_out: 'Opted out of texts',
};

const SOURCES = {
  provider_event: 'Reported by the provider',
  provider_refusal: 'Refused by the provider',
  sms_keyword: 'Replied STOP',
  sms_reply: 'Replied asking to stop',
  unsubscribe_link: 'Unsubscribe link',
};

/** The filter shown, and where the next page starts. */
const state = { channel: '', search: '', cursor: null, session: null };

function filterErrors() {
  return new FormErrors('suppressions-error', { search: 'suppressions-search', channel: 'suppressions-channel' });
}

export function initSuppressions() {
  $('suppressions-filter').addEventListener('submit', async (event) => {
    event.preventDefault();
    state.channel = $('suppressions-channel').value;
    state.search = $('suppressions-search').value.trim();
    await showPage({ append: false });
  });
  $('suppressions-more').addEventListener('click', () => showPage({ append: true }));
}

/** Opens the view on the first page of the current filter. */
export async function renderSuppressions(session) {
  state.session = session;
  await showPage({ append: false, throwErrors: true });
}

async function showPage({ append, throwErrors = false }) {
  const errors = filterErrors();
  errors.clear();
  try {
    const page = await suppressionsApi.page({
      channel: state.channel,
      search: state.search,
      cursor: append ? state.cursor : null,
    });
    state.cursor = page.nextCursor ?? null;
    showRows(
      { rows: $('suppressions-rows'), table: $('suppressions-table'), empty: $('suppressions-empty'), more: $('suppressions-more') },
      page.items.map(row),
      state.cursor,
      { append },
    );
  } catch (error) {
    if (throwErrors) throw error;
    if (error instanceof ApiError && error.status === 401) return;
    errors.show(error);
  }
}

function row(entry) {
  const tr = el('tr');
  const lift = el('td');
  if (entry.shared) {
    lift.append(el('span', { className: 'muted', text: 'Sent to the shared number: only the patient can undo it, by replying START' }));
  } else if (mayEdit(state.session)) {
    const button = el('button', { className: 'button button-quiet', text: 'Lift', attrs: { type: 'button' } });
    button.setAttribute('aria-label', `Lift the suppression of ${entry.address}`);
    button.addEventListener('click', () => liftEntry(entry, tr, button));
    lift.append(button);
  }
  tr.append(
    el('td', { text: entry.address }),
    el('td', { text: entry.channel === 'sms' ? 'SMS' : 'Email' }),
    el('td', { text: REASONS[entry.reason] ?? entry.reason }),
    el('td', { text: entry.source ? (SOURCES[entry.source] ?? entry.source) : 'Not recorded' }),
    el('td', { text: formatDate(entry.createdAt) }),
    lift,
  );
  return tr;
}

async function liftEntry(entry, tr, button) {
  const confirmed = await confirmAction({
    title: 'Lift this suppression?',
    message: `Messages to ${entry.address} will be sent again. Only do this if the patient asked for them, or it was suppressed by mistake.`,
    confirmLabel: 'Lift suppression',
  });
  if (!confirmed) return;
  const errors = filterErrors();
  errors.clear();
  try {
    await busy(button, 'Lifting…', () => suppressionsApi.lift(entry.id));
    tr.remove();
    const left = $('suppressions-rows').children.length;
    show($('suppressions-table'), left > 0);
    show($('suppressions-empty'), left === 0 && state.cursor === null);
    announce(`Lifted the suppression of ${entry.address}`);
    $('suppressions-list-title').setAttribute('tabindex', '-1');
    $('suppressions-list-title').focus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    errors.show(error);
  }
}
