//! The live activity feed: tells each open console that its practice's messages changed, so it
//! reads them again without polling.
//!
//! A trigger on `outreach_logs` notifies [`ACTIVITY_CHANNEL`] with the practice id whenever a
//! message is added or its status or sending account changes, on whichever instance did it. One
//! LISTEN connection per instance relays those ids to the subscribers of that instance; a
//! subscriber hears only its own practice, and a burst of changes reaches it as one signal.

use std::{sync::Arc, time::Duration};

use sqlx::postgres::PgListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use uuid::Uuid;

pub const ACTIVITY_CHANNEL: &str = "outreach_activity";

/// However often a practice's messages change, a subscriber hears of it at most this often.
const MIN_SIGNAL_INTERVAL: Duration = Duration::from_secs(1);

/// Practices whose messages changed: one practice, or every practice after the listener lost
/// notifications.
#[derive(Debug, Clone, Copy)]
enum Changed {
    Practice(Uuid),
    Everything,
}

pub struct ActivityFeed {
    changes: broadcast::Sender<Changed>,
    /// Each subscriber holds an HTTP connection open; a bound keeps them from taking every
    /// connection the server accepts.
    subscribers: Arc<Semaphore>,
    max_subscribers: usize,
    closing: watch::Sender<bool>,
}

/// Refused: this instance already serves as many subscribers as it allows.
#[derive(Debug, thiserror::Error)]
#[error("this instance already serves {0} live activity subscribers")]
pub struct FeedFull(pub usize);

impl ActivityFeed {
    pub fn new(max_subscribers: usize) -> Self {
        Self {
            // A subscriber that falls this far behind just hears "changed", which it would anyway.
            changes: broadcast::channel(256).0,
            subscribers: Arc::new(Semaphore::new(max_subscribers)),
            max_subscribers,
            closing: watch::channel(false).0,
        }
    }

    pub fn subscribe(&self, practice_id: Uuid) -> Result<ActivitySubscription, FeedFull> {
        let permit = self
            .subscribers
            .clone()
            .try_acquire_owned()
            .map_err(|_| FeedFull(self.max_subscribers))?;
        Ok(ActivitySubscription {
            practice_id,
            changes: self.changes.subscribe(),
            closing: self.closing.subscribe(),
            last_signal: None,
            _permit: permit,
        })
    }

    /// Ends every subscription, so a server shutting down is not held open by them.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Relays what `listener` (already listening on [`ACTIVITY_CHANNEL`]) hears until `stop`.
    pub async fn relay(self: Arc<Self>, listener: PgListener, stop: watch::Receiver<bool>) {
        crate::db::follow_ids(
            listener,
            stop,
            "activity",
            |practice_id| {
                // No subscriber at the moment is not an error.
                let _ = self.changes.send(Changed::Practice(practice_id));
                std::future::ready(())
            },
            || {
                let _ = self.changes.send(Changed::Everything);
            },
        )
        .await;
    }
}

/// One console's view of the feed; dropping it frees its place.
pub struct ActivitySubscription {
    practice_id: Uuid,
    changes: broadcast::Receiver<Changed>,
    closing: watch::Receiver<bool>,
    last_signal: Option<tokio::time::Instant>,
    _permit: OwnedSemaphorePermit,
}

impl ActivitySubscription {
    /// Waits until the practice's messages changed since the last call, then returns true;
    /// returns false once the feed is closed.
    pub async fn changed(&mut self) -> bool {
        if let Some(last) = self.last_signal {
            tokio::select! {
                _ = self.closing.wait_for(|closing| *closing) => return false,
                () = tokio::time::sleep_until(last + MIN_SIGNAL_INTERVAL) => {}
            }
        }
        loop {
            let received = tokio::select! {
                _ = self.closing.wait_for(|closing| *closing) => return false,
                received = self.changes.recv() => received,
            };
            let concerns_us = match received {
                Ok(Changed::Practice(id)) => id == self.practice_id,
                Ok(Changed::Everything) | Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return false,
            };
            if concerns_us {
                // What queued up meanwhile is told by this same signal.
                while !self.changes.is_empty() {
                    let _ = self.changes.try_recv();
                }
                self.last_signal = Some(tokio::time::Instant::now());
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_subscriber_hears_its_practice_once_per_burst_and_never_another() {
        let feed = ActivityFeed::new(4);
        let ours = Uuid::new_v4();
        let mut subscription = feed.subscribe(ours).unwrap();
        feed.changes
            .send(Changed::Practice(Uuid::new_v4()))
            .unwrap();
        for _ in 0..10 {
            feed.changes.send(Changed::Practice(ours)).unwrap();
        }
        assert!(
            tokio::time::timeout(WAIT, subscription.changed())
                .await
                .unwrap()
        );
        // The burst was one signal: nothing further is pending.
        assert!(
            tokio::time::timeout(MIN_SIGNAL_INTERVAL * 2, subscription.changed())
                .await
                .is_err()
        );
        feed.changes.send(Changed::Everything).unwrap();
        assert!(
            tokio::time::timeout(WAIT, subscription.changed())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn signals_are_spaced_and_closing_ends_every_subscription() {
        let feed = ActivityFeed::new(4);
        let practice = Uuid::new_v4();
        let mut subscription = feed.subscribe(practice).unwrap();
        feed.changes.send(Changed::Practice(practice)).unwrap();
        assert!(subscription.changed().await);
        let first = tokio::time::Instant::now();
        feed.changes.send(Changed::Practice(practice)).unwrap();
        assert!(subscription.changed().await);
        assert!(first.elapsed() >= MIN_SIGNAL_INTERVAL);
        feed.close();
        assert!(!subscription.changed().await);
    }

    #[test]
    fn subscribers_beyond_the_bound_are_refused_until_one_leaves() {
        let feed = ActivityFeed::new(2);
        let first = feed.subscribe(Uuid::new_v4()).unwrap();
        let _second = feed.subscribe(Uuid::new_v4()).unwrap();
        let refused = feed.subscribe(Uuid::new_v4()).err().unwrap();
        assert_eq!(refused.0, 2);
        drop(first);
        assert!(feed.subscribe(Uuid::new_v4()).is_ok());
    }
}
