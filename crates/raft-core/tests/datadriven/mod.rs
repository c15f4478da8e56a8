//! A small runner for data-driven tests in the style of etcd's and
//! CockroachDB's `datadriven`: a file of blocks, each a command line, a
//! `----` line and the output the command must print, ending at a blank
//! line. Lines starting with `#` between blocks are comments.
//!
//! Run with `REWRITE=1` to write the actual outputs back into the files
//! instead of comparing (then review the diff).

use std::fmt::Write as _;
use std::path::Path;

/// One parsed command: `name arg arg key=value ...`.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub args: Vec<String>,
    pub line: usize,
}

impl Command {
    /// Positional arguments (those without `=`).
    pub fn positional(&self) -> Vec<&str> {
        self.args
            .iter()
            .filter(|a| !a.contains('='))
            .map(String::as_str)
            .collect()
    }

    pub fn key(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.positional()
            .iter()
            .map(|a| {
                a.parse()
                    .unwrap_or_else(|_| panic!("line {}: not a node id: {a}", self.line))
            })
            .collect()
    }
}

struct Block {
    comments: Vec<String>,
    command: Command,
    command_text: String,
    expected: String,
}

fn parse(text: &str, path: &Path) -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut comments = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((no, line)) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            comments.push(line.to_string());
            continue;
        }
        let mut words = line.split_whitespace().map(str::to_string);
        let name = words.next().expect("non-empty line");
        let command = Command {
            name,
            args: words.collect(),
            line: no + 1,
        };
        match lines.next() {
            Some((_, "----")) => {}
            _ => panic!(
                "{}:{}: expected ---- after the command",
                path.display(),
                no + 1
            ),
        }
        let mut expected = String::new();
        while let Some((_, l)) = lines.peek() {
            if l.is_empty() {
                break;
            }
            expected.push_str(l);
            expected.push('\n');
            lines.next();
        }
        blocks.push(Block {
            comments: std::mem::take(&mut comments),
            command,
            command_text: line.to_string(),
            expected,
        });
    }
    (blocks, comments)
}

/// Runs every block of the file at `path` through `run`, comparing (or,
/// with `REWRITE=1`, rewriting) the outputs.
pub fn run_file(path: &Path, mut run: impl FnMut(&Command) -> String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (blocks, trailing) = parse(&text, path);
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut out = String::new();
    let mut failures = Vec::new();
    for b in &blocks {
        let mut actual = run(&b.command);
        if !actual.is_empty() && !actual.ends_with('\n') {
            actual.push('\n');
        }
        assert!(
            !actual.contains("\n\n"),
            "{}:{}: output must not contain blank lines",
            path.display(),
            b.command.line
        );
        for c in &b.comments {
            let _ = writeln!(out, "{c}");
        }
        let _ = write!(out, "{}\n----\n{actual}", b.command_text);
        if actual != b.expected {
            failures.push(format!(
                "{}:{}: {}\n--- expected\n{}--- actual\n{}",
                path.display(),
                b.command.line,
                b.command_text,
                b.expected,
                actual
            ));
            if !rewrite {
                break;
            }
        }
    }
    for c in &trailing {
        let _ = writeln!(out, "{c}");
    }
    if rewrite {
        std::fs::write(path, out).expect("rewrite test file");
    } else if let Some(f) = failures.first() {
        panic!("{f}\n(run with REWRITE=1 to accept the new output)");
    }
}
