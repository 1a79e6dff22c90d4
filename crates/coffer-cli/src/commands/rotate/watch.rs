//! `coffer rotate status ID --watch`: a progress bar of the `rewrap_tracked` step,
//! redrawn every second with its rate and ETA, until the rotation leaves the step,
//! finishes or waits for `resume`.
//!
//! On a terminal the bar redraws in place (carriage return); otherwise each poll is
//! its own line, so a log of the watch reads top to bottom. A text bar needs no crate.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use coffer_api::rotation::RotationView;

use super::saga::STEPS;
use super::session::Session;

/// How often the bar is redrawn (the server's rate is measured over ten seconds).
const POLL: Duration = Duration::from_secs(1);

/// Width of the bar in characters.
const WIDTH: usize = 30;

/// Polls rotation `id` and redraws its progress until it is past `rewrap_tracked`,
/// no longer running, or held. Returns the last view.
pub async fn watch(s: &Session, first: RotationView) -> anyhow::Result<RotationView> {
    let terminal = std::io::stderr().is_terminal();
    let mut view = first;
    loop {
        let line = progress_line(&view);
        let mut err = std::io::stderr().lock();
        if terminal {
            // Clear the line first: a shorter line must not leave the old one's tail.
            write!(err, "\r\x1b[2K{line}")?;
        } else {
            writeln!(err, "{line}")?;
        }
        err.flush()?;
        drop(err);
        if settled(&view) {
            if terminal {
                eprintln!();
            }
            return Ok(view);
        }
        tokio::time::sleep(POLL).await;
        view = s.client().rotation(&view.rotation_id).await?;
    }
}

/// True once the watch has nothing more to show: the rotation is past the rewrap,
/// completed or rolled back, or waiting for `resume`.
fn settled(view: &RotationView) -> bool {
    let position = |step: &str| STEPS.iter().position(|s| *s == step);
    view.status != "running"
        || view.held.is_some()
        || position(&view.step) > position("rewrap_tracked")
}

/// One line: the step before the rewrap, the bar during it, the outcome after.
pub fn progress_line(view: &RotationView) -> String {
    let id = &view.rotation_id;
    if view.step != "rewrap_tracked" || view.status != "running" {
        return format!(
            "rotation {id}: {} (step {}), {} tracked data keys under v{}",
            view.status, view.step, view.tracked_remaining, view.from_version
        );
    }
    let remaining = view.tracked_remaining;
    let Some(rewrap) = &view.rewrap else {
        return format!(
            "rotation {id}: rewrap_tracked, {remaining} left (progress is reported by the \
             replica running the step)"
        );
    };
    if let Some(window) = &rewrap.waiting_for_window {
        return format!(
            "rotation {id}: rewrap waits for its window {window} UTC; {} done, {remaining} left",
            rewrap.done
        );
    }
    let total = rewrap.done + remaining;
    let eta = rewrap.eta_seconds.map_or_else(
        || "ETA -".to_owned(),
        |secs| format!("ETA {}", clock_time(secs)),
    );
    format!(
        "{} {:>3}%  {} done, {remaining} left  {:.0}/s  {eta}",
        bar(rewrap.done, total),
        percent(rewrap.done, total),
        rewrap.done,
        rewrap.rate_per_second,
    )
}

/// `45s`, `4m15s`, `2h05m`: the two largest units, for a line that redraws.
fn clock_time(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

fn percent(done: u64, total: u64) -> u64 {
    (done * 100).checked_div(total).unwrap_or(100)
}

fn bar(done: u64, total: u64) -> String {
    let filled = usize::try_from(percent(done, total) * WIDTH as u64 / 100).unwrap_or(WIDTH);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(WIDTH - filled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api::rotation::RewrapView;

    fn view(step: &str, remaining: u64, rewrap: Option<RewrapView>) -> RotationView {
        RotationView {
            rotation_id: "r1".into(),
            key_id: "k".into(),
            from_version: 1,
            to_version: Some(2),
            step: step.into(),
            status: "running".into(),
            switched: true,
            paused_after: None,
            held: None,
            failures: 0,
            error: None,
            allowed_measurements: None,
            allow_list_from_policy: None,
            tracked_remaining: remaining,
            rewrap,
            started_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn the_bar_shows_share_rate_and_eta() {
        let v = view(
            "rewrap_tracked",
            75_000,
            Some(RewrapView {
                done: 25_000,
                rate_per_second: 1000.0,
                eta_seconds: Some(75),
                waiting_for_window: None,
            }),
        );
        let line = progress_line(&v);
        assert!(
            line.starts_with("[#######.......................]  25%"),
            "{line}"
        );
        assert!(line.contains("25000 done, 75000 left"), "{line}");
        assert!(line.contains("1000/s"), "{line}");
        assert!(line.contains("ETA 1m15s"), "{line}");
        assert!(!settled(&v));
    }

    #[test]
    fn eta_reads_as_clock_time() {
        assert_eq!(clock_time(45), "45s");
        assert_eq!(clock_time(255), "4m15s");
        assert_eq!(clock_time(7500), "2h05m");
    }

    #[test]
    fn waiting_for_the_window_says_so() {
        let v = view(
            "rewrap_tracked",
            500,
            Some(RewrapView {
                done: 0,
                rate_per_second: 0.0,
                eta_seconds: None,
                waiting_for_window: Some("22:00-06:00".into()),
            }),
        );
        let line = progress_line(&v);
        assert!(
            line.contains("waits for its window 22:00-06:00 UTC"),
            "{line}"
        );
    }

    #[test]
    fn the_watch_ends_past_the_step_or_when_held() {
        assert!(!settled(&view("drain_inflight", 10, None)));
        assert!(settled(&view("retire_old", 0, None)));
        let mut held = view("rewrap_tracked", 10, None);
        held.held = Some(coffer_api::rotation::RotationHold::Failed);
        assert!(settled(&held));
        let mut done = view("anchor", 0, None);
        done.status = "completed".into();
        assert!(settled(&done));
    }
}
