// The patients view: find, add, edit and remove patients; see and record each one's consent; and
// write them a message, previewed (segments, encoding, cost, when it would go, whether a rule
// would withhold it) before it is queued.

import { patientsApi } from './api.js';
import { $, FormErrors, busy, confirmAction, el, formatDate, setStatus, show, showRows } from './dom.js';
import { smsShape } from './segments.js';

const state = { search: '', cursor: null, patient: null, previewTimer: null };

const SOURCES = {
  web_form: 'web form', paper_form: 'paper form', verbal: 'verbally', sms_keyword: 'a text keyword',
  email_link: 'an email link', import: 'import', api: 'the API',
};
const EFFECTIVE = { granted: 'Granted', revoked: 'Revoked', unknown: 'Not recorded' };
const RULES = {
  opted_out: 'the patient opted out',
  no_marketing_consent: 'there is no marketing consent',
  frequency_cap: "the patient's limit of care texts is reached",
  no_postal_address: "marketing email needs the practice's postal address",
};

const listErrors = () => new FormErrors('patients-error', { search: 'patients-search' });
const patientErrors = () => new FormErrors('patient-error', {
  firstName: 'patient-first-name', lastName: 'patient-last-name', email: 'patient-email',
  phone: 'patient-phone', timezone: 'patient-timezone',
});
const consentErrors = () => new FormErrors('patient-error', {
  channel: 'consent-channel', category: 'consent-category', granted: 'consent-granted',
  source: 'consent-source', evidence: 'consent-evidence',
});
const composeErrors = () => new FormErrors('patient-error', {
  channel: 'compose-channel', category: 'compose-category', subject: 'compose-subject', body: 'compose-body',
});

export async function renderPatients() {
  state.search = $('patients-search').value.trim();
  await showPage({ append: false });
}

async function showPage({ append }) {
  const page = await patientsApi.page(state.search, append ? state.cursor : null);
  state.cursor = page.nextCursor ?? null;
  showRows(
    { rows: $('patients-rows'), table: $('patients-table'), empty: $('patients-empty'), more: $('patients-more') },
    page.items.map(row),
    state.cursor,
    { append },
  );
}

const fullName = (patient) => `${patient.firstName} ${patient.lastName}`;

function row(patient) {
  const tr = el('tr');
  tr.dataset.patient = patient.id;
  const open = el('button', {
    className: 'button button-small', text: 'Open',
    attrs: { type: 'button', 'aria-label': `Open ${fullName(patient)}` },
  });
  open.addEventListener('click', () => openPatient(patient));
  const cell = el('td');
  cell.append(open);
  tr.append(el('td', { text: fullName(patient) }), el('td', { text: patient.email ?? '—' }),
    el('td', { text: patient.phone ?? '—' }), cell);
  return tr;
}

function fillForm(patient) {
  $('patient-first-name').value = patient?.firstName ?? '';
  $('patient-last-name').value = patient?.lastName ?? '';
  $('patient-email').value = patient?.email ?? '';
  $('patient-phone').value = patient?.phone ?? '';
  $('patient-timezone').value = patient?.timezone ?? '';
}

async function openPatient(patient) {
  state.patient = patient;
  patientErrors().clear();
  fillForm(patient);
  setStatus($('patient-status'), '');
  $('patient-form-title').textContent = patient ? fullName(patient) : 'A new patient';
  show($('patient-delete'), Boolean(patient));
  show($('patient-more'), Boolean(patient));
  show($('patient-card'), true);
  if (patient) await showConsents();
  $('patient-card').focus();
}

async function showConsents() {
  const consents = await patientsApi.consents(state.patient.id);
  const rows = ['sms', 'email'].map((channel) => {
    const tr = el('tr');
    const effective = consents.effective[channel];
    tr.append(el('th', { text: channel === 'sms' ? 'SMS' : 'Email', attrs: { scope: 'row' } }),
      el('td', { text: EFFECTIVE[effective.care] }), el('td', { text: EFFECTIVE[effective.marketing] }));
    return tr;
  });
  $('consent-effective').replaceChildren(...rows);
  $('consent-history').replaceChildren(...consents.history.map((entry) => {
    const item = el('li');
    const who = entry.recordedBy ? ` by ${entry.recordedBy.email}` : '';
    item.append(el('time', { text: formatDate(entry.recordedAt), attrs: { datetime: entry.recordedAt } }), ' ',
      el('span', {
        text: `${entry.granted ? 'Granted' : 'Revoked'} ${entry.category} ${entry.channel === 'sms' ? 'SMS' : 'email'}, `
          + `by ${SOURCES[entry.source] ?? entry.source}${who}${entry.evidence ? ` (${entry.evidence})` : ''}.`,
      }));
    return item;
  }));
}

/** An optional text field: empty is `null`, which clears it on an edit. */
const optional = (id) => $(id).value.trim() || null;

