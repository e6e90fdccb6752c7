//! The sending window, in the recipient's local time.
//!
//! Whatever a practice configures, messages go out only between 08:00 and 21:00 where the
//! recipient is (the TCPA's quiet hours): the configured window is clamped to that. Local times
//! come from the tz database, so a daylight-saving change moves the opening instant with it.

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::Category;
use crate::messaging::Channel;

/// The earliest local time any message may go out.
pub const EARLIEST: NaiveTime = NaiveTime::from_hms_opt(8, 0, 0).expect("valid time");
/// The local time after which no message may go out.
pub const LATEST: NaiveTime = NaiveTime::from_hms_opt(21, 0, 0).expect("valid time");

/// A daily window `[start, end)` in local time, already clamped to 08:00–21:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendingWindow {
    start: NaiveTime,
    end: NaiveTime,
}

impl SendingWindow {
    /// Clamps to 08:00–21:00; a window that is empty after clamping becomes the legal maximum
    /// rather than never opening (settings refuse such windows, so this is only a safeguard).
    pub fn clamped(start: NaiveTime, end: NaiveTime) -> Self {
        let (start, end) = (start.max(EARLIEST), end.min(LATEST));
        if start < end {
            Self { start, end }
        } else {
            Self {
                start: EARLIEST,
                end: LATEST,
            }
        }
    }

    /// `now` when it is inside the window in `zone`, else the instant the window next opens.
    pub fn next_allowed(self, now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        let local = now.with_timezone(&zone);
        let time = local.time();
        if time >= self.start && time < self.end {
            return now;
        }
        let mut day = local.date_naive();
        if time >= self.end {
            day = day + Days::new(1);
        }
        opening_on(zone, day, self.start)
    }
}

/// Why a queued message waits (`outreach_logs.defer_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeferReason {
    /// Outside the recipient's sending window; it goes when the window next opens.
    QuietHours,
}

impl DeferReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QuietHours => "quiet_hours",
        }
    }
}

/// Whether the window binds this kind of message: every SMS, and marketing email. Care email
/// (a confirmation read whenever the inbox is opened) wakes nobody, so it is not held back.
pub fn applies(channel: Channel, category: Category) -> bool {
    channel == Channel::Sms || category == Category::Marketing
}

/// The zone a recipient's window is read in: the patient's own, else the practice's. A stored
/// zone the tz database no longer knows falls back to the practice's rather than stop sending.
pub fn recipient_zone(patient_zone: Option<&str>, practice_zone: Tz) -> Tz {
    patient_zone
        .and_then(|name| name.parse().ok())
        .unwrap_or(practice_zone)
}

/// When a message must wait: the window's next opening if that is later than `now`, else `None`
/// (it may go now, or it is not windowed at all).
pub fn defer_until(
    window: SendingWindow,
    zone: Tz,
    channel: Channel,
    category: Category,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !applies(channel, category) {
        return None;
    }
    let next = window.next_allowed(now, zone);
    (next > now).then_some(next)
}

