// The page: sign-in, the hash routes (#/settings/email, #/settings/sms, #/analytics, #/activity,
// #/patients, #/sequences, #/rules, #/suppressions, #/audit) and the tabs. Each channel and view has its own module.

import { ApiError, currentSession, mayEdit, onSessionEnded, settingsApi, signIn, signOut } from './api.js';
import { $, FormErrors, announce, forgetMessages, show } from './dom.js';
import { initEmail, renderEmail } from './email.js';
import { initSms, renderSms } from './sms.js';
import { renderAnalytics } from './status.js';
import { initSuppressions, renderSuppressions } from './suppressions.js';
import { initAudit, renderAudit } from './audit.js';
import { initRules, renderRules } from './rules.js';
import { initActivity, renderActivity, stopFollowingActivity } from './activity.js';
import { initPatients, renderPatients } from './patients.js';
import { initSequences, renderSequences } from './sequences.js';

const VIEWS = ['view-sign-in', 'view-settings', 'view-analytics', 'view-activity', 'view-patients', 'view-sequences', 'view-rules', 'view-suppressions', 'view-audit'];
const TABS = { email: 'tab-email', sms: 'tab-sms' };

/** Where a signed-out visitor wanted to go, so sign-in takes them there. */
let wantedRoute = null;
let currentView = null;

