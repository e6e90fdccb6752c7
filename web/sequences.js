// The sequences view: the practice's recall and reminder campaigns; each one's steps (channel,
// wait, kind, subject, message with a live segment count), pausing and resuming, enrolling
// patients, and where each enrolled patient is or why they stopped.

import { patientsApi, sequencesApi } from './api.js';
import { $, FormErrors, announce, busy, confirmAction, el, formatDate, setStatus, show, showRows } from './dom.js';
import { smsShape } from './segments.js';

/** Why an enrolment stopped, as a practice manager would say it. */
const STOPPED = {
  removed: 'taken out of the sequence by a user',
  missing_email: 'an email step came and the patient has no email address',
  missing_phone: 'a text step came and the patient has no mobile number',
  invalid_steps: 'a step could not be written for this patient',
  unsubscribed: 'the patient unsubscribed',
  opted_out: 'the patient opted out of texts',
  bounced: "the patient's email address bounced",
  spam_reported: 'the patient reported a message as spam',
  invalid: "the patient's address or number is not valid",
};

const UNITS = { days: 24 * 60, hours: 60, minutes: 1 };
const NEW_STEP = { channel: 'sms', category: 'care', delayMinutes: 0, body: '' };
const WEEK_IN_MINUTES = 7 * UNITS.days;

const state = {
  cursor: null,
  sequence: null,
  enrollmentsCursor: null,
  counters: new Map(),
};

const listErrors = () => new FormErrors('sequences-error', {});
const enrolErrors = () => new FormErrors('enrol-error', { search: 'enrol-search', patientIds: 'enrol-choices-group' });
const enrollmentsErrors = () => new FormErrors('enrol-error', { status: 'enrollments-status' });

/** The form's errors: the name, the step list, and each field of each step shown. */
function sequenceErrors() {
  const fields = { name: 'sequence-name', steps: 'sequence-steps-group' };
  const shown = $('sequence-steps').children.length;
  for (let i = 0; i < shown; i += 1) {
    for (const [field, input] of [['channel', 'channel'], ['category', 'category'], ['delayMinutes', 'delay'], ['subject', 'subject'], ['body', 'body']]) {
      fields[`steps[${i}].${field}`] = `step-${i}-${input}`;
    }
  }
  return new FormErrors('sequence-error', fields);
}

export async function renderSequences() {
  await showPage({ append: false });
}

async function showPage({ append }) {
  const page = await sequencesApi.page(append ? state.cursor : null);
  state.cursor = page.nextCursor ?? null;
  showRows(
    { rows: $('sequences-rows'), table: $('sequences-table'), empty: $('sequences-empty'), more: $('sequences-more') },
    page.items.map(sequenceRow),
    state.cursor,
    { append },
  );
}

function sequenceRow(sequence) {
  const tr = el('tr');
  tr.dataset.sequence = sequence.id;
  const open = el('button', {
    className: 'button button-small', text: 'Open', attrs: { type: 'button', 'aria-label': `Open ${sequence.name}` },
  });
  open.addEventListener('click', () => openSequence(sequence.id));
  const action = el('td');
  action.append(open);
  tr.append(
    el('td', { text: sequence.name }),
    el('td', { text: sequence.status === 'paused' ? 'Paused' : 'Running' }),
    el('td', { text: sequence.steps.length }),
    el('td', { text: sequence.enrollments.active }),
    el('td', { text: sequence.enrollments.completed }),
    el('td', { text: sequence.enrollments.stopped }),
    action,
  );
  return tr;
}

// --- The steps editor ---

/** The largest unit the wait is a whole number of, so "7 days" reads as written. */
function waitOf(minutes) {
  for (const [unit, size] of Object.entries(UNITS)) {
    if (minutes > 0 && minutes % size === 0) return { amount: minutes / size, unit };
  }
  return { amount: minutes, unit: minutes === 0 ? 'days' : 'minutes' };
}

