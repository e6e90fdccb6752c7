// The activity view: the practice's messages with filters, a page at a time, and each message's
// story: queued, held, handed over (with every fallback hop), the provider's events in order, and
// its final state in plain words. While the view is open it follows the practice's changes, so
// new messages and statuses appear without a reload.

import { activityApi } from './api.js';
import { ApiError } from './api.js';
import { $, FormErrors, PROVIDER_NAMES, busy, el, formatDate, providerName, show, showRows } from './dom.js';

/** Why a rule withheld a message, as a practice manager would say it. */
const WITHHELD = {
  opted_out: 'the patient opted out',
  no_marketing_consent: 'no marketing consent',
  frequency_cap: "the patient's limit of care texts was reached",
  no_postal_address: "marketing email needs the practice's postal address (Sending rules)",
};

/** Why a message was held back before being handed over. */
const DEFERRED = {
  quiet_hours: "the recipient's quiet hours (sending window)",
};

const heldBecause = (log) => DEFERRED[log.deferReason] ?? log.deferReason ?? 'the sending rules';

/** How long to wait before following again after the stream failed. */
const RETRY_MS = 5000;

/**
 * The filter shown, where the next page starts, how many pages are shown, the message whose
 * story is open, and the stream followed while the view is open.
 */
const state = { filter: {}, cursor: null, pages: 0, storyOf: null, following: null };

const filterErrors = () => new FormErrors('activity-error', {
  channel: 'activity-channel',
  status: 'activity-status',
  since: 'activity-since',
  until: 'activity-until',
  provider: 'activity-provider',
  category: 'activity-category',
  recipient: 'activity-recipient',
});

/** The final state of a message, in plain words. */
export function outcome(log) {
  const error = log.error ?? '';
  switch (log.status) {
    case 'queued':
      return log.scheduledFor
        ? `Waiting: held until ${formatDate(log.scheduledFor)}, ${heldBecause(log)}.`
        : 'Waiting to be sent.';
    case 'sending':
    case 'sent':
      return 'Sent: the provider took it; no delivery report yet.';
    case 'delivered':
      return 'Delivered.';
    case 'opened':
      return 'Delivered and opened.';
    case 'clicked':
      return 'Delivered, opened and a link was clicked.';
    case 'bounced':
      return error.startsWith('hard bounce')
        ? `Bounced: the address does not exist (${error}).`
        : `Bounced: ${error || 'the receiving server refused it'}.`;
    case 'dropped':
      return `Dropped by the provider: ${error || 'it would not send to this address'}.`;
    case 'spam_reported':
      return 'The recipient reported it as spam.';
    case 'undelivered':
      return `Not delivered: ${error || 'the carrier could not deliver it'}.`;
    case 'failed':
      return `Failed: ${error || 'the provider refused it'}.`;
    case 'suppressed':
      return `Withheld: ${WITHHELD[error] ?? (error || 'the address is on the suppression list')}.`;
    default:
      return log.status;
  }
}

function filterFromForm() {
  const day = (id) => {
    const value = $(id).value;
    return value ? new Date(`${value}T00:00:00`).toISOString() : '';
  };
  return {
    channel: $('activity-channel').value,
    status: $('activity-status').value,
    since: day('activity-since'),
    until: day('activity-until'),
    provider: $('activity-provider').value,
    category: $('activity-category').value,
    recipient: $('activity-recipient').value.trim(),
  };
}

export async function renderActivity() {
  state.filter = filterFromForm();
  await showPage({ append: false });
  followChanges();
}

async function showPage({ append }) {
  const page = await activityApi.page(state.filter, append ? state.cursor : null);
  state.cursor = page.nextCursor ?? null;
  state.pages = append ? state.pages + 1 : 1;
  show($('activity-news'), false);
  showRows(
    { rows: $('activity-rows'), table: $('activity-table'), empty: $('activity-empty'), more: $('activity-more') },
    page.items.map(row),
    state.cursor,
    { append },
  );
}

function row(log) {
  const tr = el('tr');
  tr.dataset.log = log.id;
  const details = el('button', {
    className: 'button button-small',
    text: 'Story',
    attrs: { type: 'button', 'aria-label': `The story of the message to ${log.recipient}` },
  });
  details.addEventListener('click', () => showStory(log.id));
  const cell = el('td');
  cell.append(details);
  tr.append(
    el('td', { text: formatDate(log.createdAt) }),
    el('td', { text: log.recipient }),
    el('td', { text: log.channel === 'sms' ? 'SMS' : 'Email' }),
    el('td', { text: outcome(log) }),
    cell,
  );
  return tr;
}

