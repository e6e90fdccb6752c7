//! The interface between a channel's settings routes and the vendors' settings modules: each
//! vendor declares its own request fields, saves and checks its account and says what erasing
//! the channel removes of it; the operations here choose the vendor a request names and never
//! name one themselves. The vendors are those `providers::VENDORS` registers.

use futures::future::BoxFuture;

use std::collections::BTreeMap;

use super::{
    Kept, MessagingSettings, SettingsContext, SettingsError, SettingsUpdate, begin_change, changed,
    commit_change, domain::SendingDomain, refuse_custom_only, view,
};
use crate::{
    audit::AuditAction,
    auth::PracticeCaller,
    messaging::{
        Channel, ProviderKind, accounts,
        settings::{self, PracticeMessagingConfig},
    },
    providers::{Registered, VENDORS},
    types::FieldErrors,
};

/// One channel's settings requests, as its routes receive them.
pub trait ChannelRoutes: Sized + 'static {
    const CHANNEL: Channel;
    /// `PUT /<channel>`.
    type Change: Send;
    /// `POST /<channel>/validate`.
    type Check: Send;
    /// What `POST /<channel>/validate` answers.
    type Checked;

    fn chosen(change: &Self::Change) -> Option<&str>;
    fn checked(check: &Self::Check) -> Option<&str>;
    /// The settings module of a registered vendor of this channel.
    fn settings(vendor: &Registered) -> Option<&'static dyn AccountSettings<Self>>;
}

/// What a vendor's settings module does for its channel's routes.
pub trait AccountSettings<C: ChannelRoutes>: Sync {
    /// The practice's own account it saves; a request naming it is this module's.
    fn kind(&self) -> ProviderKind;
    /// Its own fields of a change, and whether each was given: refused when another vendor is
    /// chosen, since silently ignoring one would let the practice believe it was saved.
    fn given_fields(&self, change: &C::Change) -> Vec<(&'static str, bool)>;
    fn update<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        caller: &'a PracticeCaller,
        change: C::Change,
    ) -> BoxFuture<'a, Result<SettingsUpdate, SettingsError>>;
    /// Checks credentials with the vendor without saving anything.
    fn validate<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        caller: &'a PracticeCaller,
        check: C::Check,
    ) -> BoxFuture<'a, Result<C::Checked, SettingsError>>;
    /// What erasing the channel erases of its account, for the audit: by default the vendor's
    /// name, when the practice has an account of it.
    fn erased_fields(&self, current: &PracticeMessagingConfig) -> Vec<&'static str> {
        let vendor = self.kind().vendor();
        changed(&[(vendor.as_str(), current.accounts.get(vendor).is_some())])
    }
    /// What erasing the channel keeps of its account (what is not a credential).
    fn kept_after_erase(&self, _current: &PracticeMessagingConfig) -> Kept {
        None
    }
    /// Its sending domain, for the email domain routes, when it has one.
    fn sending_domain(&self) -> Option<&'static dyn SendingDomain> {
        None
    }
}

fn vendors<C: ChannelRoutes>() -> impl Iterator<Item = &'static dyn AccountSettings<C>> {
    VENDORS.iter().filter_map(C::settings)
}

/// The module of the vendor `provider` names; any other value is the platform's vendor's, which
/// also saves the platform's choice and names what is wrong with `provider`.
pub(crate) fn module<C: ChannelRoutes>(provider: Option<&str>) -> &'static dyn AccountSettings<C> {
    let named = provider.map(str::trim);
    let platform = ProviderKind::platform_choice(C::CHANNEL).vendor();
    vendors::<C>()
        .find(|vendor| Some(vendor.kind().as_str()) == named)
        .or_else(|| vendors::<C>().find(|vendor| vendor.kind().vendor() == platform))
        .expect("the platform's vendor of each channel is registered")
}

/// Flags each field of a vendor other than `chosen` that the change gives: silently ignoring one
/// would let the practice believe it was saved. Each vendor's parsing calls this, so every bad
/// field of a request is named in one answer.
pub(crate) fn refuse_other_vendors<C: ChannelRoutes>(
    errors: &mut FieldErrors,
    change: &C::Change,
    chosen: ProviderKind,
) {
    for vendor in vendors::<C>().filter(|vendor| vendor.kind() != chosen) {
        refuse_custom_only(
            errors,
            &vendor.given_fields(change),
            vendor.kind(),
            C::CHANNEL,
        );
    }
}

/// `PUT /<channel>`: saves the channel's settings through the chosen vendor's module.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id, channel = C::CHANNEL.as_str()))]
pub async fn update<C: ChannelRoutes>(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    change: C::Change,
) -> Result<SettingsUpdate, SettingsError> {
    module::<C>(C::chosen(&change))
        .update(ctx, caller, change)
        .await
}

/// `POST /<channel>/validate`: checks a credential with the vendor the check names (the
/// platform's vendor by default) without saving anything.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id, channel = C::CHANNEL.as_str()))]
pub async fn validate<C: ChannelRoutes>(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    check: C::Check,
) -> Result<C::Checked, SettingsError> {
    module::<C>(C::checked(&check))
        .validate(ctx, caller, check)
        .await
}