function labelled(id, text, control, { hint, optional } = {}) {
  const field = el('div', { className: 'field' });
  const label = el('label', { text, attrs: { for: id } });
  if (optional) label.append(' ', el('span', { className: 'optional', text: optional }));
  control.id = id;
  const describedBy = [];
  field.append(label, control);
  if (hint) {
    field.append(el('p', { className: 'hint', text: hint, attrs: { id: `${id}-hint` } }));
    describedBy.push(`${id}-hint`);
  }
  const error = el('p', { className: 'field-error', attrs: { id: `${id}-error` } });
  error.hidden = true;
  field.append(error);
  describedBy.push(`${id}-error`);
  control.setAttribute('aria-describedby', describedBy.join(' '));
  return field;
}

function select(options, value) {
  const control = el('select');
  for (const [optionValue, text] of options) control.append(el('option', { text, attrs: { value: optionValue } }));
  control.value = value;
  return control;
}

function row(...fields) {
  const wrapper = el('div', { className: 'field-row' });
  wrapper.append(...fields);
  return wrapper;
}

function stepItem(step, index) {
  const id = (name) => `step-${index}-${name}`;
  const item = el('li', { className: 'step' });
  item.dataset.step = String(index);
  const wait = waitOf(step.delayMinutes ?? 0);
  const amount = el('input', { attrs: { type: 'number', min: '0', step: '1', inputmode: 'numeric' } });
  amount.value = String(wait.amount);
  const subject = el('input', { attrs: { type: 'text', autocomplete: 'off' } });
  subject.value = step.subject ?? '';
  const body = el('textarea', { attrs: { rows: '3' } });
  body.value = step.body ?? '';
  const channel = select([['sms', 'SMS'], ['email', 'Email']], step.channel);
  const subjectField = labelled(id('subject'), 'Subject', subject);
  subjectField.hidden = step.channel !== 'email';
  const remove = el('button', {
    className: 'button button-quiet', text: 'Remove step', attrs: { type: 'button', 'aria-label': `Remove step ${index + 1}` },
  });
  remove.addEventListener('click', () => removeStep(index));
  const counter = el('p', { className: 'hint', attrs: { id: id('count'), role: 'status' } });

  item.append(
    el('h4', { className: 'step-title', text: `Step ${index + 1}` }),
    row(
      labelled(id('channel'), 'Channel', channel),
      labelled(id('category'), 'Kind', select([['care', 'Care (reminders)'], ['marketing', 'Marketing']], step.category ?? 'care')),
    ),
    row(
      labelled(id('delay'), 'Wait', amount, { hint: index === 0 ? 'After the patient is enrolled.' : 'After the previous step.' }),
      labelled(id('delay-unit'), 'In', select([['days', 'Days'], ['hours', 'Hours'], ['minutes', 'Minutes']], wait.unit)),
    ),
    subjectField,
    labelled(id('body'), 'Message', body),
    counter,
    remove,
  );
  body.setAttribute('aria-describedby', `${id('count')} ${id('body')}-error`);
  channel.addEventListener('change', () => {
    subjectField.hidden = channel.value !== 'email';
    countSoon(index);
  });
  body.addEventListener('input', () => countSoon(index));
  return item;
}

function renderSteps(steps) {
  for (const timer of state.counters.values()) clearTimeout(timer);
  state.counters.clear();
  $('sequence-steps').replaceChildren(...steps.map(stepItem));
  steps.forEach((_, index) => count(index));
}

/** The steps as typed, in the API's shape. */
function stepsFromForm() {
  return [...$('sequence-steps').children].map((_, index) => {
    const value = (name) => $(`step-${index}-${name}`).value;
    const channel = value('channel');
    const amount = value('delay').trim();
    const step = {
      channel,
      category: value('category'),
      delayMinutes: amount === '' ? null : Math.round(Number(amount) * UNITS[value('delay-unit')]),
      body: value('body'),
    };
    if (channel === 'email') step.subject = value('subject');
    return step;
  });
}

