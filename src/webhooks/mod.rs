//! Provider webhooks: SendGrid event batches and Twilio status callbacks and inbound SMS,
//! authenticated by the provider's signature, per tenant, idempotent.

pub mod signature;
