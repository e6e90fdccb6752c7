// Small DOM helpers shared by the views. Everything the API says reaches the page as text
// (textContent, never markup), so a provider's error message cannot inject anything.

export const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
};

export function show(element, visible = true) {
  element.hidden = !visible;
}

/** Creates an element with a class and text. */
export function el(tag, { className, text, attrs } = {}) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = String(text);
  for (const [name, value] of Object.entries(attrs ?? {})) element.setAttribute(name, value);
  return element;
}

/**
 * Shows one page of a paged table: its rows appended to those shown, or instead of them; the
 * table or its empty note, and the "Show more" button while there is a next page.
 */
export function showRows({ rows, table, empty, more }, newRows, nextCursor, { append }) {
  if (append) rows.append(...newRows);
  else rows.replaceChildren(...newRows);
  const shown = rows.children.length;
  show(table, shown > 0);
  show(empty, shown === 0);
  show(more, nextCursor !== null);
}

/** Announces a short message to screen readers without moving focus. */
export function announce(message) {
  const region = $('live-status');
  region.textContent = '';
  // A fresh text node after clearing makes repeated identical messages be read again.
  window.setTimeout(() => { region.textContent = message; }, 30);
}

/** Sets a status line's text and tone (`ok`, `warn`, `error` or none). */
export function setStatus(element, text, tone) {
  element.textContent = text ?? '';
  element.classList.remove('tone-ok', 'tone-warn', 'tone-error');
  if (tone) element.classList.add(`tone-${tone}`);
}

