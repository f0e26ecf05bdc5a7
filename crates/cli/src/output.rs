//! Human output helpers shared by every command: aligned tables, relative times, output tails and a
//! spinner, so each command only decides what to show, never how to lay it out.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// `print!` that returns an `io::Result` instead of panicking when stdout is closed (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` that returns an `io::Result` instead of panicking when stdout is closed (`| head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// A table printed with columns padded to their widest cell, two spaces apart.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds one row; missing cells print empty.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text, one line per row, with no trailing spaces.
    pub fn render(&self) -> String {
        self.render_with(true)
    }

    /// The rows only, aligned as if the header were there (for key/value blocks).
    pub fn render_rows(&self) -> String {
        self.render_with(false)
    }

    fn render_with(&self, header: bool) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let head = if header { Some(&self.headers) } else { None };
        for line in head.into_iter().chain(self.rows.iter()) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                text.push_str(cell);
                if i + 1 < cols {
                    text.push_str(&" ".repeat(width - cell.chars().count() + 2));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A compact duration: `45s`, `3m`, `2h`, `4d` (largest whole unit).
pub fn short_duration(secs: i64) -> String {
    let s = secs.abs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `at` relative to `now`: `3m ago`, `in 57m`, or `now` within a second.
pub fn relative_to(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (at - now).num_seconds();
    match secs {
        0 => "now".into(),
        s if s < 0 => format!("{} ago", short_duration(s)),
        s => format!("in {}", short_duration(s)),
    }
}

/// An RFC 3339 time relative to now, `-` when absent, the raw text when it does not parse.
pub fn relative(at: Option<&str>) -> String {
    match at {
        None => "-".into(),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => relative_to(t.with_timezone(&Utc), Utc::now()),
            Err(_) => text.to_string(),
        },
    }
}

/// A duration in milliseconds for humans: `850ms`, `3.2s`, `2m05s`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// The end of a text in lines and characters (one implementation, shared with validate).
pub use dagger_sandbox_validate::tail;

/// `text` cut to `max` characters with an ellipsis, for one table cell.
pub fn ellipsize(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A spinner on stderr that appears only when stderr is a terminal and the work takes more than a
/// moment, so scripts and quick calls never see it. Dropping it erases the line.
pub struct Spinner {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How long work runs before the spinner shows up.
const SPINNER_DELAY: Duration = Duration::from_millis(400);

impl Spinner {
    /// Starts a spinner showing `message` (after a short delay); a no-op when stderr is not a TTY.
    pub fn start(message: impl Into<String>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Spinner { stop: None, task: None };
        }
        let message = message.into();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if tokio::time::timeout(SPINNER_DELAY, &mut rx).await.is_ok() {
                return;
            }
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let started = std::time::Instant::now();
            let mut i = 0;
            loop {
                let secs = started.elapsed().as_secs() + SPINNER_DELAY.as_secs();
                eprint!("\r\x1b[2K{} {message} ({secs}s)", FRAMES[i % FRAMES.len()]);
                let _ = std::io::stderr().flush();
                i += 1;
                if tokio::time::timeout(Duration::from_millis(100), &mut rx).await.is_ok() {
                    break;
                }
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        Spinner { stop: Some(tx), task: Some(task) }
    }

    /// Stops the spinner and waits until its line is erased.
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_trailing_space() {
        let mut t = Table::new(["ID", "STATUS", "URL"]);
        t.row(["sbx-1", "active", "http://x"]);
        t.row(["sbx-longer", "terminated", ""]);
        assert_eq!(
            t.render(),
            "ID          STATUS      URL\nsbx-1       active      http://x\nsbx-longer  terminated\n"
        );
    }

    #[test]
    fn times_read_relative_to_now() {
        let now = Utc::now();
        assert_eq!(relative_to(now - chrono::Duration::minutes(3), now), "3m ago");
        assert_eq!(relative_to(now + chrono::Duration::minutes(57), now), "in 57m");
        assert_eq!(relative_to(now + chrono::Duration::seconds(59 * 60 + 59), now), "in 59m");
        assert_eq!(relative_to(now - chrono::Duration::hours(26), now), "1d ago");
        assert_eq!(relative_to(now, now), "now");
        assert_eq!(relative(None), "-");
        assert_eq!(relative(Some("garbage")), "garbage");
    }

    #[test]
    fn tails_keep_the_end() {
        assert_eq!(tail("a\nb\nc\n\n", 2, 100), "b\nc");
        assert_eq!(tail("abcdef", 5, 3), "def");
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(3300), "3.3s");
        assert_eq!(human_ms(125_000), "2m05s");
        assert_eq!(ellipsize("abcdef", 4), "abc…");
    }
}
