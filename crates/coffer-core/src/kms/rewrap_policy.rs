//! How fast, and when, the rotation saga's `rewrap_tracked` step may work: a rate in
//! items per second (`rotation.rewrap_rate`) and a daily UTC window
//! (`rotation.rewrap_window`, seed 003's off-peak rewrap).
//!
//! The rate paces whole batches rather than sleeping per item: each batch starts at
//! least one batch's worth of time (batch / rate) after the one before, waiting on a
//! timer, so no runtime thread is held. Time lost to a slow batch is not made up with
//! a burst, so any one-second span sees at most the rate plus the batch in progress.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use crate::error::InvalidInput;
use crate::time::Timestamp;

/// Tracked data keys rewrapped per store transaction when no rate limits it.
pub(super) const REWRAP_BATCH: u64 = 100;

const MINUTES_PER_DAY: u32 = 24 * 60;

/// A daily span of UTC time, `HH:MM-HH:MM`, start included and end excluded. A window
/// whose end is earlier than its start spans midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    /// Minutes after midnight UTC.
    start: u32,
    /// Minutes after midnight UTC.
    end: u32,
}

impl DailyWindow {
    fn minute_of_day(at: Timestamp) -> u32 {
        let ms_of_day = at.millis().rem_euclid(86_400_000);
        u32::try_from(ms_of_day / 60_000).unwrap_or(0)
    }

    /// True when `at` falls inside the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        let minute = Self::minute_of_day(at);
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// How long from `at` until the window next opens (zero inside it).
    pub fn opens_in(&self, at: Timestamp) -> Duration {
        if self.contains(at) {
            return Duration::ZERO;
        }
        let ms_of_day = at.millis().rem_euclid(86_400_000);
        let start_ms = i64::from(self.start) * 60_000;
        let wait = (start_ms - ms_of_day).rem_euclid(86_400_000);
        Duration::from_millis(u64::try_from(wait).unwrap_or(0))
    }
}

fn parse_minute(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl FromStr for DailyWindow {
    type Err = InvalidInput;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            InvalidInput::new(
                "rewrap window",
                "expected a UTC window HH:MM-HH:MM, e.g. 22:00-06:00",
            )
        };
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let (start, end) = (
            parse_minute(start).ok_or_else(bad)?,
            parse_minute(end).ok_or_else(bad)?,
        );
        if start == end {
            return Err(InvalidInput::new(
                "rewrap window",
                "the window is empty (start equals end); leave it unset to allow any time",
            ));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u32| (m / 60, m % 60);
        let ((sh, sm), (eh, em)) = (hm(self.start), hm(self.end));
        debug_assert!(self.start < MINUTES_PER_DAY && self.end < MINUTES_PER_DAY);
        write!(f, "{sh:02}:{sm:02}-{eh:02}:{em:02}")
    }
}

/// Limits on the saga's tracked-key rewrap. The default limits nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapPolicy {
    /// Items per second at most.
    pub rate: Option<NonZeroU32>,
    /// Rewrap only inside this daily UTC window; outside it the step waits.
    pub window: Option<DailyWindow>,
}

impl RewrapPolicy {
    /// Items per store transaction: a batch never exceeds one second's worth of rate,
    /// so "the rate plus one batch" stays close to the rate.
    pub(super) fn batch(&self) -> u64 {
        self.rate
            .map_or(REWRAP_BATCH, |r| REWRAP_BATCH.min(u64::from(r.get())))
    }

    pub(super) fn pacer(&self) -> Pacer {
        Pacer {
            rate: self.rate.map(|r| f64::from(r.get())),
            next: tokio::time::Instant::now(),
        }
    }
}

/// Spaces batches to a rate: a batch of `n` items holds the next one back `n / rate`.
pub(super) struct Pacer {
    rate: Option<f64>,
    /// When the next batch may start.
    next: tokio::time::Instant,
}

