//! The email domain routes, whichever vendor authenticates the domain: SendGrid's domain
//! authentication (set up, read, verify, delete), or the practice's own Mailgun domain (read and
//! verify; it is chosen and removed with the email account itself).

use uuid::Uuid;

use crate::{
    auth::PracticeCaller,
    messaging::{ProviderKind, settings::PracticeMessagingConfig},
    providers::practice_settings::SettingsContext,
    providers::{
        mailgun,
        sendgrid::domain::{
            self as sendgrid, DomainDeletion, DomainError, DomainSetupRequest, DomainView,
            SetUpOutcome,
        },
    },
};

async fn on_mailgun(
    ctx: &SettingsContext,
    practice_id: Uuid,
) -> Result<Option<PracticeMessagingConfig>, DomainError> {
    let config = PracticeMessagingConfig::load(&ctx.pool, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)?;
    Ok((config.email_provider == ProviderKind::CustomMailgun).then_some(config))
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn view(ctx: &SettingsContext, practice_id: Uuid) -> Result<DomainView, DomainError> {
    match on_mailgun(ctx, practice_id).await? {
        Some(config) => mailgun::settings::domain_view(&config),
        None => sendgrid::view(ctx, practice_id).await,
    }
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn verify(
    ctx: &SettingsContext,
    practice_id: Uuid,
    user_id: Option<Uuid>,
) -> Result<DomainView, DomainError> {
    match on_mailgun(ctx, practice_id).await? {
        Some(config) => mailgun::settings::verify_domain(ctx, &config, user_id).await,
        None => sendgrid::verify(ctx, practice_id, user_id).await,
    }
}

pub async fn set_up(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: DomainSetupRequest,
) -> Result<(DomainView, SetUpOutcome), DomainError> {
    if on_mailgun(ctx, caller.practice_id).await?.is_some() {
        return Err(DomainError::MailgunDomain);
    }
    sendgrid::set_up(ctx, caller, request).await
}

pub async fn delete(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
) -> Result<DomainDeletion, DomainError> {
    if on_mailgun(ctx, caller.practice_id).await?.is_some() {
        return Err(DomainError::MailgunDomain);
    }
    sendgrid::delete(ctx, caller).await
}
