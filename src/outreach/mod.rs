//! Outreach: patients, single messages and sequences, sent through the durable queue.

pub mod queue;
