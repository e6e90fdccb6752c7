//! The messaging core: provider clients, the outbox, the suppression ledger, and the factory that
//! picks, per practice and channel, which account sends.

pub mod accounts;
pub mod circuit;
pub mod delivery;
pub mod factory;
pub mod practice_settings;
pub mod settings;
pub mod suppression;

pub use crate::providers::{
    Accepted, Channel, OutgoingMessage, ProviderError, ProviderKind, outbox,
    sendgrid::client as sendgrid, twilio::client as twilio,
};
pub use factory::MessagingServiceFactory;
