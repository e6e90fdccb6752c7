// The SMS tab: the Twilio account and number, and test texts.

import { currentSession, mayEdit, settingsApi } from './api.js';
import { $, FormErrors, busy, confirmAction, secretState, sentence, setStatus, show } from './dom.js';
import { showLastTest, showNotes, testSendHandler } from './email.js';

const CUSTOM = 'custom_twilio';

/** The inputs that show each API field's error, and where Twilio's answer about it goes. */
const FIELDS = {
  accountSid: 'twilio-account-sid',
  authToken: 'twilio-auth-token',
  phoneNumber: 'twilio-phone-number',
};

/** The saved number: saving a different one makes the API check it with Twilio. */
let savedPhone = null;

const smsFormErrors = () => new FormErrors('sms-form-error', {
  provider: 'sms-provider-system',
  ...FIELDS,
  fallbackEnabled: 'sms-fallback',
});
const testFormErrors = () => new FormErrors('sms-test-error', { to: 'sms-test-to' });

export function renderSms(settings, session) {
  const sms = settings.sms;
  $('sms-form-body').disabled = !mayEdit(session);
  $(sms.provider === CUSTOM ? 'sms-provider-custom' : 'sms-provider-system').checked = true;
  $('twilio-account-sid').value = '';
  $('twilio-account-sid-state').textContent = secretState(
    sms.twilioAccountSidConfigured, sms.twilioAccountSidLast4, 'Not configured: copy it from the Twilio console (AC followed by 32 characters).',
  );
  $('twilio-auth-token').value = '';
  $('twilio-auth-token-state').textContent = secretState(
    sms.twilioAuthTokenConfigured, sms.twilioAuthTokenLast4, 'Not configured: shown next to the Account SID in the Twilio console.',
  );
  savedPhone = sms.phoneNumber;
  $('twilio-phone-number').value = sms.phoneNumber ?? '';
  $('sms-fallback').checked = sms.fallbackEnabled;
  showCustomFields();

  show($('sms-remove'), sms.provider === CUSTOM || sms.twilioAccountSidConfigured);
  const blocker = $('sms-blocker');
  blocker.textContent = sms.customBlocker
    ? `Your own account is not sending yet: ${sms.customBlocker}. Until then, texts go through Dentite's shared number.`
    : '';
  show(blocker, Boolean(sms.customBlocker) && sms.provider === CUSTOM);
  showLastTest($('sms-last-test'), sms.lastTestedAt);
}

function selectedProvider() {
  return document.querySelector('input[name="sms-provider"]:checked')?.value;
}

function showCustomFields() {
  const custom = selectedProvider() === CUSTOM;
  show($('sms-custom-fields'), custom);
  show($('sms-check'), custom);
}

function clearAnswers() {
  for (const inputId of Object.values(FIELDS)) setStatus($(`${inputId}-answer`), '');
}

/** The custom account's fields as typed; empty ones are left out, so the stored values stay. */
function typedAccount() {
  const account = {};
  const sid = $('twilio-account-sid').value.trim();
  const token = $('twilio-auth-token').value.trim();
  const phone = $('twilio-phone-number').value.trim();
  if (sid) account.accountSid = sid;
  if (token) account.authToken = token;
  if (phone) account.phoneNumber = phone;
  return account;
}

async function saveSms(event) {
  event.preventDefault();
  const errors = smsFormErrors();
  errors.clear();
  clearAnswers();
  setStatus($('sms-form-status'), '');
  show($('sms-notes'), false);

  const provider = selectedProvider();
  const custom = provider === CUSTOM;
  const account = custom ? typedAccount() : {};
  const body = { provider, fallbackEnabled: $('sms-fallback').checked, ...account };
  // Twilio is asked only about new credentials or a new number; say so while it is.
  const asksTwilio = custom && Boolean(account.accountSid || account.authToken || account.phoneNumber !== savedPhone);
  try {
    const update = await busy($('sms-save'), asksTwilio ? 'Checking with Twilio…' : 'Saving…', () => settingsApi.saveSms(body));
    renderSms(update.settings, currentSession());
    if (asksTwilio) {
      setStatus($('twilio-phone-number-answer'),
        `Twilio accepted the account, and ${update.settings.sms.phoneNumber} can send SMS from it.`, 'ok');
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
  try {
    const check = await busy($('sms-check'), 'Checking with Twilio…', () => settingsApi.validateSms(typedAccount()));
    if (check.valid) {
      const name = check.accountName ? `"${check.accountName}"` : 'The account';
      const warnings = check.warnings.length > 0 ? ` ${check.warnings.join(' ')}` : '';
      setStatus($('twilio-phone-number-answer'),
        `Twilio accepts ${name}: it is active and can send SMS from this number. Nothing is saved yet.${warnings}`,
        check.trial ? 'warn' : 'ok');
    } else {
      const inputId = FIELDS[check.field] ?? FIELDS.authToken;
      setStatus($(`${inputId}-answer`), sentence(check.reason ?? 'Twilio does not accept this account.'), 'error');
    }
  } catch (error) {
    errors.show(error);
  }
}

async function removeCustom() {
  const confirmed = await confirmAction({
    title: 'Remove your Twilio account?',
    message: 'Texts go back to Dentite\'s shared number. The Account SID, auth token and phone number stored here '
      + 'are erased. Your Twilio account itself is not changed.',
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
}
