//! The providers we know, keyed by vendor. Adding a vendor is one line in [`Registry::new`].

use super::{Account, Channel, Provider, ProviderContext, Vendor};

/// The registry every caller shares; its providers hold no state of their own.
pub fn global() -> &'static Registry {
    static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::new);
    &REGISTRY
}

pub struct Registry {
    /// In registration order, which is also the order a channel's system account is chosen in.
    providers: Vec<Box<dyn Provider>>,
}

impl Registry {
    pub fn new() -> Self {
        Self {
            providers: vec![
                Box::new(super::sendgrid::SendGrid),
                Box::new(super::twilio::Twilio),
            ],
        }
    }

    pub fn get(&self, vendor: Vendor) -> Option<&dyn Provider> {
        self.providers
            .iter()
            .find(|p| p.vendor() == vendor)
            .map(|p| &**p)
    }

    /// The platform's account for a channel: the first configured vendor of that channel, else
    /// the outbox.
    pub fn system_account(&self, ctx: &ProviderContext, channel: Channel) -> Account {
        self.providers
            .iter()
            .filter(|p| p.channel() == channel)
            .find_map(|p| p.system_account(ctx))
            .unwrap_or_else(|| super::outbox::account(ctx, channel))
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