function addStep() {
  const steps = stepsFromForm();
  steps.push({ ...NEW_STEP, delayMinutes: steps.length === 0 ? 0 : WEEK_IN_MINUTES });
  renderSteps(steps);
  $(`step-${steps.length - 1}-body`).focus();
}

function removeStep(index) {
  const steps = stepsFromForm();
  steps.splice(index, 1);
  renderSteps(steps);
  announce(`Removed step ${index + 1}`);
  const next = Math.min(index, steps.length - 1);
  if (next >= 0) $(`step-${next}-channel`).focus();
  else $('sequence-add-step').focus();
}

function countSoon(index) {
  clearTimeout(state.counters.get(index));
  state.counters.set(index, setTimeout(() => count(index), 250));
}

/** The step's length as the provider will bill it; placeholders count as typed. */
async function count(index) {
  const counter = document.getElementById(`step-${index}-count`);
  const body = document.getElementById(`step-${index}-body`)?.value ?? '';
  if (!counter) return;
  if (!body) {
    counter.textContent = '';
    return;
  }
  const channel = $(`step-${index}-channel`).value;
  try {
    const answer = await sequencesApi.preview({ channel, body, category: $(`step-${index}-category`).value });
    const parts = channel === 'sms' ? smsShape(answer) : [`${answer.characters} characters`];
    if (body.includes('{{')) parts.push('placeholders counted as typed');
    // The step may have been removed or retyped while the count was on its way.
    if (counter.isConnected && $(`step-${index}-body`).value === body) counter.textContent = parts.join('; ');
  } catch {
    // A count that cannot be made says nothing; saving says what is wrong.
    counter.textContent = '';
  }
}

// --- One sequence ---

function describeState(sequence) {
  if (!sequence) return 'New: nothing is sent until it is saved and patients are enrolled.';
  const { active, completed, stopped } = sequence.enrollments;
  const people = `${active} part-way through, ${completed} finished, ${stopped} stopped`;
  return sequence.status === 'paused'
    ? `Paused: nothing more is sent until it is resumed (${people}).`
    : `Running: ${people}.`;
}

function showSequence(sequence) {
  state.sequence = sequence;
  $('sequence-form-title').textContent = sequence ? sequence.name : 'New sequence';
  $('sequence-state').textContent = describeState(sequence);
  $('sequence-pause').textContent = sequence?.status === 'paused' ? 'Resume' : 'Pause';
  show($('sequence-pause'), sequence !== null);
  show($('sequence-delete'), sequence !== null);
  show($('sequence-people'), sequence !== null);
  show($('sequence-card'), true);
}

async function openSequence(id) {
  const errors = listErrors();
  errors.clear();
  try {
    const sequence = await sequencesApi.read(id);
    sequenceErrors().clear();
    setStatus($('sequence-status'), '');
    $('sequence-name').value = sequence.name;
    renderSteps(sequence.steps);
    showSequence(sequence);
    resetEnrol();
    await showEnrollments({ append: false });
    $('sequence-card').focus();
  } catch (error) {
    errors.show(error);
  }
}

function newSequence() {
  sequenceErrors().clear();
  setStatus($('sequence-status'), '');
  $('sequence-name').value = '';
  renderSteps([{ ...NEW_STEP }]);
  showSequence(null);
  $('sequence-name').focus();
}

async function saveSequence(event) {
  event.preventDefault();
  const errors = sequenceErrors();
  errors.clear();
  setStatus($('sequence-status'), '');
  const fields = { name: $('sequence-name').value, steps: stepsFromForm() };
  try {
    const saved = await busy($('sequence-save'), 'Saving…', () => (state.sequence
      ? sequencesApi.update(state.sequence.id, fields)
      : sequencesApi.create(fields)));
    const created = state.sequence === null;
    showSequence(saved);
    if (created) resetEnrol();
    if (created) await showEnrollments({ append: false });
    setStatus($('sequence-status'), created ? 'Sequence created. Enrol patients below.' : 'Sequence saved.', 'ok');
    await showPage({ append: false });
  } catch (error) {
    errors.show(error);
  }
}

