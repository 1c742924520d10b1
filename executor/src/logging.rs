//! A small `tracing` subscriber writing log lines as runc and containerd's
//! shims do: JSON objects ({"level":"error","msg":"...","time":"..."}, which
//! the stock runc shim reads back to report errors) or logrus-style text.
//! Used by berth-runc and the shim; no threads, no buffering.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};

pub struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    max: Level,
}

impl Logger {
    /// Installs the logger as the global tracing subscriber, writing to
    /// `path` (appending) or stderr.
    pub fn install(path: Option<&Path>, json: bool, debug: bool) -> std::io::Result<()> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(File::options().create(true).append(true).open(p)?),
            None => Box::new(std::io::stderr()),
        };
        let logger = Logger {
            out: Mutex::new(out),
            json,
            max: if debug { Level::DEBUG } else { Level::INFO },
        };
        let _ = tracing::subscriber::set_global_default(logger);
        Ok(())
    }
}

#[derive(Default)]
struct Fields {
    msg: String,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            self.rest.push((field.name(), value.to_string()));
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl Subscriber for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= &self.max
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = level_name(event.metadata().level());
        let time = crate::state::rfc3339_now();
        let line = if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level.into());
            obj.insert("msg".into(), f.msg.into());
            obj.insert("time".into(), time.into());
            for (k, v) in f.rest {
                obj.insert(k.into(), v.into());
            }
            serde_json::Value::Object(obj).to_string()
        } else {
            let mut s = format!("time=\"{time}\" level={level} msg={:?}", f.msg);
            for (k, v) in f.rest {
                let _ = write!(s, " {k}={v:?}");
            }
            s
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
