// The SMS tab: the practice's own Twilio account or Telnyx number, and test texts.

import { currentSession, mayEdit, settingsApi } from './api.js';
import { $, FormErrors, busy, confirmAction, copyButton, secretState, sentence, setStatus, show } from './dom.js';
import { showLastTest, showNotes, testSendHandler } from './email.js';

const TWILIO = 'custom_twilio';
const TELNYX = 'custom_telnyx';
const CUSTOM = [TWILIO, TELNYX];

/** Per provider, the inputs that show each API field's error and the vendor's answer about it. */
const FIELDS = {
  [TWILIO]: {
    accountSid: 'twilio-account-sid',
    authToken: 'twilio-auth-token',
    phoneNumber: 'twilio-phone-number',
  },
  [TELNYX]: {
    telnyxApiKey: 'telnyx-api-key',
    phoneNumber: 'telnyx-phone-number',
    telnyxMessagingProfileId: 'telnyx-profile',
    telnyxPublicKey: 'telnyx-public-key',
  },
};
const VENDOR = { [TWILIO]: 'Twilio', [TELNYX]: 'Telnyx' };

/** The saved numbers: saving a different one makes the API check it with the vendor. */
const saved = { [TWILIO]: null, [TELNYX]: null };

function selectedProvider() {
  return document.querySelector('input[name="sms-provider"]:checked')?.value;
}

/** The inputs of the chosen provider (Twilio's when the shared number is chosen). */
const fieldsOf = (provider) => FIELDS[provider] ?? FIELDS[TWILIO];

const smsFormErrors = () => new FormErrors('sms-form-error', {
  provider: 'sms-provider-system',
  ...fieldsOf(selectedProvider()),
  fallbackEnabled: 'sms-fallback',
});
const testFormErrors = () => new FormErrors('sms-test-error', { to: 'sms-test-to' });

const RADIOS = { system_twilio: 'sms-provider-system', [TWILIO]: 'sms-provider-custom', [TELNYX]: 'sms-provider-telnyx' };

export function renderSms(settings, session) {
  const sms = settings.sms;
  $('sms-form-body').disabled = !mayEdit(session);
  $(RADIOS[sms.provider] ?? RADIOS.system_twilio).checked = true;
  $('twilio-account-sid').value = '';
  $('twilio-account-sid-state').textContent = secretState(
    sms.twilioAccountSidConfigured, sms.twilioAccountSidLast4, 'Not configured: copy it from the Twilio console (AC followed by 32 characters).',
  );
  $('twilio-auth-token').value = '';
  $('twilio-auth-token-state').textContent = secretState(
    sms.twilioAuthTokenConfigured, sms.twilioAuthTokenLast4, 'Not configured: shown next to the Account SID in the Twilio console.',
  );
  saved[TWILIO] = sms.phoneNumber;
  $('twilio-phone-number').value = sms.phoneNumber ?? '';

  const telnyx = sms.telnyx;
  $('telnyx-api-key').value = '';
  $('telnyx-api-key-state').textContent = secretState(
    telnyx.telnyxApiKeyConfigured, telnyx.telnyxApiKeyLast4, 'Not configured: create one in Telnyx Mission Control, Keys & Credentials.',
  );
  saved[TELNYX] = telnyx.phoneNumber;
  $('telnyx-phone-number').value = telnyx.phoneNumber ?? '';
  $('telnyx-profile').value = telnyx.telnyxMessagingProfileId ?? '';
  $('telnyx-public-key').value = '';
  $('telnyx-public-key-state').textContent = telnyx.telnyxPublicKeyConfigured
    ? 'Saved. Paste a new one only to replace it.'
    : 'Not saved yet: Mission Control, Keys & Credentials, Public Key. Without it Dentite refuses the account\'s webhooks.';
  $('telnyx-webhook-url').textContent = telnyx.webhookUrl;

  $('sms-fallback').checked = sms.fallbackEnabled;
  showCustomFields();

  show($('sms-remove'), CUSTOM.includes(sms.provider) || sms.twilioAccountSidConfigured || telnyx.telnyxApiKeyConfigured);
  const blocker = $('sms-blocker');
  blocker.textContent = sms.customBlocker
    ? `Your own account is not sending yet: ${sms.customBlocker}. Until then, texts go through Dentite's shared number.`
    : '';
  show(blocker, Boolean(sms.customBlocker) && CUSTOM.includes(sms.provider));
  showLastTest($('sms-last-test'), sms.lastTestedAt);
}

function showCustomFields() {
  const provider = selectedProvider();
  show($('sms-custom-fields'), provider === TWILIO);
  show($('telnyx-fields'), provider === TELNYX);
  show($('sms-check'), CUSTOM.includes(provider));
}

