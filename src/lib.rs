//! Dentite Messaging: the multi-tenant messaging core. `main.rs` parses the command line; this
//! crate builds the application so that tests can run it on a random port.

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod history;
pub mod messaging;
pub mod outreach;
pub mod page;
pub mod providers;
pub mod retention;
pub mod telemetry;
pub mod types;
pub mod webhooks;

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::{PgPool, postgres::PgListener};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    auth::{TokenSigner, UserDirectory},
    config::Settings,
    crypto::Keyring,
    messaging::MessagingServiceFactory,
    outreach::{activity::ActivityFeed, unsubscribe::UnsubscribeLinks, worker::Workers},
    providers::practice_settings::SettingsContext,
};

/// What every handler and background task shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Direct connections (`DATABASE_LISTEN_URL`) for LISTEN; see [`db::Endpoints`].
    pub listen_pool: PgPool,
    pub settings: Arc<Settings>,
    pub keyring: Arc<Keyring>,
    pub tokens: Arc<TokenSigner>,
    /// Each token's user as stored now (role, existence), checked on every request.
    pub users: Arc<UserDirectory>,
    pub messaging: Arc<MessagingServiceFactory>,
    pub unsubscribe: Arc<UnsubscribeLinks>,
    pub platform_usage: Arc<outreach::analytics::PlatformUsageCache>,
    /// Tells open consoles that their practice's messages changed.
    pub activity: Arc<ActivityFeed>,
    pub metrics: PrometheusHandle,
}

impl FromRef<AppState> for SettingsContext {
    fn from_ref(state: &AppState) -> Self {
        Self {
            pool: state.pool.clone(),
            keyring: state.keyring.clone(),
            messaging: state.messaging.clone(),
            settings: state.settings.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub migrate: bool,
    /// Whether this instance runs the send workers and schedulers (tests drive them by hand).
    pub background: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            background: true,
        }
    }
}

/// A built, bound application; `run_until_stopped` serves it.
pub struct Application {
    listener: TcpListener,
    /// Connected before anything can be cached, so no change can slip past the cache.
    settings_changes: PgListener,
    /// Likewise for the users cache.
    user_changes: PgListener,
    /// And for the activity feed, so a console subscribing hears every change from then on.
    activity_changes: PgListener,
    state: AppState,
    options: ServeOptions,
}

