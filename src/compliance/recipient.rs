//! A recipient's sending window as stored: the practice's settings and the patient's own time
//! zone, read together so enqueue, hand-over and preview all decide alike.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    Category, settings,
    window::{self, SendingWindow},
};
use crate::messaging::Channel;

/// The window and the zone it is read in, for one recipient of one practice.
#[derive(Debug, Clone, Copy)]
pub struct RecipientWindow {
    pub window: SendingWindow,
    pub zone: Tz,
}

impl RecipientWindow {
    /// The window's next opening when a message of this kind must wait for it.
    pub fn defer_until(
        self,
        channel: Channel,
        category: Category,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        window::defer_until(self.window, self.zone, channel, category, now)
    }
}

/// The practice's window, in the patient's zone when the patient has one (a message without a
/// patient, or whose patient was deleted, uses the practice's zone).
pub async fn window_for(
    db: &mut PgConnection,
    practice_id: Uuid,
    patient_id: Option<Uuid>,
) -> Result<RecipientWindow, sqlx::Error> {
    let rules = settings::rules(&mut *db, practice_id).await?;
    let patient_zone: Option<String> = match patient_id {
        Some(patient_id) => {
            sqlx::query_scalar("select timezone from patients where id = $1 and practice_id = $2")
                .bind(patient_id)
                .bind(practice_id)
                .fetch_optional(&mut *db)
                .await?
                .flatten()
        }
        None => None,
    };
    Ok(RecipientWindow {
        window: rules.window,
        zone: window::recipient_zone(patient_zone.as_deref(), rules.timezone),
    })
}