function clearAnswers() {
  for (const fields of Object.values(FIELDS)) {
    for (const inputId of Object.values(fields)) {
      // The public key has no answer of its own: nobody asks the vendor about it.
      const answer = document.getElementById(`${inputId}-answer`);
      if (answer) setStatus(answer, '');
    }
  }
}

/** The chosen account's fields as typed; empty ones are left out, so the stored values stay. */
function typedAccount(provider) {
  const account = {};
  for (const [field, inputId] of Object.entries(fieldsOf(provider))) {
    const value = $(inputId).value.trim();
    if (value) account[field] = value;
  }
  return account;
}

/** Whether saving asks the vendor: new credentials or a new number. */
function asksVendor(provider, account) {
  if (!CUSTOM.includes(provider)) return false;
  const secrets = Object.keys(account).filter((field) => field !== 'phoneNumber' && field !== 'telnyxPublicKey');
  return secrets.length > 0 || account.phoneNumber !== saved[provider];
}

async function saveSms(event) {
  event.preventDefault();
  const errors = smsFormErrors();
  errors.clear();
  clearAnswers();
  setStatus($('sms-form-status'), '');
  show($('sms-notes'), false);

  const provider = selectedProvider();
  const account = CUSTOM.includes(provider) ? typedAccount(provider) : {};
  const body = { provider, fallbackEnabled: $('sms-fallback').checked, ...account };
  const asks = asksVendor(provider, account);
  try {
    const update = await busy($('sms-save'), asks ? `Checking with ${VENDOR[provider]}…` : 'Saving…', () => settingsApi.saveSms(body));
    renderSms(update.settings, currentSession());
    if (asks) {
      const number = provider === TELNYX ? update.settings.sms.telnyx.phoneNumber : update.settings.sms.phoneNumber;
      setStatus($(`${fieldsOf(provider).phoneNumber}-answer`),
        `${VENDOR[provider]} accepted the account, and ${number} can send SMS from it.`, 'ok');
    }
    setStatus($('sms-form-status'), 'SMS settings saved.', 'ok');
    showNotes($('sms-notes'), update.notes);
  } catch (error) {
    errors.show(error);
  }
}

async function checkAccount() {
  const errors = smsFormErrors();
  errors.clear();
  clearAnswers();
  const provider = selectedProvider();
  const vendor = VENDOR[provider];
  const { telnyxPublicKey: _notChecked, ...account } = typedAccount(provider);
  try {
    const check = await busy($('sms-check'), `Checking with ${vendor}…`,
      () => settingsApi.validateSms({ provider, ...account }));
    const fields = fieldsOf(provider);
    if (check.valid) {
      const name = check.accountName ? `"${check.accountName}"` : 'The account';
      const warnings = check.warnings.length > 0 ? ` ${check.warnings.join(' ')}` : '';
      setStatus($(`${fields.phoneNumber}-answer`),
        `${vendor} accepts ${name}: it can send SMS from this number. Nothing is saved yet.${warnings}`,
        check.trial ? 'warn' : 'ok');
    } else {
      const inputId = fields[check.field] ?? fields.phoneNumber;
      setStatus($(`${inputId}-answer`), sentence(check.reason ?? `${vendor} does not accept this account.`), 'error');
    }
  } catch (error) {
    errors.show(error);
  }
}

async function removeCustom() {
  const confirmed = await confirmAction({
    title: 'Remove your own SMS account?',
    message: 'Texts go back to Dentite\'s shared number. The Twilio and Telnyx credentials and numbers stored here '
      + 'are erased. Your accounts with them are not changed.',
    confirmLabel: 'Remove custom configuration',
  });
  if (!confirmed) return;
  const errors = smsFormErrors();
  errors.clear();
  clearAnswers();
  try {
    const settings = await busy($('sms-remove'), 'Removing…', () => settingsApi.removeSms());
    renderSms(settings, currentSession());
    show($('sms-notes'), false);
    setStatus($('sms-form-status'), 'Custom configuration removed: texts go through Dentite\'s shared number.', 'ok');
    $('sms-provider-system').focus();
  } catch (error) {
    errors.show(error);
  }
}

export function initSms() {
  for (const radio of document.querySelectorAll('input[name="sms-provider"]')) {
    radio.addEventListener('change', showCustomFields);
  }
  $('sms-form').addEventListener('submit', saveSms);
  $('sms-check').addEventListener('click', checkAccount);
  $('sms-remove').addEventListener('click', removeCustom);
  $('sms-test-form').addEventListener('submit', testSendHandler({
    send: (to) => settingsApi.testSms(to),
    to: $('sms-test-to'),
    button: $('sms-test-send'),
    result: $('sms-test-result'),
    lastTest: $('sms-last-test'),
    errors: testFormErrors,
  }));
  const webhookCopy = copyButton(() => $('telnyx-webhook-url').textContent, 'Copy the Telnyx inbound webhook address',
    $('telnyx-webhook-url'));
  $('telnyx-webhook-url').after(webhookCopy);
}
