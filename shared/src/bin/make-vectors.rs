//! Writes the test vectors: `make-vectors DIR` (normally `docs/vectors`).
//!
//! Every file comes from `shared::wire::vectors`, made with the published
//! test keys; an invalid vector gets a sidecar `NAME.error` with what a
//! conforming verifier reports, one line each. Review the `.error` files
//! before committing: `shared/tests/wire_vectors.rs` then holds the code to
//! them, byte for byte. Exits 1 on any failure, 2 on bad usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use shared::wire::vectors;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: make-vectors DIR");
        return ExitCode::from(2);
    };
    match write_all(dir) {
        Ok(count) => {
            println!("wrote {count} files to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

fn write_all(dir: &Path) -> Result<usize, String> {
    let files = vectors::files().map_err(|err| format!("building vectors: {err}"))?;
    let mut count = 0;
    for file in &files {
        let path = dir.join(&file.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|err| format!("creating {}: {err}", parent.display()))?;
        }
        write(&path, &file.bytes)?;
        count += 1;
        let report = vectors::check(&file.name, &file.bytes)
            .map_err(|err| format!("checking {}: {err}", file.name))?;
        let invalid = file.name.starts_with("invalid/");
        match (invalid, report.is_empty()) {
            (false, true) => {}
            (false, false) => {
                return Err(format!(
                    "{} should be valid: {}",
                    file.name,
                    report.join("; ")
                ))
            }
            (true, true) => return Err(format!("{} should be invalid but passes", file.name)),
            (true, false) => {
                let mut text = report.join("\n");
                text.push('\n');
                write(&dir.join(format!("{}.error", file.name)), text.as_bytes())?;
                count += 1;
            }
        }
    }
    Ok(count)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|err| format!("writing {}: {err}", path.display()))
}
