//! The recent log lines of this process, for `/logs`: a `tracing` layer ([`layer`]) that
//! keeps the last [`CAPACITY`] events in a ring buffer, each cut to [`MAX_LINE`] bytes.
//! Install it beside the usual formatter (the binaries do, in `bins::init_logging`); it sees
//! what the global filter lets through.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines kept.
pub const CAPACITY: usize = 1000;
/// Longest line kept (longer ones are cut, on a character boundary).
pub const MAX_LINE: usize = 2048;

/// One log event.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub time: SystemTime,
    pub level: Level,
    /// `target: message key=value …`
    pub text: String,
}

fn ring() -> &'static Mutex<VecDeque<LogLine>> {
    static RING: OnceLock<Mutex<VecDeque<LogLine>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(CAPACITY)))
}

/// The kept lines, oldest first.
pub fn recent() -> Vec<LogLine> {
    ring()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// The layer that fills the ring.
pub fn layer() -> RingLayer {
    RingLayer
}

/// See [`layer`].
#[derive(Clone, Copy, Debug)]
pub struct RingLayer;

struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let mut text = format!("{}: {}{}", event.metadata().target(), f.message, f.rest);
        if text.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        push(LogLine {
            time: SystemTime::now(),
            level: *event.metadata().level(),
            text,
        });
    }
}

fn push(line: LogLine) {
    let mut r = ring().lock().unwrap_or_else(|e| e.into_inner());
    if r.len() >= CAPACITY {
        r.pop_front();
    }
    r.push_back(line);
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_land_in_the_ring() {
        let sub = tracing_subscriber::registry().with(super::layer());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(tablet = "t1", "hello ring");
        });
        let lines = super::recent();
        let l = lines.last().expect("a line");
        assert!(l.text.contains("hello ring tablet=t1"), "{}", l.text);
        assert_eq!(l.level, tracing::Level::INFO);
    }
}