export function formatDate(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

export function formatNumber(value) {
  return new Intl.NumberFormat().format(value ?? 0);
}

/** People-facing names of the contract's provider values; the value itself is shown beside. */
export const PROVIDER_NAMES = {
  system_sendgrid: "Dentite's shared SendGrid account",
  custom_sendgrid: 'Your own SendGrid account',
  system_twilio: "Dentite's shared Twilio number",
  custom_twilio: 'Your own Twilio account',
  system_postmark: "Dentite's shared Postmark server",
  custom_postmark: 'Your own Postmark server',
  custom_mailgun: 'Your own Mailgun domain',
  system_mailgun: "Dentite's shared Mailgun domain",
  system_telnyx: "Dentite's shared Telnyx number",
  custom_telnyx: 'Your own Telnyx number',
  outbox: 'Outbox (stored, not sent)',
};

export function providerName(kind) {
  return PROVIDER_NAMES[kind] ?? kind ?? 'none';
}

/** The provider's name followed by its machine value in a code span. */
export function providerLabel(kind) {
  const wrapper = el('span', { className: 'provider' });
  wrapper.append(el('span', { text: providerName(kind) }), ' ', el('code', { text: kind ?? '—' }));
  return wrapper;
}

/** "Configured, ends in 1234" for a write-only secret, or what to enter. */
export function secretState(configured, last4, missingText) {
  if (!configured) return missingText;
  return last4 ? `Configured, ends in ${last4}. Leave empty to keep it.` : 'Configured. Leave empty to keep it.';
}

/**
 * A Copy button for `value` (a string, or a function giving it at the time of the click). Uses the async clipboard where the browser allows it; otherwise it
 * selects `target`'s text so the user can press Ctrl+C, and says so.
 */
export function copyButton(value, label, target) {
  const button = el('button', { className: 'button button-small copy', text: 'Copy', attrs: { type: 'button', 'aria-label': label } });
  button.addEventListener('click', async () => {
    try {
      if (!navigator.clipboard?.writeText) throw new Error('no clipboard access');
      await navigator.clipboard.writeText(typeof value === 'function' ? value() : value);
      flash(button, 'Copied');
      announce('Copied to the clipboard');
    } catch {
      if (target) {
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      flash(button, 'Selected');
      announce('Could not copy automatically: the text is selected, press Control C (Command C on a Mac) to copy it');
    }
  });
  return button;
}

function flash(button, text) {
  button.textContent = text;
  button.classList.add('copied');
  window.setTimeout(() => {
    button.textContent = 'Copy';
    button.classList.remove('copied');
  }, 2000);
}

/**
 * Field errors for one form. `fields` maps the API's field names to input ids; each input has
 * an error paragraph `<id>-error` and an `aria-describedby` naming it.
 */
export class FormErrors {
  constructor(summaryId, fields) {
    this.summary = $(summaryId);
    this.fields = fields;
  }

  clear() {
    show(this.summary, false);
    this.summary.replaceChildren();
    for (const inputId of Object.values(this.fields)) {
      const input = $(inputId);
      input.removeAttribute('aria-invalid');
      const message = $(`${errorIdOf(inputId)}`);
      message.textContent = '';
      show(message, false);
    }
  }

  /**
   * Shows an API error: each field's message next to its input, focus on the first of them in
   * page order; anything not about a known field goes to the summary, which then takes focus.
   */
  show(error) {
    this.clear();
    const unplaced = [];
    const invalid = [];
    for (const [field, message] of Object.entries(error.fields ?? {})) {
      const inputId = this.fields[field];
      if (!inputId || !isVisible($(inputId))) {
        unplaced.push(`${field}: ${message}`);
        continue;
      }
      const input = $(inputId);
      input.setAttribute('aria-invalid', 'true');
      const paragraph = $(errorIdOf(inputId));
      paragraph.textContent = sentence(message);
      show(paragraph, true);
      invalid.push(input);
    }
    if (invalid.length === 0 || unplaced.length > 0) this.showSummary(error.message, unplaced);
    if (invalid.length > 0) {
      invalid.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
      invalid[0].focus();
    } else {
      this.summary.focus();
    }
  }

  showSummary(message, lines = []) {
    this.summary.replaceChildren(el('p', { className: 'error-title', text: sentence(message) }));
    if (lines.length > 0) {
      const list = el('ul');
      for (const line of lines) list.append(el('li', { text: line }));
      this.summary.append(list);
    }
    show(this.summary, true);
  }
}

/** The API's messages start in lower case ("is required"); shown alone they read as sentences. */
export function sentence(message) {
  const text = String(message ?? '');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Radio groups report their errors under the group's id, other inputs under their own. */
function errorIdOf(inputId) {
  const input = $(inputId);
  const group = input.type === 'radio' ? input.closest('fieldset') : null;
  return `${group?.id ?? inputId}-error`;
}

function isVisible(element) {
  return element.getClientRects().length > 0;
}

/** Clears every error, status line and test result inside `container`. */
export function forgetMessages(container) {
  for (const summary of container.querySelectorAll('.error-summary')) {
    summary.replaceChildren();
    show(summary, false);
  }
  for (const message of container.querySelectorAll('.field-error')) {
    message.textContent = '';
    show(message, false);
  }
  for (const input of container.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  for (const line of container.querySelectorAll('.form-status, .provider-answer, .test-result')) line.replaceChildren();
  for (const notes of container.querySelectorAll('.notes')) show(notes, false);
}

/**
 * Runs `action` with `button` disabled and marked busy, so a slow provider check cannot be
 * submitted twice; the button's label says what is happening meanwhile.
 */
export async function busy(button, busyText, action) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = busyText;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

/**
 * Asks for confirmation in the page's own dialog (not window.confirm, which blocks the page and
 * cannot be styled). Resolves true when the user confirms.
 */
export function confirmAction({ title, message, confirmLabel }) {
  const dialog = $('confirm-dialog');
  const accept = $('confirm-accept');
  const cancel = $('confirm-cancel');
  $('confirm-title').textContent = title;
  $('confirm-message').textContent = message;
  accept.textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const finish = (confirmed) => {
      accept.removeEventListener('click', onAccept);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      if (opener instanceof HTMLElement && opener.isConnected && !opener.hidden) opener.focus();
      resolve(confirmed);
    };
    const onAccept = () => finish(true);
    const onCancel = () => finish(false);
    // Escape closes the dialog without a button.
    const onClose = () => finish(false);
    accept.addEventListener('click', onAccept);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    // The safe choice has focus first.
    cancel.focus();
  });
}
