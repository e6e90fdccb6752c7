// The Email tab: the SendGrid account, the sending domain with its DNS records, and test emails.

import { currentSession, mayEdit, settingsApi } from './api.js';
import {
  $, FormErrors, busy, confirmAction, copyButton, el, formatDate, providerLabel, secretState,
  sentence, setStatus, show,
} from './dom.js';

const CUSTOM = 'custom_sendgrid';
const POSTMARK = 'custom_postmark';
const MAILGUN = 'custom_mailgun';
const RADIOS = {
  system_sendgrid: 'email-provider-system',
  [CUSTOM]: 'email-provider-custom',
  [MAILGUN]: 'email-provider-mailgun',
  [POSTMARK]: 'email-provider-postmark',
};
/** Who authenticates the sending domain of the account on screen. */
const domainVendor = () => (shown.email?.provider === MAILGUN ? 'Mailgun' : 'SendGrid');

/** The API's field names on each form, and the inputs that show their errors. */
const emailFormErrors = () => new FormErrors('email-form-error', {
  provider: 'email-provider-system',
  sendgridApiKey: 'sendgrid-api-key',
  webhookVerifyKey: 'webhook-verify-key',
  postmarkServerToken: 'postmark-server-token',
  mailgunApiKey: 'mailgun-api-key',
  mailgunDomain: 'mailgun-domain',
  mailgunRegion: 'mailgun-region',
  mailgunWebhookSigningKey: 'mailgun-signing-key',
  postmarkMessageStream: 'postmark-stream',
  fromEmail: 'from-email',
  fromName: 'from-name',
  fallbackEnabled: 'email-fallback',
});
const domainFormErrors = () => new FormErrors('domain-error', {
  domain: 'domain-name',
  subdomain: 'domain-subdomain',
});
const testFormErrors = () => new FormErrors('email-test-error', { to: 'email-test-to' });

/** What is on screen, so actions can redraw after answering without reading everything again. */
const shown = { domain: null, editable: false, email: null };

export function renderEmail(settings, domain, session) {
  shown.domain = domain;
  shown.editable = mayEdit(session);
  const email = settings.email;

  shown.email = email;
  $('email-form-body').disabled = !shown.editable;
  $(RADIOS[email.provider] ?? RADIOS.system_sendgrid).checked = true;
  $('sendgrid-api-key').value = '';
  $('sendgrid-api-key-state').textContent = secretState(
    email.sendgridApiKeyConfigured, email.sendgridApiKeyLast4, 'Not configured: paste a key from SendGrid, Settings > API Keys.',
  );
  $('webhook-verify-key').value = '';
  $('webhook-verify-key-state').textContent = email.webhookVerifyKeyConfigured
    ? 'Configured: delivery events from your SendGrid account are checked against it. Leave empty to keep it.'
    : 'Not configured. Dentite creates the signed event webhook itself when your API key may manage event webhooks; '
      + 'otherwise create one in SendGrid posting to the address below and paste its verification key here.';
  const mailgun = email.mailgun;
  $('mailgun-api-key').value = '';
  $('mailgun-api-key-state').textContent = secretState(
    mailgun.mailgunApiKeyConfigured, mailgun.mailgunApiKeyLast4, 'Not configured: Mailgun, API Security, a private API key.',
  );
  $('mailgun-domain').value = mailgun.mailgunDomain ?? '';
  $('mailgun-region').value = mailgun.mailgunRegion;
  $('mailgun-signing-key').value = '';
  $('mailgun-signing-key-state').textContent = mailgun.mailgunWebhookSigningKeyConfigured
    ? 'Configured: webhooks from your domain are checked against it. Leave empty to keep it.'
    : 'Not configured. Dentite reads it with your API key when it may; otherwise copy it from Mailgun, Webhooks.';

  const postmark = email.postmark;
  $('postmark-server-token').value = '';
  $('postmark-server-token-state').textContent = secretState(
    postmark.postmarkServerTokenConfigured, postmark.postmarkServerTokenLast4,
    'Not configured: Postmark, your server, API Tokens.',
  );
  $('postmark-stream').value = postmark.postmarkMessageStream;
  $('postmark-webhook-state').textContent = postmark.webhookId
    ? 'Dentite created the webhook on your Postmark server. It posts delivery events to:'
    : 'Add a webhook to your Postmark server (Webhooks, Add webhook) posting to:';
  $('postmark-webhook-url').textContent = postmark.webhookUrl;
  $('postmark-webhook-user').textContent = postmark.webhookUsername;
  $('postmark-webhook-password').textContent = postmark.webhookPassword ?? 'shown to owners and admins';
  $('email-fallback').checked = email.fallbackEnabled;
  showCustomFields();

  show($('email-remove'), email.provider !== 'system_sendgrid' || email.sendgridApiKeyConfigured
    || postmark.postmarkServerTokenConfigured || mailgun.mailgunApiKeyConfigured);
  const blocker = $('email-blocker');
  blocker.textContent = email.customBlocker
    ? `Your own account is not sending yet: ${email.customBlocker}. Until then, email goes through Dentite's shared account.`
    : '';
  show(blocker, Boolean(email.customBlocker) && email.provider !== 'system_sendgrid');
  $('email-webhook-url').textContent = email.webhookUrl;
  showLastTest($('email-last-test'), email.lastTestedAt);

  renderDomain(domain, email);
}

