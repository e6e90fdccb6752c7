//! Integration tests: the real application on a random port, a fresh Postgres database per test,
//! and wiremock standing in for SendGrid and Twilio.

mod foundation;
mod helpers;
mod settings;
