//! What a bounce, a spam report, an unsubscribe or an opt-out does beyond the event itself: the
//! address goes on the suppression ledger, and the sequences that would keep writing to it stop.

use sqlx::PgConnection;

use crate::messaging::suppression::{self, Suppression};

/// Suppresses every entry (see [`suppression::suppress`]); a provider's unsubscribe also revokes
/// email marketing in the consent ledger.
pub async fn suppress(db: &mut PgConnection, entries: &[Suppression]) -> Result<(), sqlx::Error> {
    suppression::suppress(&mut *db, entries).await?;
    crate::compliance::consent::on_email_unsubscribes(db, entries).await
}
