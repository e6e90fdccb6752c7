//! The messaging core: the provider boundary every vendor implements, the suppression ledger, and
//! the factory that picks, per practice and channel, which account sends.

pub mod accounts;
pub mod circuit;
pub mod delivery;
pub mod factory;
pub mod provider;
pub mod settings;
pub mod suppression;

pub use factory::MessagingServiceFactory;
pub use provider::{Accepted, Channel, OutgoingMessage, ProviderError, ProviderKind};
