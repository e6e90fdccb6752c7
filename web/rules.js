// The sending rules view: the practice's time zone, sending window, care-SMS caps, CAN-SPAM
// contact and SMS price. Staff read them; owners and admins change them.

import { mayEdit, rulesApi } from './api.js';
import { $, FormErrors, busy, setStatus } from './dom.js';

/** The API's field names, and the inputs that show their errors. */
const FIELDS = {
  timezone: 'rules-timezone',
  'sendingWindow.start': 'rules-window-start',
  'sendingWindow.end': 'rules-window-end',
  smsCareDailyCap: 'rules-daily-cap',
  smsCareWeeklyCap: 'rules-weekly-cap',
  postalAddress: 'rules-postal-address',
  contactPhone: 'rules-contact-phone',
  contactEmail: 'rules-contact-email',
  smsSegmentPrice: 'rules-segment-price',
};

const rulesErrors = () => new FormErrors('rules-error', FIELDS);

export async function renderRules(session) {
  const rules = await rulesApi.read();
  fill(rules);
  $('rules-form-body').disabled = !mayEdit(session);
  setStatus($('rules-status'), '');
}

function fill(rules) {
  $('rules-timezone').value = rules.timezone;
  $('rules-window-start').value = rules.sendingWindow.start;
  $('rules-window-end').value = rules.sendingWindow.end;
  $('rules-daily-cap').value = rules.smsCareDailyCap;
  $('rules-weekly-cap').value = rules.smsCareWeeklyCap;
  $('rules-postal-address').value = rules.postalAddress ?? '';
  $('rules-contact-phone').value = rules.contactPhone ?? '';
  $('rules-contact-email').value = rules.contactEmail ?? '';
  $('rules-segment-price').value = rules.smsSegmentPrice ?? '';
}

/** An optional text: empty means none. */
const optional = (id) => $(id).value.trim() || null;

/** A whole number as typed; anything else goes to the API as typed, which names the field. */
function count(id) {
  const value = $(id).value.trim();
  return /^-?\d+$/.test(value) ? Number(value) : value;
}

async function save(event) {
  event.preventDefault();
  const errors = rulesErrors();
  errors.clear();
  setStatus($('rules-status'), '');
  const body = {
    timezone: $('rules-timezone').value.trim(),
    sendingWindow: { start: $('rules-window-start').value, end: $('rules-window-end').value },
    smsCareDailyCap: count('rules-daily-cap'),
    smsCareWeeklyCap: count('rules-weekly-cap'),
    postalAddress: optional('rules-postal-address'),
    contactPhone: optional('rules-contact-phone'),
    contactEmail: optional('rules-contact-email'),
    smsSegmentPrice: optional('rules-segment-price'),
  };
  try {
    const saved = await busy($('rules-save'), 'Saving…', () => rulesApi.save(body));
    fill(saved);
    setStatus($('rules-status'), 'Sending rules saved.', 'ok');
  } catch (error) {
    errors.show(error);
  }
}

export function initRules() {
  $('rules-form').addEventListener('submit', save);
  // The browser's own list of tz database names, to pick from while typing.
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  $('rules-timezones').replaceChildren(...zones.map((zone) => {
    const option = document.createElement('option');
    option.value = zone;
    return option;
  }));
}
