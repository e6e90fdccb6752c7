// The analytics page: the messaging status card (which account sends now, its health, the
// domain, the last test and the last 30 days), the messages per day and per account.

import { settingsApi } from './api.js';
import { renderDaily } from './chart.js';
import { $, el, formatDate, formatNumber, providerLabel, show } from './dom.js';

const HEALTH = {
  healthy: { text: 'Healthy', tone: 'ok' },
  degraded: { text: 'Degraded: recent failures', tone: 'warn' },
  open: { text: 'Paused after repeated failures', tone: 'error' },
};

export async function renderAnalytics() {
  const [status, usage] = await Promise.all([settingsApi.status(), settingsApi.usage(30), renderDaily()]);
  renderChannel($('status-email'), status.email, 'email');
  renderChannel($('status-sms'), status.sms, 'sms');
  renderUsage(usage);
}

function renderChannel(container, channel, kind) {
  const list = container.querySelector('dl');
  const items = [];
  const item = (term, ...value) => {
    const wrapper = el('div', { className: 'status-item' });
    const dd = el('dd');
    dd.append(...value);
    wrapper.append(el('dt', { text: term }), dd);
    items.push(wrapper);
  };

  item('Provider in effect', providerLabel(channel.providerInEffect));
  if (channel.configuredProvider !== channel.providerInEffect) {
    item('Configured', providerLabel(channel.configuredProvider));
  }
  if (channel.reason) item('Why', el('span', { className: 'status-reason', text: channel.reason }));
  const health = HEALTH[channel.health] ?? { text: channel.health, tone: 'warn' };
  item('Health', el('span', { className: `badge badge-${health.tone}`, text: health.text }));
  item('Fallback', channel.fallbackEnabled ? 'On: the shared account steps in when yours fails' : 'Off');
  if (kind === 'email') {
    if (channel.domain) {
      const state = el('span', {
        className: `badge ${channel.domain.verified ? 'badge-ok' : 'badge-warn'}`,
        text: channel.domain.verified ? 'Verified' : 'Not verified yet',
      });
      item('Domain', el('span', { text: `${channel.domain.domain} ` }), state);
    } else {
      item('Domain', 'None set up');
    }
  }
  item('Last test', channel.lastTestedAt ? formatDate(channel.lastTestedAt) : 'Never');
  list.replaceChildren(...items);

  const counts = container.querySelector('.counts');
  const { sent, delivered, failed } = channel.last30Days;
  counts.replaceChildren(
    count('Sent', sent, 'sent'),
    count('Delivered', delivered, 'delivered'),
    count('Failed', failed, 'failed'),
    el('p', { className: 'counts-caption', text: 'Last 30 days' }),
  );
}

function count(label, value, name) {
  const box = el('div', { className: `count count-${name}` });
  box.append(el('span', { className: 'count-value', text: formatNumber(value) }), el('span', { className: 'count-label', text: label }));
  return box;
}

function renderUsage(rows) {
  show($('usage-empty'), rows.length === 0);
  show($('usage-table'), rows.length > 0);
  $('usage-rows').replaceChildren(...rows.map((row) => {
    const tr = el('tr');
    const account = el('td');
    account.append(row.messagingProvider
      ? providerLabel(row.messagingProvider)
      : el('span', { text: 'No account yet (queued or suppressed)' }));
    tr.append(
      account,
      el('td', { text: row.messageType === 'sms' ? 'SMS' : 'Email' }),
      el('td', { className: 'number', text: formatNumber(row.total) }),
      el('td', { className: 'number', text: formatNumber(row.delivered) }),
      el('td', { className: 'number', text: formatNumber(row.failed) }),
    );
    return tr;
  }));
}