async function togglePause() {
  const errors = sequenceErrors();
  errors.clear();
  const status = state.sequence.status === 'paused' ? 'active' : 'paused';
  try {
    const saved = await busy($('sequence-pause'), status === 'paused' ? 'Pausing…' : 'Resuming…', () => sequencesApi.update(state.sequence.id, { status }));
    showSequence(saved);
    setStatus($('sequence-status'), status === 'paused' ? 'Paused.' : 'Resumed: what fell due meanwhile goes now.', 'ok');
    // Where each patient is reads differently while the sequence is paused.
    await showEnrollments({ append: false });
    await showPage({ append: false });
  } catch (error) {
    errors.show(error);
  }
}

async function deleteSequence() {
  const { sequence } = state;
  const confirmed = await confirmAction({
    title: `Delete ${sequence.name}?`,
    message: 'Its enrolments end and nothing more of it is sent. Messages already sent stay in Activity.',
    confirmLabel: 'Delete sequence',
  });
  if (!confirmed) return;
  const errors = sequenceErrors();
  errors.clear();
  try {
    await busy($('sequence-delete'), 'Deleting…', () => sequencesApi.remove(sequence.id));
    show($('sequence-card'), false);
    state.sequence = null;
    await showPage({ append: false });
    announce(`Deleted ${sequence.name}`);
    $('sequences-list-title').setAttribute('tabindex', '-1');
    $('sequences-list-title').focus();
  } catch (error) {
    errors.show(error);
  }
}

// --- Enrolling and enrolments ---

function resetEnrol() {
  enrolErrors().clear();
  $('enrol-search').value = '';
  $('enrol-choices').replaceChildren();
  show($('enrol-choices-group'), false);
  show($('enrol-none'), false);
  setStatus($('enrol-status'), '');
  $('enrollments-status').value = '';
}

async function findPatients(event) {
  event.preventDefault();
  const errors = enrolErrors();
  errors.clear();
  setStatus($('enrol-status'), '');
  try {
    const page = await busy($('enrol-search-button'), 'Finding…', () => patientsApi.page($('enrol-search').value.trim(), null));
    $('enrol-choices').replaceChildren(...page.items.map((patient) => {
      const item = el('li');
      const label = el('label', { className: 'choice' });
      const box = el('input', { attrs: { type: 'checkbox', value: patient.id } });
      const reach = [patient.email, patient.phone].filter(Boolean).join(', ') || 'no email or phone';
      label.append(box, el('span', { text: `${patient.firstName} ${patient.lastName}` }), el('span', { className: 'choice-hint', text: reach }));
      item.append(label);
      return item;
    }));
    show($('enrol-choices-group'), page.items.length > 0);
    show($('enrol-none'), page.items.length === 0);
  } catch (error) {
    errors.show(error);
  }
}

async function enrolChosen() {
  const errors = enrolErrors();
  errors.clear();
  setStatus($('enrol-status'), '');
  const patientIds = [...$('enrol-choices').querySelectorAll('input:checked')].map((box) => box.value);
  try {
    const outcome = await busy($('enrol-submit'), 'Enrolling…', () => sequencesApi.enrol(state.sequence.id, { patientIds }));
    const parts = [`${outcome.enrolled} enrolled`];
    if (outcome.alreadyEnrolled > 0) parts.push(`${outcome.alreadyEnrolled} already enrolled, left as they were`);
    setStatus($('enrol-status'), `${parts.join('; ')}.`, 'ok');
    for (const box of $('enrol-choices').querySelectorAll('input:checked')) box.checked = false;
    await refreshSequence();
  } catch (error) {
    // One refused patient is reported as patientIds[i]: the choices are where to look.
    const fields = {};
    for (const [field, message] of Object.entries(error.fields ?? {})) fields[field.replace(/\[\d+\]$/, '')] = message;
    error.fields = fields;
    errors.show(error);
  }
}

