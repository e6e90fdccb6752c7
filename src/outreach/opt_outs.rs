//! What a bounce, a spam report, an unsubscribe or an opt-out does, whoever reports it (a
//! provider's event or refusal, a STOP, a reply in other words, the unsubscribe link): the
//! address goes on the suppression ledger, the sequences that would keep writing to it stop, and
//! an email unsubscribe revokes marketing in the consent ledger, all in the caller's transaction.

use sqlx::PgConnection;

use crate::{
    compliance::consent,
    messaging::suppression::{self, Suppression},
};

pub async fn suppress(db: &mut PgConnection, entries: &[Suppression]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    suppression::add_all(&mut *db, entries).await?;
    super::sequences::stop_enrolments_at(&mut *db, entries).await?;
    consent::on_email_unsubscribes(db, entries).await
}
