//! Conformance runner: `conformance DIR_OR_FILE...`
//!
//! Runs every `*.json` vector through the engine, prints one line per failing
//! file with the difference, and ends with `N passed, M failed`. Exits 1 when
//! any vector fails or cannot be read, 2 on bad usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shared::conformance;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!("usage: conformance DIR_OR_FILE...");
        return ExitCode::from(2);
    }
    let mut files = Vec::new();
    for arg in &args {
        if let Err(err) = collect(arg, &mut files) {
            eprintln!("{}: {err}", arg.display());
            return ExitCode::from(2);
        }
    }
    files.sort();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        match check(file) {
            Ok(()) => passed += 1,
            Err(message) => {
                failed += 1;
                println!("FAIL {}: {message}", file.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry_path = entry?.path();
            if entry_path.extension().is_some_and(|ext| ext == "json") {
                files.push(entry_path);
            }
        }
    } else {
        std::fs::metadata(path)?;
        files.push(path.to_path_buf());
    }
    Ok(())
}

fn check(file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|err| format!("cannot read: {err}"))?;
    let vector = conformance::parse(&text).map_err(|err| format!("invalid vector: {err}"))?;
    let actual = conformance::run(&vector);
    let differences = conformance::diff(&vector.expect, &actual);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
    }
}
