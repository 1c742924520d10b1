//! config.json: serde types, loading with JSON-path error messages, and the
//! validation that turns a parsed spec into something the executor can run.

mod default;
mod load;
pub mod types;
mod validate;

pub use default::default_spec;
pub use load::{load_bundle_config, parse_config, parse_json};
pub use types::*;
pub use validate::{validate, validate_process};
