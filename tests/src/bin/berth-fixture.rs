//! berth-fixture: the test image and bundles from the command line.
//!
//!   berth-fixture image                      print the image cache dir (build it if needed)
//!   berth-fixture bundle DIR [-- CMD ARG...] make an OCI bundle in DIR running CMD (default: sh)

use std::path::Path;
use std::process::ExitCode;

use berth_tests::{Bundle, TestImage};

const USAGE: &str = "usage: berth-fixture image | berth-fixture bundle DIR [-- CMD ARG...]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("image") if args.len() == 1 => {
            TestImage::ensure().map(|image| println!("{}", image.dir.display()))
        }
        Some("bundle") if args.len() >= 2 => bundle(&args[1], &args[2..]),
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bundle(dir: &str, rest: &[String]) -> std::io::Result<()> {
    let command: Vec<String> = match rest.split_first() {
        None => vec!["sh".into()],
        Some((sep, cmd)) if sep == "--" && !cmd.is_empty() => cmd.to_vec(),
        _ => {
            return Err(std::io::Error::other(format!(
                "expected -- CMD ARG... after the directory\n{USAGE}"
            )))
        }
    };
    let mut bundle = Bundle::persistent(Path::new(dir))?;
    bundle.spec.hostname = Some("berth".into());
    bundle.set_args(&command);
    bundle.write_config()
}
