//! The email domain routes, whichever vendor authenticates the domain: SendGrid's domain
//! authentication (set up, read, verify, delete), or the practice's own Mailgun domain (read and
//! verify; it is chosen and removed with the email account itself).

use uuid::Uuid;

use crate::{
    AppState,
    auth::PracticeCaller,
    messaging::{ProviderKind, settings::PracticeMessagingConfig},
    providers::{
        mailgun,
        sendgrid::domain::{
            self as sendgrid, DomainDeletion, DomainError, DomainSetupRequest, DomainView,
            SetUpOutcome,
        },
    },
};

async fn on_mailgun(
    state: &AppState,
    practice_id: Uuid,
) -> Result<Option<PracticeMessagingConfig>, DomainError> {
    let config = PracticeMessagingConfig::load(&state.pool, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)?;
    Ok((config.email_provider == ProviderKind::CustomMailgun).then_some(config))
}

pub async fn view(state: &AppState, practice_id: Uuid) -> Result<DomainView, DomainError> {
    match on_mailgun(state, practice_id).await? {
        Some(config) => mailgun::settings::domain_view(&config),
        None => sendgrid::view(state, practice_id).await,
    }
}

pub async fn verify(
    state: &AppState,
    practice_id: Uuid,
    user_id: Option<Uuid>,
) -> Result<DomainView, DomainError> {
    match on_mailgun(state, practice_id).await? {
        Some(config) => mailgun::settings::verify_domain(state, &config, user_id).await,
        None => sendgrid::verify(state, practice_id, user_id).await,
    }
}

pub async fn set_up(
    state: &AppState,
    caller: &PracticeCaller,
    request: DomainSetupRequest,
) -> Result<(DomainView, SetUpOutcome), DomainError> {
    if on_mailgun(state, caller.practice_id).await?.is_some() {
        return Err(DomainError::MailgunDomain);
    }
    sendgrid::set_up(state, caller, request).await
}

pub async fn delete(
    state: &AppState,
    caller: &PracticeCaller,
) -> Result<DomainDeletion, DomainError> {
    if on_mailgun(state, caller.practice_id).await?.is_some() {
        return Err(DomainError::MailgunDomain);
    }
    sendgrid::delete(state, caller).await
}
