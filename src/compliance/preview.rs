//! `POST /api/outreach/messages/preview`: what a message would cost and when it would go,
//! without sending it. Answers for any length, so an editor can show the count as one types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    Category, ComplianceError, recipient,
    rules::{self, Rule, Verdict},
    segments::{self, Encoding},
    settings, window,
};
use crate::messaging::Channel;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRequest {
    pub channel: Channel,
    pub body: String,
    pub subject: Option<String>,
    pub patient_id: Option<Uuid>,
    pub category: Option<Category>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub encoding: Encoding,
    /// Unicode code points.
    pub characters: usize,
    pub segments: u32,
    /// The characters that forced UCS-2.
    pub non_gsm_characters: Vec<String>,
    /// Segments × the practice's per-segment price, a decimal string (SMS with a price set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost: Option<String>,
    /// When the message would be handed over, in the recipient's sending window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The rule that would withhold the message from this patient now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_be_suppressed: Option<Rule>,
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn preview(
    pool: &PgPool,
    practice_id: Uuid,
    request: &PreviewRequest,
    now: DateTime<Utc>,
) -> Result<Preview, ComplianceError> {
    let rules = settings::rules(pool, practice_id).await?;
    let mut db = pool.acquire().await?;
    let recipient = recipient::window_for(&mut db, practice_id, request.patient_id).await?;
    drop(db);
    let shape = segments::analyse(&request.body);
    let category = request.category.unwrap_or_default();
    let estimated_cost = match request.channel {
        Channel::Sms => rules
            .sms_segment_price
            .map(|price| price.times(shape.segments).to_string()),
        Channel::Email => None,
    };
    let mut would_be_suppressed = None;
    if let Some(patient_id) = request.patient_id {
        let mut db = pool.acquire().await?;
        let contact: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("select email, phone from patients where id = $1 and practice_id = $2")
                .bind(patient_id)
                .bind(practice_id)
                .fetch_optional(&mut *db)
                .await?;
        let (email, phone) = contact.ok_or(ComplianceError::NotFound("patient"))?;
        let address = match request.channel {
            Channel::Email => email,
            Channel::Sms => phone,
        };
        if let Some(address) = address {
            // The system sender's opt-outs count too: the answer must not promise a send that
            // the system account, or a fallback to it, would refuse.
            let verdict = rules::decide(
                &mut db,
                &rules::Message {
                    practice_id,
                    patient_id: Some(patient_id),
                    channel: request.channel,
                    address: &address,
                    category,
                    outreach_log_id: None,
                },
                true,
                now,
            )
            .await?;
            if let Verdict::Withhold(rule) = verdict {
                would_be_suppressed = Some(rule);
            }
        }
    }
    Ok(Preview {
        encoding: shape.encoding,
        characters: shape.characters,
        segments: shape.segments,
        non_gsm_characters: shape.non_gsm_characters,
        estimated_cost,
        scheduled_for: window::applies(request.channel, category)
            .then(|| recipient.window.next_allowed(now, recipient.zone)),
        would_be_suppressed,
    })
}
