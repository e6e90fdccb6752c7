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

use crate::messaging::provider::registry::Registry;

/// Every vendor we send through, for the factory. Adding a vendor is one line here.
pub fn registry() -> Registry {
    Registry::new(
        vec![
            Box::new(sendgrid::SendGrid),
            Box::new(postmark::Postmark),
            Box::new(mailgun::Mailgun),
            Box::new(twilio::Twilio),
            Box::new(telnyx::Telnyx),
        ],
        outbox::account,
    )
}
