//! `cargo xtask mutants`: mutation testing of raft-core's protocol with
//! cargo-mutants (what it mutates and which tests meet each mutant are in
//! `.cargo/mutants.toml`). Prints one JSON document of the outcomes and
//! writes the survivors to `target/mutants/report.md`, each marked as
//! argued equivalent in docs/mutants.md or not; fails if any is not.

use anyhow::{Context, bail};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo-mutants release this was written against.
const VERSION: &str = "27.1.0";

#[derive(clap::Args)]
pub struct Args {
    /// Only mutants in files matching this glob (repeatable), within the
    /// files `.cargo/mutants.toml` names.
    #[arg(long)]
    file: Vec<String>,
    /// Only mutants whose name matches this regex (repeatable).
    #[arg(long)]
    re: Vec<String>,
    /// One shard of the mutants, as K/N (cargo-mutants' `--shard`).
    #[arg(long)]
    shard: Option<String>,
    /// Mutants built and tested at once (each takes a copy of the tree).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// List the mutants instead of testing them.
    #[arg(long)]
    list: bool,
    /// Only read the outcomes of the last run and report on them.
    #[arg(long)]
    report_only: bool,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn out_dir() -> PathBuf {
    root().join("target/mutants")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.report_only {
        check_installed()?;
        let status = cargo_mutants(&args)
            .status()
            .context("running cargo mutants")?;
        if args.list {
            return Ok(());
        }
        // cargo-mutants exits 2 when mutants survive, 3 on timeouts: the
        // report below says which, and whether that is explained.
        if !matches!(status.code(), Some(0 | 2 | 3)) {
            bail!("cargo mutants failed ({status}); see target/mutants/mutants.out/");
        }
    }
    report()
}

fn check_installed() -> anyhow::Result<()> {
    let out = Command::new("cargo")
        .args(["mutants", "--version"])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!(
            "cargo-mutants is not installed: cargo install cargo-mutants --locked --version {VERSION}"
        ),
    }
}

fn cargo_mutants(args: &Args) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root())
        .args(["mutants", "--package", "raft-core", "--no-shuffle"])
        .args(["--line-col=false", "--colors=never"])
        .arg("--jobs")
        .arg(args.jobs.max(1).to_string())
        .arg("--output")
        .arg(out_dir());
    for f in &args.file {
        c.arg("--file").arg(f);
    }
    for r in &args.re {
        c.arg("--re").arg(r);
    }
    if let Some(s) = &args.shard {
        c.arg("--shard").arg(s);
    }
    if args.list {
        c.arg("--list");
    }
    c
}

/// The mutants listed in one of cargo-mutants' outcome files.
fn listed(name: &str) -> anyhow::Result<Vec<String>> {
    let path = out_dir().join("mutants.out").join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text.lines().map(without_position).collect())
}

/// A mutant's name without its line and column (`file:L:C: what` becomes
/// `file: what`), so that the names in docs/mutants.md survive edits
/// elsewhere in the file. One name then stands for every mutant of that
/// description in that function.
fn without_position(name: &str) -> String {
    let mut parts = name.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(l), Some(c), Some(rest))
            if l.parse::<u32>().is_ok() && c.parse::<u32>().is_ok() =>
        {
            format!("{file}:{rest}")
        }
        _ => name.to_string(),
    }
}

/// The mutants docs/mutants.md argues equivalent: every `` `name` `` that
/// starts a list item under its "Equivalent mutants" heading.
fn equivalents() -> anyhow::Result<BTreeSet<String>> {
    let doc = std::fs::read_to_string(root().join("docs/mutants.md"))
        .context("reading docs/mutants.md")?;
    Ok(parse_equivalents(&doc))
}

fn parse_equivalents(doc: &str) -> BTreeSet<String> {
    let mut inside = false;
    let mut names = BTreeSet::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = h.trim() == "Equivalent mutants";
        } else if inside
            && let Some(rest) = line.strip_prefix("- `")
            && let Some((name, _)) = rest.split_once('`')
        {
            names.insert(name.to_string());
        }
    }
    names
}

fn report() -> anyhow::Result<()> {
    let (caught, missed) = (listed("caught.txt")?, listed("missed.txt")?);
    let (timeout, unviable) = (listed("timeout.txt")?, listed("unviable.txt")?);
    if caught.is_empty() && missed.is_empty() && timeout.is_empty() {
        bail!("no outcomes in target/mutants/mutants.out/: run cargo xtask mutants first");
    }
    let argued = equivalents()?;
    let (equivalent, unexplained): (Vec<&String>, Vec<&String>) =
        missed.iter().partition(|m| argued.contains(*m));
    let mut md = String::from("# Surviving mutants of the last run\n\n");
    for m in &missed {
        let mark = if argued.contains(m) {
            "equivalent (docs/mutants.md)"
        } else {
            "UNEXPLAINED"
        };
        md.push_str(&format!("- `{m}`: {mark}\n"));
    }
    let path = out_dir().join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    let tested = caught.len() + missed.len() + timeout.len();
    let score = (caught.len() + timeout.len()) as f64 / tested.max(1) as f64;
    let doc = json!({
        "tested": tested,
        "caught": caught.len(),
        "timeout": timeout.len(),
        "unviable": unviable.len(),
        "missed": missed.len(),
        "equivalent": equivalent.len(),
        "unexplained": unexplained,
        "score": (score * 1000.0).round() / 1000.0,
        "report": path.display().to_string(),
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if !unexplained.is_empty() {
        bail!(
            "{} surviving mutants are not argued equivalent in docs/mutants.md",
            unexplained.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalents_are_the_names_under_their_heading() {
        let doc = "# M\n- `not this`: above\n## Equivalent mutants\n\n- `a.rs: replace x`: why\n  more\n- `b.rs: y`: why\n## Next\n- `c`: no\n";
        let got: Vec<String> = parse_equivalents(doc).into_iter().collect();
        assert_eq!(got, ["a.rs: replace x", "b.rs: y"]);
    }

    #[test]
    fn names_lose_their_position() {
        assert_eq!(
            without_position("crates/x/src/log.rs:92:31: replace || with && in RaftLog::entry"),
            "crates/x/src/log.rs: replace || with && in RaftLog::entry"
        );
        assert_eq!(without_position("a.rs: as is"), "a.rs: as is");
    }
}
