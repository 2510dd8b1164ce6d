//! `palisade-policy check|explain FILE`: validate a policy file (for CI) or print its
//! effective stacks.
//!
//! - `check FILE`: exit 0 if the file loads (warnings go to stderr), 1 with every problem
//!   otherwise; `--deny-warnings` also fails on warnings.
//! - `explain FILE`: the effective stacks as pretty JSON on stdout (exit 1 on a bad file).
//!
//! - `schema`: the policy file's JSON Schema on stdout (feature `schema`).
//!
//! Usage errors exit 2.

use std::process::ExitCode;

use palisade_policy::PolicySet;

const USAGE: &str = "usage: palisade-policy check [--deny-warnings] FILE\n       palisade-policy explain FILE\n       palisade-policy schema";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deny = args.iter().any(|a| a == "--deny-warnings");
    let rest: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--deny-warnings")
        .collect();
    if rest.as_slice() == ["schema"] {
        return schema();
    }
    let (cmd, file) = if let [cmd @ ("check" | "explain"), file] = rest.as_slice() {
        (*cmd, *file)
    } else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let set = match PolicySet::from_path(file) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(1);
        }
    };
    for w in set.warnings() {
        eprintln!("{file}: warning: {w}");
    }
    match cmd {
        "check" => {
            let routes = set.route_names().len();
            println!(
                "{file}: ok ({routes} routes including the fallback, {} warnings)",
                set.warnings().len()
            );
            if deny && !set.warnings().is_empty() {
                return ExitCode::from(1);
            }
        }
        _ => match serde_json::to_string_pretty(&set.explain()) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::from(1);
            }
        },
    }
    ExitCode::SUCCESS
}

#[cfg(feature = "schema")]
fn schema() -> ExitCode {
    match serde_json::to_string_pretty(&palisade_policy::json_schema::json_schema()) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "schema"))]
fn schema() -> ExitCode {
    eprintln!("this palisade-policy was built without feature `schema`");
    ExitCode::from(2)
}