function selectedProvider() {
  return document.querySelector('input[name="email-provider"]:checked')?.value;
}

/** The stored sender of the account `provider` names: SendGrid's, or the Postmark server's. */
function fillSender(provider) {
  const email = shown.email;
  const sender = { [POSTMARK]: email.postmark, [MAILGUN]: email.mailgun }[provider] ?? email;
  $('from-email').value = sender.fromEmail ?? '';
  $('from-name').value = sender.fromName ?? '';
}

/** The credential fields only concern your own account. */
function showCustomFields() {
  const provider = selectedProvider();
  show($('email-custom-fields'), provider === CUSTOM);
  show($('postmark-fields'), provider === POSTMARK);
  show($('mailgun-fields'), provider === MAILGUN);
  show($('email-check'), provider !== 'system_sendgrid');
  show($('email-webhook'), provider === CUSTOM);
  show($('postmark-webhook'), provider === POSTMARK && shown.email.postmark.postmarkServerTokenConfigured);
  fillSender(provider);
}

function renderDomain(domain, email) {
  show($('domain-details'), Boolean(domain));
  const onMailgun = email.provider === MAILGUN;
  show($('domain-form'), !domain && !onMailgun && email.sendgridApiKeyConfigured && shown.editable);
  show($('domain-needs-key'), !domain && !onMailgun && !email.sendgridApiKeyConfigured);
  // A Mailgun domain is chosen with the account above and leaves with it.
  show($('domain-remove'), !onMailgun);
  $('domain-form').querySelector('fieldset').disabled = !shown.editable;
  if (!domain) return;

  $('domain-label').textContent = domain.domain;
  const state = $('domain-state');
  state.textContent = domain.verified ? 'Verified' : 'Not verified yet';
  state.className = `badge ${domain.verified ? 'badge-ok' : 'badge-warn'}`;
  // A domain SendGrid already verified when it was set up has never needed a check.
  $('domain-checked').textContent = domain.lastCheckedAt
    ? `Last checked ${formatDate(domain.lastCheckedAt)}`
    : (domain.verified ? '' : 'Not checked yet');

  const rows = domain.records.map((record) => {
    const row = el('tr');
    row.dataset.record = record.name;
    row.append(el('td', { text: record.type.toUpperCase() }));
    for (const [value, what] of [[record.host, 'host'], [record.data, 'value']]) {
      const cell = el('td');
      const wrapper = el('div', { className: 'copy-cell' });
      const code = el('code', { text: value });
      wrapper.append(code, copyButton(value, `Copy the ${what} of the ${record.name} record`, code));
      cell.append(wrapper);
      row.append(cell);
    }
    row.append(recordState(record, domain));
    return row;
  });
  $('domain-records').replaceChildren(...rows);
  $('domain-instructions').replaceChildren(...domain.instructions.map((step) => el('li', { text: step })));
}

function recordState(record, domain) {
  const cell = el('td', { className: 'record-state' });
  if (record.valid) {
    cell.append(el('span', { className: 'badge badge-ok', text: 'Verified' }));
  } else if (!domain.lastCheckedAt) {
    cell.append(el('span', { className: 'badge', text: 'Not checked yet' }));
  } else {
    cell.append(el('span', { className: 'badge badge-warn', text: 'Not found yet' }));
    if (record.reason) cell.append(el('span', { className: 'record-reason', text: record.reason }));
  }
  return cell;
}

