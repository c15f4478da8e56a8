//! `cargo xtask fuzz`: builds the fuzz targets in `fuzz/` with cargo-afl
//! (stable toolchain) and runs them with AFL++, printing one JSON document
//! of what each run did. A crash or hang is copied into
//! `fuzz/regressions/<target>/`, which `tests/fuzz_corpus.rs` replays on
//! every `cargo test`, and fails the run.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::FUZZ_TARGETS as TARGETS;

#[derive(clap::Args)]
pub struct Args {
    /// A target, `all`, `list` (print the targets), or `seeds` (rewrite the
    /// seed inputs the real encoders make into fuzz/corpus/).
    target: String,
    /// How long to fuzz each target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop each target after about this many executions instead.
    #[arg(long)]
    execs: Option<u64>,
    /// Targets fuzzed at once (one core each).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Fold what the runs found into fuzz/corpus/, minimized (afl-cmin).
    #[arg(long)]
    save: bool,
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let targets: Vec<&str> = match args.target.as_str() {
        "list" => {
            println!("{}", TARGETS.join("\n"));
            return Ok(());
        }
        "seeds" => return seeds(),
        "all" => TARGETS.to_vec(),
        t if TARGETS.contains(&t) => vec![t],
        t => bail!(
            "no fuzz target {t:?}: the targets are {}",
            TARGETS.join(", ")
        ),
    };
    build()?;
    let mut results = Vec::new();
    let (mut waiting, mut running) = (targets.into_iter(), Vec::new());
    loop {
        while running.len() < args.jobs.max(1) {
            let Some(t) = waiting.next() else { break };
            running.push((t, spawn(t, &args)?));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let mut k = 0;
        while k < running.len() {
            let (t, child) = &mut running[k];
            match child
                .try_wait()
                .with_context(|| format!("afl-fuzz on {t}"))?
            {
                Some(_) => {
                    results.push(finish(t, args.save)?);
                    running.swap_remove(k);
                }
                None => k += 1,
            }
        }
    }
    cleanup_scratch();
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r["crashes"].as_u64() != Some(0) || r["hangs"].as_u64() != Some(0))
        .map(|r| r["target"].as_str().unwrap_or("?").to_string())
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({ "fuzz": results }))?
    );
    if !failed.is_empty() {
        bail!(
            "crashes or hangs in {}: copied into fuzz/regressions/; replay them with \
             cargo test --test fuzz_corpus",
            failed.join(", ")
        );
    }
    Ok(())
}

