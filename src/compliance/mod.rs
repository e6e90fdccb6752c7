//! Compliance: the rules that keep a practice's messages lawful — sending windows in the
//! recipient's local time, consent, frequency caps, CAN-SPAM content — and the SMS segment and
//! cost arithmetic. The pure rules (`segments`, `window`, `optout`) take `now` and know no
//! storage; `rules` decides from the settings and the ledgers whether a message may go;
//! `settings`, `consent` and `inbound` hold the tables this module owns.

pub mod consent;
pub mod inbound;
pub mod optout;
pub mod preview;
pub mod recipient;
pub mod rules;
pub mod segments;
pub mod settings;
pub mod window;

use crate::types::FieldErrors;

/// What the compliance operations refuse.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a message is for: `care` (appointment and recall reminders) or `marketing` (benefit
/// reminders, promotions, reactivation).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Category {
    #[default]
    Care,
    Marketing,
}

impl Category {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Care => "care",
            Self::Marketing => "marketing",
        }
    }
}
