//! Integration tests: the real application on a random port, a fresh Postgres database per test,
//! and wiremock standing in for SendGrid and Twilio.

mod browser;
mod client_addr;
mod compliance;
mod custom_mailgun;
mod custom_postmark;
mod custom_telnyx;
mod drills;
mod event_keys;
mod foundation;
mod helpers;
mod history;
mod hostile;
mod login_throttle;
mod messaging;
mod more_vendors;
mod outreach;
mod page;
mod pg_proxy;
mod pooler;
mod process;
mod queue;
mod rules;
mod sending_windows;
mod settings;
mod slow_clients;
mod suppressions;
mod test_sends;
mod token_users;
mod unreadable_credentials;
mod vendor_accounts_migration;
mod vendor_spec;
mod webhooks;