/// `cargo afl`, with what it needs said if it is missing.
fn cargo_afl() -> anyhow::Result<Command> {
    let ok = Command::new("cargo")
        .args(["afl", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!(
            "cargo-afl is not installed: cargo install cargo-afl --version 0.18.2 --locked \
             && cargo afl config --build"
        );
    }
    let mut c = Command::new("cargo");
    c.arg("afl").current_dir(fuzz_dir());
    Ok(c)
}

fn build() -> anyhow::Result<()> {
    let status = cargo_afl()?
        .args(["build", "--release", "--locked"])
        .status()
        .context("cargo afl build")?;
    if !status.success() {
        bail!("building the fuzz targets failed (did `cargo afl config --build` run?)");
    }
    Ok(())
}

fn seeds() -> anyhow::Result<()> {
    build()?;
    let corpus = fuzz_dir().join("corpus");
    let status = Command::new(fuzz_dir().join("target/release/write_seeds"))
        .arg(&corpus)
        .status()
        .context("write_seeds")?;
    if !status.success() {
        bail!("writing the seeds failed");
    }
    cleanup_scratch();
    eprintln!("seeds written under {}", corpus.display());
    Ok(())
}

fn out_dir(target: &str) -> PathBuf {
    fuzz_dir().join("out").join(target)
}

fn spawn(target: &str, args: &Args) -> anyhow::Result<std::process::Child> {
    let out = out_dir(target);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let log = std::fs::File::create(out.join("afl.log"))?;
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut c = cargo_afl()?;
    c.arg("fuzz").arg("-i").arg(&corpus).arg("-o").arg(&out);
    match args.execs {
        Some(n) => c.arg("-E").arg(n.to_string()),
        None => c.arg("-V").arg(args.seconds.to_string()),
    };
    c.arg("--")
        .arg(fuzz_dir().join("target/release").join(target))
        // Quiet, and able to run on a shared machine: no status screen, no
        // CPU pinning or governor demands, crashes found through waitpid
        // whatever the kernel's core_pattern says.
        .env("AFL_NO_UI", "1")
        .env("AFL_NO_AFFINITY", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .env("AFL_FAST_CAL", "1")
        .stdout(log.try_clone()?)
        .stderr(log);
    c.spawn()
        .with_context(|| format!("starting afl-fuzz on {target}"))
}

/// What `fuzzer_stats` says, keyed.
fn stats(target: &str) -> anyhow::Result<Vec<(String, String)>> {
    let path = out_dir(target).join("default/fuzzer_stats");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is missing: afl-fuzz did not run; see {}",
            path.display(),
            out_dir(target).join("afl.log").display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

fn finish(target: &str, save: bool) -> anyhow::Result<Value> {
    let s = stats(target)?;
    let get = |k: &str| s.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let found = out_dir(target).join("default");
    let kept = keep_failures(target, &found)?;
    if save {
        save_corpus(target, &found.join("queue"))?;
    }
    Ok(json!({
        "target": target,
        "execs": num("execs_done") as u64,
        "execs_per_sec": num("execs_per_sec").round(),
        "seconds": num("run_time") as u64,
        "corpus": num("corpus_count") as u64,
        "coverage": get("bitmap_cvg").unwrap_or("?"),
        "stability": get("stability").unwrap_or("?"),
        "crashes": num("saved_crashes") as u64,
        "hangs": num("saved_hangs") as u64,
        "regressions_written": kept,
    }))
}

/// Copies the crashes and hangs a run saved into fuzz/regressions/.
fn keep_failures(target: &str, found: &Path) -> anyhow::Result<usize> {
    let into = fuzz_dir().join("regressions").join(target);
    let mut n = 0;
    for kind in ["crashes", "hangs"] {
        let Ok(dir) = std::fs::read_dir(found.join(kind)) else {
            continue;
        };
        for e in dir {
            let p = e?.path();
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if !name.starts_with("id:") {
                continue;
            }
            std::fs::create_dir_all(&into)?;
            let bytes = std::fs::read(&p)?;
            let digest = crc32fast::hash(&bytes);
            std::fs::write(into.join(format!("{kind}-{digest:08x}")), bytes)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Replaces fuzz/corpus/<target> with a minimized union of it and `queue`
/// (inputs over 16 KiB left out: a kept corpus stays small), unless that
/// comes out empty.
fn save_corpus(target: &str, queue: &Path) -> anyhow::Result<()> {
    let corpus = fuzz_dir().join("corpus").join(target);
    let union = out_dir(target).join("union");
    let min = out_dir(target).join("min");
    std::fs::create_dir_all(&union)?;
    for dir in [corpus.as_path(), queue] {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_file() && std::fs::metadata(&p)?.len() <= 16 << 10 {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                let name = name.replace([':', ','], "_");
                std::fs::copy(&p, union.join(name))?;
            }
        }
    }
    // afl-cmin.bash, not `cargo afl cmin`: the Python afl-cmin of AFL++
    // 4.40 finds no coverage in cargo-afl's persistent-mode targets (and
    // would leave an empty corpus).
    // -e: by edges, not hit counts, or nearly every input is kept.
    let status = Command::new(cmin_script()?)
        .arg("-e")
        .arg("-i")
        .arg(&union)
        .arg("-o")
        .arg(&min)
        .arg("--")
        .arg(fuzz_dir().join("target/release").join(target))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("afl-cmin.bash")?;
    let kept = std::fs::read_dir(&min).map_or(0, |d| d.count());
    if !status.success() || kept == 0 {
        bail!("minimizing the corpus of {target} failed; fuzz/corpus/{target} is unchanged");
    }
    std::fs::remove_dir_all(&corpus)?;
    std::fs::rename(&min, &corpus)?;
    Ok(())
}

/// AFL++'s afl-cmin.bash, as `cargo afl config --build` installed it.
fn cmin_script() -> anyhow::Result<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("no HOME")?;
    let root = data.join("afl.rs");
    for toolchain in std::fs::read_dir(&root).with_context(|| format!("{}", root.display()))? {
        for afl in std::fs::read_dir(toolchain?.path())? {
            let script = afl?.path().join("afl/bin/afl-cmin.bash");
            if script.exists() {
                return Ok(script);
            }
        }
    }
    bail!(
        "afl-cmin.bash is not under {}: run cargo afl config --build",
        root.display()
    )
}

/// The WAL target's scratch directories (one per fuzzer process).
fn cleanup_scratch() {
    for base in [Path::new("/dev/shm").to_path_buf(), std::env::temp_dir()] {
        let Ok(dir) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in dir.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("raftstack-fuzz-")
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