/** Reads the open sequence's counts and enrolments again after a change to them. */
async function refreshSequence() {
  showSequence(await sequencesApi.read(state.sequence.id));
  await showEnrollments({ append: false });
  await showPage({ append: false });
}

function whereabouts(enrollment) {
  const steps = state.sequence.steps.length;
  switch (enrollment.status) {
    case 'active': {
      const next = `Next: step ${enrollment.nextStep + 1} of ${steps}, ${formatDate(enrollment.nextRunAt)}`;
      return state.sequence.status === 'paused' ? `${next} (held while the sequence is paused).` : `${next}.`;
    }
    case 'completed':
      return 'Finished: every step was sent.';
    default:
      return `Stopped: ${STOPPED[enrollment.stopReason] ?? enrollment.stopReason ?? 'no reason recorded'}.`;
  }
}

async function showEnrollments({ append }) {
  const page = await sequencesApi.enrollments(state.sequence.id, $('enrollments-status').value, append ? state.enrollmentsCursor : null);
  state.enrollmentsCursor = page.nextCursor ?? null;
  showRows(
    { rows: $('enrollments-rows'), table: $('enrollments-table'), empty: $('enrollments-empty'), more: $('enrollments-more') },
    page.items.map(enrollmentRow),
    state.enrollmentsCursor,
    { append },
  );
}

function enrollmentRow(enrollment) {
  const tr = el('tr');
  tr.dataset.patient = enrollment.patientId;
  const name = `${enrollment.firstName} ${enrollment.lastName}`;
  const action = el('td');
  if (enrollment.status === 'active') {
    const stop = el('button', { className: 'button button-quiet', text: 'Stop', attrs: { type: 'button', 'aria-label': `Stop the sequence for ${name}` } });
    stop.addEventListener('click', () => stopEnrollment(enrollment, name, stop));
    action.append(stop);
  }
  tr.append(el('td', { text: name }), el('td', { text: whereabouts(enrollment) }), el('td', { text: formatDate(enrollment.updatedAt) }), action);
  return tr;
}

async function stopEnrollment(enrollment, name, button) {
  const confirmed = await confirmAction({
    title: `Stop the sequence for ${name}?`,
    message: 'Nothing more of it is sent to them. Enrolling them again starts it from the first step.',
    confirmLabel: 'Stop',
  });
  if (!confirmed) return;
  const errors = enrollmentsErrors();
  errors.clear();
  try {
    await busy(button, 'Stopping…', () => sequencesApi.stop(state.sequence.id, enrollment.patientId));
    announce(`Stopped the sequence for ${name}`);
    await refreshSequence();
    $('enrollments-title').setAttribute('tabindex', '-1');
    $('enrollments-title').focus();
  } catch (error) {
    errors.show(error);
  }
}

/** Runs a button's action and shows its failure in `errors`. */
function reporting(errors, action) {
  return async (event) => {
    event?.preventDefault();
    const shown = errors();
    shown.clear();
    try {
      await action();
    } catch (error) {
      shown.show(error);
    }
  };
}

export function initSequences() {
  $('sequence-new').addEventListener('click', newSequence);
  $('sequences-more').addEventListener('click', reporting(listErrors, () => busy($('sequences-more'), 'Loading…', () => showPage({ append: true }))));
  $('sequence-form').addEventListener('submit', saveSequence);
  $('sequence-add-step').addEventListener('click', addStep);
  $('sequence-pause').addEventListener('click', togglePause);
  $('sequence-delete').addEventListener('click', deleteSequence);
  $('enrol-search-form').addEventListener('submit', findPatients);
  $('enrol-submit').addEventListener('click', enrolChosen);
  $('enrollments-filter').addEventListener('submit', reporting(enrollmentsErrors, () => busy($('enrollments-apply'), 'Loading…', () => showEnrollments({ append: false }))));
  $('enrollments-more').addEventListener('click', reporting(enrollmentsErrors, () => busy($('enrollments-more'), 'Loading…', () => showEnrollments({ append: true }))));
}