/// The instant `start` on `day` in `zone`. When that wall-clock time does not exist (a
/// daylight-saving gap), the first existing minute after it.
fn opening_on(zone: Tz, day: chrono::NaiveDate, start: NaiveTime) -> DateTime<Utc> {
    let mut local = day.and_time(start);
    for _ in 0..(24 * 60) {
        if let Some(instant) = zone.from_local_datetime(&local).earliest() {
            return instant.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(1);
    }
    // No zone has a day-long gap; fall back to the UTC reading rather than panic.
    Utc.from_utc_datetime(&day.and_time(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    const NEW_YORK: Tz = chrono_tz::America::New_York;

    #[test]
    fn inside_the_window_the_message_goes_now() {
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        let now = utc("2026-06-15T14:00:00Z"); // 10:00 EDT
        assert_eq!(window.next_allowed(now, NEW_YORK), now);
    }

    #[test]
    fn before_the_window_waits_for_the_same_mornings_opening() {
        let window = SendingWindow::clamped(hm(9, 30), hm(17, 0));
        let now = utc("2026-06-15T07:00:00Z"); // 03:00 EDT
        assert_eq!(
            window.next_allowed(now, NEW_YORK),
            utc("2026-06-15T13:30:00Z")
        );
    }

    #[test]
    fn after_the_window_waits_for_the_next_mornings_opening_and_the_end_is_exclusive() {
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        let now = utc("2026-06-16T01:00:00Z"); // 21:00 EDT on the 15th
        assert_eq!(
            window.next_allowed(now, NEW_YORK),
            utc("2026-06-16T12:00:00Z")
        );
    }

    #[test]
    fn a_configured_window_is_clamped_to_eight_to_nine() {
        let window = SendingWindow::clamped(hm(6, 0), hm(23, 0));
        assert_eq!(window, SendingWindow::clamped(hm(8, 0), hm(21, 0)));
        let now = utc("2026-06-15T11:00:00Z"); // 07:00 EDT: inside 06:00 but not inside 08:00
        assert_eq!(
            window.next_allowed(now, NEW_YORK),
            utc("2026-06-15T12:00:00Z")
        );
        let now = utc("2026-06-16T01:30:00Z"); // 21:30 EDT
        assert_eq!(
            window.next_allowed(now, NEW_YORK),
            utc("2026-06-16T12:00:00Z")
        );
    }

    #[test]
    fn the_night_before_spring_forward_opens_at_eight_daylight_time() {
        // 2026-03-08 02:00 EST becomes 03:00 EDT: Sunday 08:00 local is 12:00 UTC, not 13:00.
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        let now = utc("2026-03-08T03:00:00Z"); // Saturday 22:00 EST
        assert_eq!(
            window.next_allowed(now, NEW_YORK),
            utc("2026-03-08T12:00:00Z")
        );
        let during_gap_night = utc("2026-03-08T07:30:00Z"); // 03:30 EDT
        assert_eq!(
            window.next_allowed(during_gap_night, NEW_YORK),
            utc("2026-03-08T12:00:00Z")
        );
    }

    #[test]
    fn the_night_of_fall_back_opens_at_eight_standard_time() {
        // 2026-11-01 02:00 EDT becomes 01:00 EST: Sunday 08:00 local is 13:00 UTC.
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        let first_one_thirty = utc("2026-11-01T05:30:00Z"); // 01:30 EDT
        let second_one_thirty = utc("2026-11-01T06:30:00Z"); // 01:30 EST
        for now in [first_one_thirty, second_one_thirty] {
            assert_eq!(
                window.next_allowed(now, NEW_YORK),
                utc("2026-11-01T13:00:00Z")
            );
        }
        // 20:30 EST on the Sunday is inside; 21:00 UTC that day was 16:00 EST.
        let evening = utc("2026-11-02T01:30:00Z");
        assert_eq!(window.next_allowed(evening, NEW_YORK), evening);
    }

    #[test]
    fn a_recipient_in_another_zone_gets_their_own_local_window() {
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        // 12:00 UTC: 08:00 in New York (open) but 05:00 in Los Angeles (closed).
        let now = utc("2026-06-15T12:00:00Z");
        assert_eq!(window.next_allowed(now, NEW_YORK), now);
        assert_eq!(
            window.next_allowed(now, chrono_tz::America::Los_Angeles),
            utc("2026-06-15T15:00:00Z")
        );
        // Phoenix keeps standard time all year: 08:00 MST is 15:00 UTC in summer too.
        assert_eq!(
            window.next_allowed(now, chrono_tz::America::Phoenix),
            utc("2026-06-15T15:00:00Z")
        );
    }

    #[test]
    fn care_email_is_never_deferred_but_sms_and_marketing_email_are() {
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        let night = utc("2026-06-15T07:00:00Z"); // 03:00 EDT
        let morning = Some(utc("2026-06-15T12:00:00Z"));
        let at_night = |channel, category| defer_until(window, NEW_YORK, channel, category, night);
        assert_eq!(at_night(Channel::Email, Category::Care), None);
        assert_eq!(at_night(Channel::Email, Category::Marketing), morning);
        assert_eq!(at_night(Channel::Sms, Category::Care), morning);
        assert_eq!(at_night(Channel::Sms, Category::Marketing), morning);
        let day = utc("2026-06-15T15:00:00Z");
        assert_eq!(
            defer_until(window, NEW_YORK, Channel::Sms, Category::Care, day),
            None
        );
    }

    #[test]
    fn an_sms_queued_the_evening_before_spring_forward_waits_for_eight_daylight_time() {
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        // Saturday 2026-03-07 21:30 EST; Sunday 08:00 is EDT (UTC-4), so 12:00 UTC.
        let queued = utc("2026-03-08T02:30:00Z");
        assert_eq!(
            defer_until(window, NEW_YORK, Channel::Sms, Category::Care, queued),
            Some(utc("2026-03-08T12:00:00Z"))
        );
        // The same wall-clock evening before fall back waits until 08:00 EST, 13:00 UTC.
        let queued = utc("2026-11-01T01:30:00Z"); // Saturday 21:30 EDT
        assert_eq!(
            defer_until(window, NEW_YORK, Channel::Sms, Category::Care, queued),
            Some(utc("2026-11-01T13:00:00Z"))
        );
    }

    #[test]
    fn the_patients_zone_wins_over_the_practices_and_an_unknown_one_falls_back() {
        assert_eq!(
            recipient_zone(Some("Asia/Tokyo"), NEW_YORK),
            chrono_tz::Asia::Tokyo
        );
        assert_eq!(recipient_zone(None, NEW_YORK), NEW_YORK);
        assert_eq!(recipient_zone(Some("Nowhere/Land"), NEW_YORK), NEW_YORK);
        // 14:00 UTC: 10:00 in New York, 23:00 in Tokyo (so Tokyo waits for 08:00 there).
        let window = SendingWindow::clamped(hm(8, 0), hm(21, 0));
        let now = utc("2026-06-15T14:00:00Z");
        let tokyo = recipient_zone(Some("Asia/Tokyo"), NEW_YORK);
        assert_eq!(
            defer_until(window, NEW_YORK, Channel::Sms, Category::Care, now),
            None
        );
        assert_eq!(
            defer_until(window, tokyo, Channel::Sms, Category::Care, now),
            Some(utc("2026-06-15T23:00:00Z"))
        );
    }

    #[test]
    fn a_window_opening_inside_a_gap_opens_at_the_first_real_minute() {
        // 02:30 does not exist in New York on 2026-03-08; the first minute that does is 03:00.
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let opened = opening_on(NEW_YORK, day, hm(2, 30));
        assert_eq!(opened, utc("2026-03-08T07:00:00Z")); // 03:00 EDT
    }
}
