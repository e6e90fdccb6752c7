//! The providers we know, keyed by vendor. Adding a vendor is one line in [`Registry::new`].

use super::{Account, Channel, PracticeAccounts, Provider, ProviderContext, Vendor};

/// The registry every caller shares; its providers hold no state of their own.
pub fn global() -> &'static Registry {
    static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::new);
    &REGISTRY
}

pub struct Registry {
    providers: Vec<Box<dyn Provider>>,
}

impl Registry {
    pub fn new() -> Self {
        Self {
            providers: vec![
                Box::new(super::sendgrid::SendGrid),
                Box::new(super::postmark::Postmark),
                Box::new(super::mailgun::Mailgun),
                Box::new(super::twilio::Twilio),
                Box::new(super::telnyx::Telnyx),
            ],
        }
    }

    pub fn get(&self, vendor: Vendor) -> Option<&dyn Provider> {
        self.providers
            .iter()
            .find(|p| p.vendor() == vendor)
            .map(|p| &**p)
    }

    /// The practices' own accounts of `vendor`, if it takes them.
    pub fn practice_accounts(&self, vendor: Vendor) -> Option<&dyn PracticeAccounts> {
        self.get(vendor)?.practice_accounts()
    }

    /// The platform's accounts for a channel, in the order failover tries them
    /// (`EMAIL_SYSTEM_PROVIDERS`, `SMS_SYSTEM_PROVIDERS`); the outbox alone when the platform
    /// has no vendor for the channel.
    pub fn system_accounts(&self, ctx: &ProviderContext, channel: Channel) -> Vec<Account> {
        let order = match channel {
            Channel::Email => &ctx.settings.vendors.email_system_providers,
            Channel::Sms => &ctx.settings.vendors.sms_system_providers,
        };
        let accounts: Vec<Account> = order
            .iter()
            .filter_map(|name| Vendor::parse(name))
            .filter_map(|vendor| self.get(vendor))
            .filter(|provider| provider.channel() == channel)
            .filter_map(|provider| provider.system_account(ctx))
            .collect();
        if accounts.is_empty() {
            vec![super::outbox::account(ctx, channel)]
        } else {
            accounts
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
