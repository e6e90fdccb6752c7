//! The long history of messaging: counts that cost the same however many messages there are
//! (the retention job forgets old rows on schedule).
//!
//! Nothing here depends on the rest of the crate, so every domain may read from it.

pub mod counts;