async function savePatient(event) {
  event.preventDefault();
  const errors = patientErrors();
  errors.clear();
  setStatus($('patient-status'), '');
  const body = {
    firstName: $('patient-first-name').value.trim(),
    lastName: $('patient-last-name').value.trim(),
    email: optional('patient-email'),
    phone: optional('patient-phone'),
    timezone: optional('patient-timezone'),
  };
  try {
    const saved = await busy($('patient-save'), 'Saving…', () => (state.patient
      ? patientsApi.update(state.patient.id, body)
      : patientsApi.create(body)));
    const created = !state.patient;
    await renderPatients();
    await openPatient(saved);
    setStatus($('patient-status'), created ? 'Patient added.' : 'Patient saved.', 'ok');
  } catch (error) {
    errors.show(error);
  }
}

async function deletePatient() {
  const patient = state.patient;
  const confirmed = await confirmAction({
    title: `Delete ${fullName(patient)}?`,
    message: 'The patient and their consents are deleted. Messages already sent stay in the activity, without a name.',
    confirmLabel: 'Delete patient',
  });
  if (!confirmed) return;
  try {
    await busy($('patient-delete'), 'Deleting…', () => patientsApi.remove(patient.id));
    show($('patient-card'), false);
    state.patient = null;
    await renderPatients();
    $('patient-new').focus();
  } catch (error) {
    patientErrors().show(error);
  }
}

async function recordConsent(event) {
  event.preventDefault();
  const errors = consentErrors();
  errors.clear();
  setStatus($('consent-status'), '');
  const body = {
    channel: $('consent-channel').value,
    category: $('consent-category').value,
    granted: $('consent-granted').value === 'true',
    source: $('consent-source').value,
  };
  const evidence = $('consent-evidence').value.trim();
  if (evidence) body.evidence = evidence;
  try {
    await busy($('consent-record'), 'Recording…', () => patientsApi.recordConsent(state.patient.id, body));
    $('consent-evidence').value = '';
    await showConsents();
    setStatus($('consent-status'), 'Consent recorded.', 'ok');
  } catch (error) {
    errors.show(error);
  }
}

function composed() {
  const channel = $('compose-channel').value;
  const body = {
    channel, category: $('compose-category').value, body: $('compose-body').value, patientId: state.patient.id,
  };
  if (channel === 'email') body.subject = $('compose-subject').value.trim() || undefined;
  return body;
}

/** What the message would be: shown as it is typed (a preview is cheap and sends nothing). */
async function preview() {
  if (!state.patient || !$('compose-body').value) {
    $('compose-preview').textContent = '';
    return;
  }
  try {
    const answer = await patientsApi.preview(composed());
    const parts = [];
    if ($('compose-channel').value === 'sms') {
      parts.push(...smsShape(answer));
    }
    if (answer.scheduledFor) parts.push(`would go at ${formatDate(answer.scheduledFor)} (the patient's sending window)`);
    if (answer.wouldBeSuppressed) parts.push(`would be withheld: ${RULES[answer.wouldBeSuppressed] ?? answer.wouldBeSuppressed}`);
    $('compose-preview').textContent = parts.join('; ');
  } catch {
    // A preview that cannot be made says nothing; sending says why.
    $('compose-preview').textContent = '';
  }
}

function previewSoon() {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(preview, 250);
}

async function send(event) {
  event.preventDefault();
  const errors = composeErrors();
  errors.clear();
  setStatus($('compose-status'), '');
  try {
    const queued = await busy($('compose-send'), 'Queuing…', () => patientsApi.send(composed()));
    $('compose-body').value = '';
    $('compose-preview').textContent = '';
    setStatus($('compose-status'), queued.status === 'suppressed'
      ? 'Not sent: a sending rule withheld it. Activity says which.'
      : 'Queued. Follow it in Activity.', queued.status === 'suppressed' ? 'warn' : 'ok');
  } catch (error) {
    errors.show(error);
  }
}

export function initPatients() {
  $('patients-search-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const errors = listErrors();
    errors.clear();
    try {
      await busy($('patients-search-button'), 'Searching…', () => renderPatients());
    } catch (error) {
      errors.show(error);
    }
  });
  $('patients-more').addEventListener('click', async () => {
    try {
      await busy($('patients-more'), 'Loading…', () => showPage({ append: true }));
    } catch (error) {
      listErrors().show(error);
    }
  });
  $('patient-new').addEventListener('click', () => openPatient(null));
  $('patient-form').addEventListener('submit', savePatient);
  $('patient-delete').addEventListener('click', deletePatient);
  $('consent-form').addEventListener('submit', recordConsent);
  $('compose-form').addEventListener('submit', send);
  for (const id of ['compose-body', 'compose-subject']) $(id).addEventListener('input', previewSoon);
  for (const id of ['compose-channel', 'compose-category']) $(id).addEventListener('change', previewSoon);
}
