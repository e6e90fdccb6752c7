//! The vendors the service knows, keyed by vendor: handed to the factory when the service starts
//! (`providers::registry` lists them), so nothing here names one.

use super::{Account, Channel, PracticeAccounts, Provider, ProviderContext, Vendor};

pub struct Registry {
    providers: Vec<&'static dyn Provider>,
    /// Where a channel's messages go when the platform has no vendor for it.
    outbox: fn(&ProviderContext, Channel) -> Account,
}

impl Registry {
    pub fn new(
        providers: Vec<&'static dyn Provider>,
        outbox: fn(&ProviderContext, Channel) -> Account,
    ) -> Self {
        Self { providers, outbox }
    }

    pub fn get(&self, vendor: Vendor) -> Option<&dyn Provider> {
        self.providers
            .iter()
            .find(|p| p.vendor() == vendor)
            .copied()
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
            vec![(self.outbox)(ctx, channel)]
        } else {
            accounts
        }
    }
}