/// `DELETE /<channel>`: back to the platform's accounts. Every account of the channel's vendors
/// is erased here but what a vendor keeps (the vendors' own accounts are not touched), audited
/// with the fields that were set; a channel with nothing to erase is left alone.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id, channel = C::CHANNEL.as_str()))]
pub async fn delete<C: ChannelRoutes>(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
) -> Result<MessagingSettings, SettingsError> {
    let practice_id = caller.practice_id;
    let (mut tx, current) = begin_change(ctx, practice_id, None).await?;
    let mut fields = changed(&[("provider", current.chosen(C::CHANNEL).is_custom())]);
    for vendor in vendors::<C>() {
        fields.extend(vendor.erased_fields(&current));
    }
    if !fields.is_empty() {
        let erased: Vec<_> = vendors::<C>()
            .map(|vendor| vendor.kind().vendor())
            .collect();
        settings::return_to_system(&mut tx, practice_id, C::CHANNEL).await?;
        accounts::erase(&mut tx, practice_id, &erased).await?;
        if let Some((vendor, kept)) = vendors::<C>().find_map(|v| v.kept_after_erase(&current)) {
            accounts::save(&mut tx, practice_id, vendor, &kept, &BTreeMap::new(), None).await?;
        }
        let action = match C::CHANNEL {
            Channel::Email => AuditAction::EmailDelete,
            Channel::Sms => AuditAction::SmsDelete,
        };
        commit_change(
            tx,
            &ctx.messaging,
            practice_id,
            Some(caller.user_id),
            action,
            &fields,
        )
        .await?;
    }
    view(ctx, practice_id).await
}

/// Implements [`AccountSettings`] for a vendor from its settings module's functions: its account
/// kind, `given_fields`, and the async `update` and `validate`, which cross the `dyn` boundary
/// boxed. What follows them are the trait's other methods, written out where the vendor needs
/// more than their defaults.
macro_rules! account_settings {
    (
        $vendor:ty, $routes:ty, $kind:expr,
        given_fields: $given:path, update: $update:path, validate: $validate:path,
        $($methods:tt)*
    ) => {
        impl $crate::providers::practice_settings::AccountSettings<$routes> for $vendor {
            fn kind(&self) -> $crate::messaging::ProviderKind {
                $kind
            }

            fn given_fields(
                &self,
                change: &<$routes as $crate::providers::practice_settings::ChannelRoutes>::Change,
            ) -> Vec<(&'static str, bool)> {
                $given(change).into_iter().collect()
            }

            fn update<'a>(
                &'a self,
                ctx: &'a $crate::providers::practice_settings::SettingsContext,
                caller: &'a $crate::auth::PracticeCaller,
                change: <$routes as $crate::providers::practice_settings::ChannelRoutes>::Change,
            ) -> futures::future::BoxFuture<
                'a,
                Result<
                    $crate::providers::practice_settings::SettingsUpdate,
                    $crate::providers::practice_settings::SettingsError,
                >,
            > {
                Box::pin($update(ctx, caller, change))
            }

            fn validate<'a>(
                &'a self,
                ctx: &'a $crate::providers::practice_settings::SettingsContext,
                caller: &'a $crate::auth::PracticeCaller,
                check: <$routes as $crate::providers::practice_settings::ChannelRoutes>::Check,
            ) -> futures::future::BoxFuture<
                'a,
                Result<
                    <$routes as $crate::providers::practice_settings::ChannelRoutes>::Checked,
                    $crate::providers::practice_settings::SettingsError,
                >,
            > {
                Box::pin($validate(ctx, caller, check))
            }

            $($methods)*
        }
    };
}
pub(crate) use account_settings;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::practice_settings::{EmailRoutes, SmsRoutes, parse_provider};

    #[test]
    fn a_request_goes_to_the_vendor_it_names_and_otherwise_to_the_platforms_vendor() {
        for (named, kind) in [
            (None, ProviderKind::CustomSendgrid),
            (Some("system_sendgrid"), ProviderKind::CustomSendgrid),
            (Some("no_such_vendor"), ProviderKind::CustomSendgrid),
            (Some(" custom_postmark "), ProviderKind::CustomPostmark),
            (Some("custom_mailgun"), ProviderKind::CustomMailgun),
            (Some("custom_telnyx"), ProviderKind::CustomSendgrid),
        ] {
            assert_eq!(module::<EmailRoutes>(named).kind(), kind, "{named:?}");
        }
        for (named, kind) in [
            (None, ProviderKind::CustomTwilio),
            (Some("custom_telnyx"), ProviderKind::CustomTelnyx),
            (Some("custom_postmark"), ProviderKind::CustomTwilio),
        ] {
            assert_eq!(module::<SmsRoutes>(named).kind(), kind, "{named:?}");
        }
    }

    #[test]
    fn a_provider_the_platforms_vendor_does_not_save_is_refused_naming_every_choice() {
        assert_eq!(
            parse_provider(Some("custom_twilio"), Channel::Email),
            Err(
                "must be system_sendgrid, custom_sendgrid, custom_mailgun or custom_postmark"
                    .into()
            )
        );
        assert_eq!(
            parse_provider(Some("system_telnyx"), Channel::Sms),
            Err("must be system_twilio, custom_twilio or custom_telnyx".into())
        );
        assert_eq!(
            parse_provider(Some("system_twilio"), Channel::Sms),
            Ok(ProviderKind::SystemTwilio)
        );
        assert_eq!(
            parse_provider(None, Channel::Email),
            Err("is required".into())
        );
    }
}