async function saveEmail(event, page) {
  event.preventDefault();
  const errors = emailFormErrors();
  errors.clear();
  setStatus($('email-form-status'), '');
  setStatus($('sendgrid-api-key-answer'), '');
  show($('email-notes'), false);

  const provider = selectedProvider();
  const custom = provider === CUSTOM;
  const body = {
    provider,
    fromEmail: $('from-email').value.trim() || undefined,
    fromName: $('from-name').value.trim() || undefined,
    fallbackEnabled: $('email-fallback').checked,
  };
  const newKey = custom ? $('sendgrid-api-key').value.trim() : '';
  if (newKey) body.sendgridApiKey = newKey;
  const verifyKey = custom ? $('webhook-verify-key').value.trim() : '';
  if (verifyKey) body.webhookVerifyKey = verifyKey;
  const postmark = provider === POSTMARK;
  const newToken = postmark ? $('postmark-server-token').value.trim() : '';
  if (newToken) body.postmarkServerToken = newToken;
  const stream = postmark ? $('postmark-stream').value.trim() : '';
  if (stream) body.postmarkMessageStream = stream;
  const mailgun = provider === MAILGUN;
  const mailgunKey = mailgun ? $('mailgun-api-key').value.trim() : '';
  if (mailgun) {
    if (mailgunKey) body.mailgunApiKey = mailgunKey;
    body.mailgunDomain = $('mailgun-domain').value.trim() || undefined;
    body.mailgunRegion = $('mailgun-region').value;
    const signing = $('mailgun-signing-key').value.trim();
    if (signing) body.mailgunWebhookSigningKey = signing;
  }
  setStatus($('mailgun-api-key-answer'), '');
  setStatus($('postmark-server-token-answer'), '');
  const checking = (newKey && 'Checking the key with SendGrid…') || (newToken && 'Checking the token with Postmark…')
    || (mailgun && 'Checking with Mailgun…');

  try {
    const update = await busy($('email-save'), checking || 'Saving…', () => settingsApi.saveEmail(body));
    renderEmail(update.settings, shown.domain, currentSession());
    if (newKey) setStatus($('sendgrid-api-key-answer'), 'SendGrid accepted this key, and it is saved.', 'ok');
    if (newToken) setStatus($('postmark-server-token-answer'), 'Postmark accepted this token, and it is saved.', 'ok');
    if (mailgun) setStatus($('mailgun-api-key-answer'), `Mailgun knows ${update.settings.email.mailgun.mailgunDomain} in this account, and it is saved.`, 'ok');
    // The domain card shows the Mailgun domain's DNS records, read from the domain route.
    if (mailgun) await page.reloadSettings();
    setStatus($('email-form-status'), 'Email settings saved.', 'ok');
    showNotes($('email-notes'), update.notes);
  } catch (error) {
    errors.show(error);
  }
}

async function checkToken() {
  const errors = emailFormErrors();
  errors.clear();
  const answer = $('postmark-server-token-answer');
  setStatus(answer, '');
  const token = $('postmark-server-token').value.trim();
  try {
    const check = await busy($('email-check'), 'Checking with Postmark…',
      () => settingsApi.validateEmail({ provider: POSTMARK, ...(token ? { postmarkServerToken: token } : {}) }));
    if (check.valid) {
      setStatus(answer, `Postmark accepts ${token ? 'this token' : 'the saved token'}.${token ? ' It is not saved yet.' : ''}`, 'ok');
    } else {
      setStatus(answer, sentence(check.reason ?? 'Postmark does not accept this token.'), 'error');
    }
  } catch (error) {
    errors.show(error);
  }
}

async function checkMailgun() {
  const errors = emailFormErrors();
  errors.clear();
  const answer = $('mailgun-api-key-answer');
  setStatus(answer, '');
  const key = $('mailgun-api-key').value.trim();
  const body = { provider: MAILGUN, mailgunRegion: $('mailgun-region').value };
  if (key) body.mailgunApiKey = key;
  const domain = $('mailgun-domain').value.trim();
  if (domain) body.mailgunDomain = domain;
  try {
    const check = await busy($('email-check'), 'Checking with Mailgun…', () => settingsApi.validateEmail(body));
    if (check.valid) setStatus(answer, 'Mailgun accepts the key, and the domain is active. Nothing is saved yet.', 'ok');
    else setStatus(answer, sentence(check.reason ?? 'Mailgun does not accept this key.'), 'error');
  } catch (error) {
    errors.show(error);
  }
}

