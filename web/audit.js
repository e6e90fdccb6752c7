// The audit log view: who changed which messaging setting and when, never the values.

import { ApiError, settingsApi } from './api.js';
import { $, FormErrors, el, formatDate, show, showRows } from './dom.js';

const ACTIONS = {
  'email.update': 'Changed the email account',
  'email.delete': 'Removed the own email account',
  'sms.update': 'Changed the SMS account',
  'sms.delete': 'Removed the own SMS account',
  'email.confirm': 'A test confirmed the own email account',
  'sms.confirm': 'A test confirmed the own SMS account',
  'email.domain.set_up': 'Set up the email domain',
  'email.domain.verify': 'Domain verification changed',
  'email.domain.delete': 'Removed the email domain',
  'suppression.lift': 'Lifted a suppression',
};

let nextCursor = null;

export function initAudit() {
  $('audit-more').addEventListener('click', async () => {
    const errors = new FormErrors('audit-error', {});
    errors.clear();
    try {
      await showPage({ append: true });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      errors.show(error);
    }
  });
}

export async function renderAudit() {
  await showPage({ append: false });
}

async function showPage({ append }) {
  const page = await settingsApi.audit(append ? nextCursor : null);
  nextCursor = page.nextCursor ?? null;
  showRows(
    { rows: $('audit-rows'), table: $('audit-table'), empty: $('audit-empty'), more: $('audit-more') },
    page.entries.map(row),
    nextCursor,
    { append },
  );
}

function row(entry) {
  const tr = el('tr');
  const who = entry.userEmail ?? (entry.userId ? 'A deleted user' : 'Dentite (automatic check)');
  tr.append(
    el('td', { text: formatDate(entry.createdAt) }),
    el('td', { text: who }),
    el('td', { text: ACTIONS[entry.action] ?? entry.action }),
    el('td', { text: entry.changedFields.join(', ') }),
  );
  return tr;
}