function step(when, text) {
  const item = el('li');
  item.append(el('time', { text: formatDate(when), attrs: { datetime: when } }), ' ', el('span', { text }));
  return item;
}

async function showStory(id, { focus = true } = {}) {
  const errors = filterErrors();
  errors.clear();
  try {
    const log = await activityApi.message(id);
    state.storyOf = id;
    const steps = [step(log.createdAt, log.category === 'marketing' ? 'Queued (marketing).' : 'Queued (care).')];
    if (log.scheduledFor) {
      steps.push(step(log.scheduledFor, `Held back to here: ${heldBecause(log)}.`));
    }
    if (log.fallbackReason) {
      for (const hop of log.fallbackReason.split('; then ')) steps.push(step(log.updatedAt, `Moved on: ${hop}.`));
    }
    if (log.messagingProvider) {
      steps.push(step(log.updatedAt, `Handed to ${providerName(log.messagingProvider)}.`));
    }
    for (const event of log.events) {
      steps.push(step(event.occurredAt ?? event.receivedAt, `The provider reported: ${event.eventType}.`));
    }
    $('activity-timeline').replaceChildren(...steps);
    $('activity-outcome').textContent = outcome(log);
    const cost = [];
    if (log.segments) cost.push(`${log.segments} SMS segment${log.segments === 1 ? '' : 's'}`);
    if (log.price) cost.push(`charged ${log.price} ${log.priceUnit ?? ''}`.trim());
    $('activity-cost').textContent = cost.join(', ');
    $('activity-detail-title').textContent = `The message to ${log.recipient}`;
    show($('activity-detail'), true);
    if (focus) $('activity-detail').focus();
  } catch (error) {
    errors.show(error);
  }
}

/**
 * Follows the practice's changes while the view is shown: each change redraws the first page (or,
 * when more pages are shown, offers to) and the open story. A stream the server ended (it does
 * every few minutes) or lost is followed again; one reconnection redraws too, since changes may
 * have been missed meanwhile.
 */
function followChanges() {
  if (state.following) return;
  const following = new AbortController();
  state.following = following;
  const live = $('activity-live');
  (async () => {
    let missed = false;
    while (!following.signal.aborted) {
      try {
        await activityApi.follow((event) => {
          if (event === 'ready') live.textContent = 'Live: new messages and statuses appear as they happen.';
          if (event === 'changed' || (event === 'ready' && missed)) refresh();
          missed = false;
        }, following.signal);
        missed = true;
      } catch (error) {
        if (following.signal.aborted || (error instanceof ApiError && error.status === 401)) break;
        live.textContent = 'Live updates are interrupted; trying again shortly. Show messages reads the latest.';
        missed = true;
        await new Promise((resume) => { setTimeout(resume, RETRY_MS); });
      }
    }
    live.textContent = '';
  })();
}

/** Ends following: the view was left, or the user signed out. */
export function stopFollowingActivity() {
  state.following?.abort();
  state.following = null;
}

async function refresh() {
  try {
    if (state.pages > 1) show($('activity-news'), true);
    else await showPage({ append: false });
    if (state.storyOf && !$('activity-detail').hidden) await showStory(state.storyOf, { focus: false });
  } catch {
    // Redrawing is a courtesy: the list shown stays, and Show messages says what is wrong.
  }
}

export function initActivity() {
  for (const [kind, name] of Object.entries(PROVIDER_NAMES)) {
    $('activity-provider').append(el('option', { text: name, attrs: { value: kind } }));
  }
  $('activity-latest').addEventListener('click', async () => {
    const errors = filterErrors();
    errors.clear();
    try {
      await busy($('activity-latest'), 'Loading…', () => showPage({ append: false }));
    } catch (error) {
      errors.show(error);
    }
  });
  $('activity-filter').addEventListener('submit', async (event) => {
    event.preventDefault();
    const errors = filterErrors();
    errors.clear();
    show($('activity-detail'), false);
    try {
      await busy($('activity-apply'), 'Loading…', () => renderActivity());
    } catch (error) {
      errors.show(error);
    }
  });
  $('activity-more').addEventListener('click', async () => {
    const errors = filterErrors();
    errors.clear();
    try {
      await busy($('activity-more'), 'Loading…', () => showPage({ append: true }));
    } catch (error) {
      errors.show(error);
    }
  });
}
