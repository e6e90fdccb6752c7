//! The vendors: each in its own folder, holding everything it does for us (client, error
//! classes, credential checks, domain or sender verification, webhook verification and parsing),
//! behind the boundary `messaging::provider` defines; and the settings page's operations, which
//! choose among them. Nothing below this module names a vendor.

pub mod email_events;
pub mod mailgun;
pub mod outbox;
pub mod postmark;
pub mod practice_settings;
pub mod sendgrid;
pub mod signature;
pub mod sms_events;
pub mod telnyx;
pub mod twilio;

/// The vocabulary every vendor speaks, defined by the boundary.
pub use crate::messaging::provider::*;

use self::practice_settings::{AccountSettings, EmailRoutes, SmsRoutes};
use crate::messaging::provider::registry::Registry;

/// An email vendor: what it does for the factory, and its module of the email settings routes.
pub trait EmailVendor: Provider + AccountSettings<EmailRoutes> {}
impl<T: Provider + AccountSettings<EmailRoutes>> EmailVendor for T {}

/// An SMS vendor: what it does for the factory, and its module of the SMS settings routes.
pub trait SmsVendor: Provider + AccountSettings<SmsRoutes> {}
impl<T: Provider + AccountSettings<SmsRoutes>> SmsVendor for T {}

/// A vendor as it is registered, by channel.
pub enum Registered {
    Email(&'static dyn EmailVendor),
    Sms(&'static dyn SmsVendor),
}

impl Registered {
    pub fn provider(&self) -> &'static dyn Provider {
        match *self {
            Self::Email(vendor) => vendor,
            Self::Sms(vendor) => vendor,
        }
    }
}

/// Every vendor we send through, for the factory and the settings routes. Adding a vendor is one
/// line here.
pub static VENDORS: [Registered; 5] = [
    Registered::Email(&sendgrid::SendGrid),
    Registered::Email(&mailgun::Mailgun),
    Registered::Email(&postmark::Postmark),
    Registered::Sms(&twilio::Twilio),
    Registered::Sms(&telnyx::Telnyx),
];

/// The vendors, as the factory is handed them.
pub fn registry() -> Registry {
    Registry::new(
        VENDORS.iter().map(Registered::provider).collect(),
        outbox::account,
    )
}