async function checkKey() {
  if (selectedProvider() === POSTMARK) {
    await checkToken();
    return;
  }
  if (selectedProvider() === MAILGUN) {
    await checkMailgun();
    return;
  }
  const errors = emailFormErrors();
  errors.clear();
  const answer = $('sendgrid-api-key-answer');
  setStatus(answer, '');
  const key = $('sendgrid-api-key').value.trim();
  try {
    const check = await busy($('email-check'), 'Checking with SendGrid…',
      () => settingsApi.validateEmail(key ? { sendgridApiKey: key } : {}));
    if (!check.valid) {
      setStatus(answer, sentence(check.reason ?? 'SendGrid does not accept this key.'), 'error');
      return;
    }
    const can = (allowed, what) => (allowed ? `can ${what}` : `cannot ${what}`);
    const abilities = [
      can(check.canSend, 'send mail'),
      can(check.canAuthenticateDomains, 'authenticate domains'),
      can(check.canCreateEventWebhook, 'create the event webhook for you'),
    ];
    const subject = key ? 'this key' : 'the saved key';
    const unsaved = key ? ' It is not saved yet.' : '';
    setStatus(answer, `SendGrid accepts ${subject}: it ${abilities[0]}, ${abilities[1]} and ${abilities[2]}.${unsaved}`, 'ok');
  } catch (error) {
    errors.show(error);
  }
}

async function removeCustom() {
  const confirmed = await confirmAction({
    title: 'Remove your own email account?',
    message: 'Email goes back to Dentite\'s shared account. The SendGrid, Mailgun and Postmark credentials and '
      + 'domain settings stored here are erased. Your accounts with them are not changed.',
    confirmLabel: 'Remove custom configuration',
  });
  if (!confirmed) return;
  const errors = emailFormErrors();
  errors.clear();
  try {
    const settings = await busy($('email-remove'), 'Removing…', () => settingsApi.removeEmail());
    renderEmail(settings, null, currentSession());
    setStatus($('sendgrid-api-key-answer'), '');
    show($('email-notes'), false);
    setStatus($('email-form-status'), 'Custom configuration removed: email goes through Dentite\'s shared account.', 'ok');
    $('email-provider-system').focus();
  } catch (error) {
    errors.show(error);
  }
}

async function setUpDomain(event, page) {
  event.preventDefault();
  const errors = domainFormErrors();
  errors.clear();
  setStatus($('domain-status'), '');
  const body = { domain: $('domain-name').value.trim() || undefined };
  const subdomain = $('domain-subdomain').value.trim();
  if (subdomain) body.subdomain = subdomain;
  try {
    const domain = await busy($('domain-setup'), 'Setting up with SendGrid…', () => settingsApi.setUpDomain(body));
    await page.reloadSettings();
    setStatus($('domain-status'), domain.verified
      ? `${domain.domain} is set up and already verified.`
      : `${domain.domain} is set up. Publish the ${domain.records.length} records below, then press Check verification.`,
    domain.verified ? 'ok' : undefined);
    $('domain-verify').focus();
  } catch (error) {
    errors.show(error);
  }
}

async function verifyDomain(page) {
  const errors = domainFormErrors();
  errors.clear();
  setStatus($('domain-status'), '');
  try {
    const vendor = domainVendor();
    const domain = await busy($('domain-verify'), `Checking with ${vendor}…`, () => settingsApi.verifyDomain());
    await page.reloadSettings();
    if (domain.verified) {
      setStatus($('domain-status'), `${vendor} verified ${domain.domain}: your own account now sends from it.`, 'ok');
    } else {
      const missing = domain.records.filter((record) => !record.valid).length;
      setStatus($('domain-status'),
        `Not verified yet: ${vendor} does not see ${missing} of the ${domain.records.length} records. `
        + 'DNS changes can take up to 48 hours; check again later.', 'warn');
    }
  } catch (error) {
    errors.show(error);
  }
}

async function removeDomain(page) {
  const name = shown.domain?.domain ?? 'the domain';
  const confirmed = await confirmAction({
    title: `Remove ${name}?`,
    message: 'The domain authentication is deleted in your SendGrid account and here. Mail from your own account '
      + 'goes through Dentite\'s shared account until a domain is verified again.',
    confirmLabel: 'Remove domain',
  });
  if (!confirmed) return;
  const errors = domainFormErrors();
  errors.clear();
  setStatus($('domain-status'), '');
  try {
    const removed = await busy($('domain-remove'), 'Removing…', () => settingsApi.removeDomain());
    await page.reloadSettings();
    setStatus($('domain-status'), removed.alreadyGoneAtSendgrid
      ? `${removed.domain} is removed here; SendGrid no longer had it.`
      : `${removed.domain} is removed from SendGrid and from Dentite.`, 'ok');
    $('domain-name').focus();
  } catch (error) {
    errors.show(error);
  }
}

