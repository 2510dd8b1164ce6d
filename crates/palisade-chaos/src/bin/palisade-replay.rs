//! `palisade-replay FILE URL [--pace recorded|fast] [--concurrency N] [--header NAME]... [--ignore POINTER]...`
//!
//! Replays the recording in FILE (JSON lines written by `RecordLayer`) against the service
//! at URL and prints the summary table. Exit status: 0 when every exchange answered the
//! same, 1 when some differed or failed, 2 on a usage or file error.

use std::process::ExitCode;

use palisade_chaos::record::read_recording_file;
use palisade_chaos::replay::{HttpTarget, MAX_REPLAY_CONCURRENCY, Pace, ReplayOptions, replay};

const USAGE: &str = "usage: palisade-replay FILE URL [--pace recorded|fast] [--concurrency 1-1024] [--header NAME]... [--ignore JSON-POINTER]...";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("palisade-replay: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut options = ReplayOptions::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--pace" => {
                options = options.pace(match value()?.as_str() {
                    "recorded" => Pace::Recorded,
                    "fast" => Pace::Fast,
                    other => return Err(format!("unknown pace {other:?}")),
                });
            }
            "--concurrency" => {
                let n = value()?;
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_REPLAY_CONCURRENCY).contains(n))
                    .ok_or_else(|| {
                        format!("--concurrency must be 1 to {MAX_REPLAY_CONCURRENCY} (got {n:?})")
                    })?;
                options = options.concurrency(n);
            }
            "--header" => {
                let name = value()?;
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("bad header name {name:?}"))?;
                options = options.compare_header(name);
            }
            "--ignore" => options = options.ignore_field(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => positional.push(arg),
        }
    }
    let [file, url] =
        <[String; 2]>::try_from(positional).map_err(|_| "expected FILE and URL".to_owned())?;
    let recording = read_recording_file(&file).map_err(|e| format!("{file}: {e}"))?;
    let target = HttpTarget::new(&url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(replay(&recording, target, &options));
    println!("{report}");
    Ok(report.is_clean())
}
