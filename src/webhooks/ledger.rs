//! What a bounce, a spam report, an unsubscribe or an opt-out does beyond the event itself: the
//! address goes on the suppression ledger, and the sequences that would keep writing to it stop.

use sqlx::PgConnection;

use crate::messaging::suppression::{self, Suppression};

/// Adds every entry to its ledger and stops the active sequence enrollments of patients with
/// that address: in the entry's practice, or, for the shared system sender, in every practice
/// that sends that channel from the system account.
pub async fn suppress(db: &mut PgConnection, entries: &[Suppression]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    suppression::add_all(&mut *db, entries).await?;
    // Compliance: an unsubscribe also revokes email marketing in the consent ledger.
    crate::compliance::consent::on_email_unsubscribes(&mut *db, entries).await?;
    let stop = sqlx::query(
        "update sequence_enrollments e
         set status = 'stopped', stop_reason = s.reason, updated_at = now()
         from unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) as s(practice_id, channel, address, reason),
              patients p, practices pr
         where e.status = 'active' and p.id = e.patient_id and pr.id = e.practice_id
           and (e.practice_id = s.practice_id
                or (s.practice_id is null and case s.channel
                        when 'email' then pr.email_provider = 'system_sendgrid'
                        else pr.sms_provider = 'system_twilio' end))
           and case s.channel when 'email' then lower(p.email) = s.address else p.phone = s.address end",
    );
    suppression::bind_entries(stop, entries).execute(db).await?;
    Ok(())
}