impl Pacer {
    /// Waits (on a timer, holding no thread) until a batch of `n` items may start.
    pub(super) async fn admit(&mut self, n: u64) {
        if let Some(rate) = self.rate {
            tokio::time::sleep_until(self.next).await;
            #[expect(
                clippy::cast_precision_loss,
                reason = "batch sizes stay far below 2^52"
            )]
            let spacing = Duration::from_secs_f64(n as f64 / rate);
            self.next = tokio::time::Instant::now() + spacing;
        }
    }

    /// Lets the next batch start at once (after a wait for the window).
    pub(super) fn restart(&mut self) {
        self.next = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: i64, minute: i64) -> Timestamp {
        // 2026-01-01T00:00:00Z plus the time of day.
        Timestamp::from_millis(1_767_225_600_000 + (hour * 60 + minute) * 60_000)
    }

    #[test]
    fn a_window_across_midnight_holds_the_night_only() {
        let w: DailyWindow = "22:00-06:00".parse().unwrap();
        assert!(w.contains(at(22, 0)));
        assert!(w.contains(at(23, 59)));
        assert!(w.contains(at(0, 0)));
        assert!(w.contains(at(5, 59)));
        assert!(!w.contains(at(6, 0)));
        assert!(!w.contains(at(12, 0)));
        assert_eq!(w.opens_in(at(21, 30)), Duration::from_secs(30 * 60));
        assert_eq!(w.opens_in(at(6, 0)), Duration::from_secs(16 * 3600));
        assert_eq!(w.opens_in(at(23, 0)), Duration::ZERO);
        assert_eq!(w.to_string(), "22:00-06:00");
    }

    #[test]
    fn a_window_within_a_day() {
        let w: DailyWindow = "01:30-02:00".parse().unwrap();
        assert!(!w.contains(at(1, 29)));
        assert!(w.contains(at(1, 30)));
        assert!(!w.contains(at(2, 0)));
        assert_eq!(
            w.opens_in(at(2, 0)),
            Duration::from_secs(23 * 3600 + 30 * 60)
        );
    }

    #[test]
    fn malformed_windows_are_refused() {
        for bad in [
            "",
            "22:00",
            "22-06",
            "24:00-06:00",
            "22:60-06:00",
            "7:00-8:00",
        ] {
            assert!(bad.parse::<DailyWindow>().is_err(), "{bad}");
        }
        let err = "05:00-05:00".parse::<DailyWindow>().unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn a_rate_below_the_batch_makes_batches_of_one_second() {
        let policy = RewrapPolicy {
            rate: NonZeroU32::new(40),
            window: None,
        };
        assert_eq!(policy.batch(), 40);
        assert_eq!(RewrapPolicy::default().batch(), REWRAP_BATCH);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_batch_is_not_made_up_with_a_burst() {
        let policy = RewrapPolicy {
            rate: NonZeroU32::new(100),
            window: None,
        };
        let mut pacer = policy.pacer();
        pacer.admit(policy.batch()).await;
        // The batch takes three seconds (a stalled disk, say).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let resumed = tokio::time::Instant::now();
        pacer.admit(policy.batch()).await;
        pacer.admit(policy.batch()).await;
        assert!(
            resumed.elapsed() >= Duration::from_secs(1),
            "the batch after the stall still waits its spacing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_admits_the_rate_and_no_more() {
        let policy = RewrapPolicy {
            rate: NonZeroU32::new(50),
            window: None,
        };
        let mut pacer = policy.pacer();
        let start = tokio::time::Instant::now();
        let mut admitted = 0;
        while start.elapsed() < Duration::from_secs(3) {
            pacer.admit(policy.batch()).await;
            if start.elapsed() < Duration::from_secs(3) {
                admitted += policy.batch();
            }
        }
        // Three seconds at 50/s: 150 items, plus the batch admitted at once.
        assert!((150..=200).contains(&admitted), "{admitted}");
    }
}
