//! Compliance: the rules that keep a practice's messages lawful — sending windows in the
//! recipient's local time, consent, frequency caps, CAN-SPAM content — and the SMS segment and
//! cost arithmetic. The pure rules (`segments`, `window`, `optout`) take `now` and know no
//! storage; `settings`, `consent`, `inbound` and `enforce` hold the tables this module owns.

pub mod optout;
pub mod segments;
pub mod window;