/**
 * The submit handler of a channel's test form: sends to the address typed in `to` through `send`,
 * then shows the outcome in `result` and, when the configured account itself delivered it, the
 * new last-test time in `lastTest`.
 */
export function testSendHandler({ send, to, button, result, lastTest, errors }) {
  return async (event) => {
    event.preventDefault();
    const formErrors = errors();
    formErrors.clear();
    result.replaceChildren();
    const recipient = to.value.trim();
    try {
      const outcome = await busy(button, 'Sending…', () => send(recipient || undefined));
      result.replaceChildren(testOutcome(outcome, recipient));
      if (countsAsTested(outcome)) showLastTest(lastTest, new Date().toISOString());
    } catch (error) {
      formErrors.show(error);
    }
  };
}

/** What a test send did, in words: sent or not, which account, whether it fell back and why. */
function testOutcome(outcome, to) {
  const box = el('div', { className: `outcome ${outcome.delivered ? 'outcome-ok' : 'outcome-error'}` });
  box.append(el('p', {
    className: 'outcome-title',
    text: outcome.delivered ? `Sent to ${to}.` : `Not sent to ${to}.`,
  }));
  const list = el('dl', { className: 'outcome-list' });
  const row = (term, value) => {
    list.append(el('dt', { text: term }));
    const dd = el('dd');
    dd.append(value);
    list.append(dd);
  };
  row(outcome.delivered ? 'Delivered by' : 'Tried', outcome.provider ? providerLabel(outcome.provider) : 'No account: the recipient is suppressed');
  row('Fell back', outcome.fellBack
    ? `Yes: your own account failed (${outcome.fallbackReason ?? 'no reason given'}), so the shared account sent it.`
    : 'No');
  if (outcome.providerMessageId) row('Message id', el('code', { text: outcome.providerMessageId }));
  if (outcome.error) row('Error', sentence(outcome.error));
  box.append(list);
  return box;
}

/**
 * The API sets `lastTestedAt` when the configured account itself delivered the test (not the
 * fallback). The page shows that at once instead of reading the settings again, which would
 * reset a form the user may be editing.
 */
function countsAsTested(outcome) {
  return outcome.delivered && !outcome.fellBack;
}

export function showLastTest(element, at) {
  element.textContent = at
    ? `Last successful test through the configured account: ${formatDate(at)}.`
    : 'No successful test through the configured account yet.';
}

export function showNotes(list, notes) {
  list.replaceChildren(...(notes ?? []).map((note) => el('li', { text: note })));
  show(list, (notes ?? []).length > 0);
}

export function initEmail(page) {
  for (const radio of document.querySelectorAll('input[name="email-provider"]')) {
    radio.addEventListener('change', showCustomFields);
  }
  $('email-form').addEventListener('submit', (event) => saveEmail(event, page));
  $('email-check').addEventListener('click', () => checkKey());
  $('email-remove').addEventListener('click', removeCustom);
  $('domain-form').addEventListener('submit', (event) => setUpDomain(event, page));
  $('domain-verify').addEventListener('click', () => verifyDomain(page));
  $('domain-remove').addEventListener('click', () => removeDomain(page));
  $('email-test-form').addEventListener('submit', testSendHandler({
    send: (to) => settingsApi.testEmail(to),
    to: $('email-test-to'),
    button: $('email-test-send'),
    result: $('email-test-result'),
    lastTest: $('email-last-test'),
    errors: testFormErrors,
  }));
  // The address is only known once the settings are read: copy what is shown at the time.
  const webhookCopy = copyButton(() => $('email-webhook-url').textContent, 'Copy the event webhook address',
    $('email-webhook-url'));
  $('email-webhook-url').after(webhookCopy);
  for (const [id, label] of [['postmark-webhook-url', 'Copy the Postmark webhook address'],
    ['postmark-webhook-password', 'Copy the Postmark webhook password']]) {
    $(id).after(copyButton(() => $(id).textContent, label, $(id)));
  }
}
