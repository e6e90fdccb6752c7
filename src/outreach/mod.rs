//! Outreach: patients, single messages and sequences, sent through the durable queue.

pub mod messages;
pub mod queue;
pub mod rate_limit;
pub mod unsubscribe;
pub mod worker;