impl Application {
    /// Creates the database when missing, migrates (unless told not to) and binds `BIND_ADDR`.
    pub async fn build(settings: Settings, options: ServeOptions) -> anyhow::Result<Self> {
        // Checked before anything starts: a key that cannot verify would refuse every event.
        if let Some(key) = &settings.sendgrid_webhook_verify_key {
            providers::sendgrid::signature::SendGridVerifier::from_base64_der(key)
                .map_err(|e| anyhow::anyhow!("SENDGRID_WEBHOOK_VERIFY_KEY: {e}"))?;
        }
        let endpoints = settings.database_endpoints()?;
        if options.migrate {
            endpoints.create_and_migrate().await?;
        }
        let pool = db::pool(endpoints.queries.clone(), 20).await?;
        let listen_pool = endpoints.listen_pool();
        let listener = TcpListener::bind(settings.bind_addr)
            .await
            .with_context(|| format!("could not listen on BIND_ADDR={}", settings.bind_addr))?;
        let keyring = Arc::new(Keyring::new(&settings.keys));
        let messaging = Arc::new(MessagingServiceFactory::new(
            &settings,
            pool.clone(),
            keyring.clone(),
            providers::registry(),
        )?);
        let settings_changes = db::listen(&listen_pool, messaging::settings::SETTINGS_CHANNEL)
            .await
            .context("could not listen for settings changes")?;
        let user_changes = db::listen(&listen_pool, auth::USERS_CHANNEL)
            .await
            .context("could not listen for user changes")?;
        let activity_changes = db::listen(&listen_pool, outreach::activity::ACTIVITY_CHANNEL)
            .await
            .context("could not listen for message activity")?;
        if settings.uses_outbox() {
            tracing::warn!(
                "a system provider account is not configured: that channel goes to the outbox"
            );
        }
        let state = AppState {
            unsubscribe: Arc::new(UnsubscribeLinks::new(
                &settings.auth_signing_key.0,
                &settings.webhook_base_url,
            )),
            keyring,
            messaging,
            tokens: Arc::new(TokenSigner::from_seed(&settings.auth_signing_key.0)?),
            users: Arc::new(UserDirectory::new(pool.clone())),
            platform_usage: Arc::default(),
            // A quarter of the connections at most, so live consoles never crowd out requests.
            activity: Arc::new(ActivityFeed::new(
                (settings.http.max_connections / 4).max(1),
            )),
            metrics: telemetry::metrics_handle(),
            settings: Arc::new(settings),
            pool,
            listen_pool,
        };
        Ok(Self {
            listener,
            settings_changes,
            user_changes,
            activity_changes,
            state,
            options,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and stops the
    /// background tasks.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let (stop_tx, stop_rx) = watch::channel(false);
        // The settings listener keeps this instance's client cache coherent, so it always runs.
        let mut background = vec![tokio::spawn(
            self.state.messaging.clone().listen_for_changes(
                self.state.listen_pool.clone(),
                self.settings_changes,
                stop_rx.clone(),
            ),
        )];
        background.push(tokio::spawn(
            self.state
                .users
                .clone()
                .forget_changed_users(self.user_changes, stop_rx.clone()),
        ));
        background.push(tokio::spawn(
            self.state
                .activity
                .clone()
                .relay(self.activity_changes, stop_rx.clone()),
        ));
        if self.options.background {
            background.extend(Self::spawn_background(&self.state, stop_rx));
        }
        let app = api::app(self.state.clone());
        tracing::info!(%addr, "serving");
        let activity = self.state.activity.clone();
        api::server::serve(self.listener, app, self.state.settings.http, async move {
            shutdown.await;
            // Live feeds never finish by themselves: end them, or they hold the shutdown open.
            activity.close();
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await;
        let _ = stop_tx.send(true);
        for task in background {
            let _ = task.await;
        }
        Ok(())
    }

    fn spawn_background(
        state: &AppState,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let scheduler = outreach::scheduler::run_scheduler(
            state.pool.clone(),
            stop.clone(),
            state.settings.queue.poll_interval,
        );
        let mut tasks = vec![
            tokio::spawn(providers::sendgrid::domain::recheck_unverified_domains(
                SettingsContext::from_ref(state),
                stop.clone(),
            )),
            tokio::spawn(scheduler),
            tokio::spawn(retention::run(
                state.pool.clone(),
                state.settings.retention,
                stop.clone(),
            )),
        ];
        tasks.extend(state.workers().spawn(stop));
        tasks
    }
}

impl AppState {
    /// The send workers, as `serve` runs them; tests drive them one batch at a time.
    pub fn workers(&self) -> Workers {
        Workers::new(
            self.pool.clone(),
            self.messaging.clone(),
            self.unsubscribe.clone(),
            self.settings.queue.clone(),
        )
        .listening_on(self.listen_pool.clone())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Makes glibc's allocator give large blocks back to the system when they are freed.
///
/// Each password check allocates Argon2's 19 MiB of blocks and frees them. glibc serves a first
/// allocation that large with `mmap`, but freeing it raises its mmap threshold to that size, so
/// later ones come from its heaps, which keep freed memory and fragment: a login storm with only
/// two hashes running at a time left the process at 670 MiB. A fixed threshold turns the
/// adjustment off; everything from 1 MiB up is mapped and unmapped on its own.
pub fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists, and glibc documents M_MMAP_THRESHOLD as settable at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// reqwest and sqlx share rustls; one process-wide crypto provider (ring) serves both.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