const page = {
  /** Reads the settings (and the domain, when there is one) and redraws both tabs. */
  async reloadSettings() {
    const settings = await settingsApi.read();
    let domain = null;
    // A SendGrid domain authentication, or the practice's own Mailgun domain.
    const mailgunDomain = settings.email.provider === 'custom_mailgun' && settings.email.mailgun.mailgunDomain;
    if (settings.email.domain || mailgunDomain) {
      try {
        domain = await settingsApi.readDomain();
      } catch (error) {
        // Removed between the two reads: there is simply no domain now.
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
    }
    this.showSettings(settings, domain);
  },

  showSettings(settings, domain) {
    const session = currentSession();
    renderEmail(settings, domain, session);
    renderSms(settings, session);
  },
};

function showView(id, { focusHeading = true } = {}) {
  show($('loading'), false);
  for (const view of VIEWS) show($(view), view === id);
  if (id !== 'view-activity') stopFollowingActivity();
  const signedIn = id !== 'view-sign-in';
  show($('main-nav'), signedIn);
  show($('account'), signedIn);
  const links = [
    ['nav-settings', 'view-settings'],
    ['nav-analytics', 'view-analytics'],
    ['nav-activity', 'view-activity'],
    ['nav-patients', 'view-patients'],
    ['nav-sequences', 'view-sequences'],
    ['nav-rules', 'view-rules'],
    ['nav-suppressions', 'view-suppressions'],
    ['nav-audit', 'view-audit'],
  ];
  for (const [link, view] of links) {
    if (view === id) $(link).setAttribute('aria-current', 'page');
    else $(link).removeAttribute('aria-current');
  }
  if (focusHeading && currentView !== null && currentView !== id) {
    const heading = $(id).querySelector('h1');
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
  currentView = id;
}

function parseRoute() {
  const [, section, tab] = window.location.hash.split('/');
  if (section === 'analytics') return { view: 'analytics' };
  if (section === 'activity') return { view: 'activity' };
  if (section === 'patients') return { view: 'patients' };
  if (section === 'sequences') return { view: 'sequences' };
  if (section === 'rules') return { view: 'rules' };
  if (section === 'suppressions') return { view: 'suppressions' };
  if (section === 'audit') return { view: 'audit' };
  return { view: 'settings', tab: tab === 'sms' ? 'sms' : 'email' };
}

async function route() {
  const session = currentSession();
  if (!session) {
    showSignIn();
    return;
  }
  renderAccount(session);
  const wanted = parseRoute();
  if (wanted.view === 'analytics') {
    showView('view-analytics');
    await loadInto($('analytics-error'), () => renderAnalytics());
    return;
  }
  if (wanted.view === 'audit' && mayEdit(session)) {
    showView('view-audit');
    await loadInto($('audit-error'), () => renderAudit());
    return;
  }
  if (wanted.view === 'activity') {
    showView('view-activity');
    await loadInto($('activity-error'), () => renderActivity());
    return;
  }
  if (wanted.view === 'patients') {
    showView('view-patients');
    await loadInto($('patients-error'), () => renderPatients());
    return;
  }
  if (wanted.view === 'sequences') {
    showView('view-sequences');
    await loadInto($('sequences-error'), () => renderSequences());
    return;
  }
  if (wanted.view === 'rules') {
    showView('view-rules');
    await loadInto($('rules-error'), () => renderRules(session));
    return;
  }
  if (wanted.view === 'suppressions') {
    showView('view-suppressions');
    await loadInto($('suppressions-error'), () => renderSuppressions(session));
    return;
  }
  const alreadyShown = currentView === 'view-settings';
  showView('view-settings');
  selectTab(wanted.tab, { focus: false });
  if (!alreadyShown) {
    // Messages from an earlier visit (or from before a session ended) are about nothing now.
    forgetMessages($('view-settings'));
    show($('read-only-notice'), !mayEdit(session));
    document.body.classList.toggle('read-only', !mayEdit(session));
    await loadInto($('settings-load-error'), () => page.reloadSettings());
  }
}

/** Runs a view's loading; a failure is shown in that view's error box, never dropped. */
async function loadInto(summary, load) {
  show(summary, false);
  try {
    await load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    new FormErrors(summary.id, {}).show(error);
  }
}

function renderAccount(session) {
  $('account-email').textContent = session.user.email;
  $('account-role').textContent = session.user.role;
  // The audit log is for owners and admins; staff are not shown a link that would be refused.
  show($('nav-audit'), mayEdit(session));
}

function showSignIn(message) {
  if (window.location.hash && window.location.hash !== '#/') wantedRoute = window.location.hash;
  showView('view-sign-in', { focusHeading: false });
  const errors = new FormErrors('sign-in-error', { email: 'sign-in-email', password: 'sign-in-password' });
  errors.clear();
  if (message) errors.showSummary(message);
  $('sign-in-email').focus();
}

async function submitSignIn(event) {
  event.preventDefault();
  const errors = new FormErrors('sign-in-error', { email: 'sign-in-email', password: 'sign-in-password' });
  const email = $('sign-in-email').value.trim();
  const password = $('sign-in-password').value;
  const missing = {};
  if (!email) missing.email = 'enter your email address';
  if (!password) missing.password = 'enter your password';
  if (Object.keys(missing).length > 0) {
    errors.show(new ApiError(422, 'validation_failed', 'Enter your email and password.', missing));
    return;
  }
  errors.clear();
  const button = $('sign-in-submit');
  button.disabled = true;
  try {
    const session = await signIn(email, password);
    if (!session.user.practiceId) {
      signOut();
      errors.showSummary('This page is for practice users. Platform administrators use the /api/admin routes.');
      $('sign-in-error').focus();
      return;
    }
    $('sign-in-password').value = '';
    currentView = 'view-sign-in';
    const target = wantedRoute ?? '#/settings/email';
    wantedRoute = null;
    if (window.location.hash === target) await route();
    else window.location.hash = target;
    announce(`Signed in as ${session.user.email}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      errors.showSummary('The email or password is not right.');
    } else if (error instanceof ApiError && error.status === 429) {
      const minutes = Math.max(1, Math.ceil((error.retryAfter ?? 60) / 60));
      errors.showSummary(`Too many failed sign-ins. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`);
    } else {
      errors.show(error);
      return;
    }
    $('sign-in-error').focus();
  } finally {
    button.disabled = false;
  }
}

function selectTab(name, { focus }) {
  for (const [tabName, tabId] of Object.entries(TABS)) {
    const selected = tabName === name;
    const tab = $(tabId);
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    show($(tab.getAttribute('aria-controls')), selected);
    if (selected && focus) tab.focus();
  }
}

function onTabActivated(name, focus) {
  selectTab(name, { focus });
  // replaceState, not a new history entry per tab, and no hashchange (which would reload).
  history.replaceState(null, '', `#/settings/${name}`);
}

function initTabs() {
  const names = Object.keys(TABS);
  for (const name of names) {
    const tab = $(TABS[name]);
    tab.addEventListener('click', () => onTabActivated(name, false));
    tab.addEventListener('keydown', (event) => {
      const index = names.indexOf(name);
      const next = {
        ArrowRight: names[(index + 1) % names.length],
        ArrowLeft: names[(index - 1 + names.length) % names.length],
        Home: names[0],
        End: names[names.length - 1],
      }[event.key];
      if (next) {
        event.preventDefault();
        onTabActivated(next, true);
      }
    });
  }
}

function init() {
  onSessionEnded(() => showSignIn('Your session has ended. Sign in again.'));
  $('sign-in-form').addEventListener('submit', submitSignIn);
  $('sign-out').addEventListener('click', () => {
    signOut();
    wantedRoute = null;
    currentView = null;
    window.location.hash = '';
    showSignIn();
    announce('Signed out');
  });
  // Coming back to the settings view from another one reads fresh settings (see `route`).
  window.addEventListener('hashchange', () => route());
  initTabs();
  initEmail(page);
  initSms(page);
  initSuppressions();
  initRules();
  initActivity();
  initPatients();
  initSequences();
  initAudit();
  route();
}

init();
