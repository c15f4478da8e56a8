//! raft-mock's settings: command line over RAFTSTACK_* environment
//! variables over the --config file over defaults, as --print-config
//! shows; a bad file is refused with a message naming the setting. No
//! node starts here.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_raft-mock");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env_remove("RAFTSTACK_CONFIG");
    c.output().expect("running raft-mock")
}

/// The `--print-config` line of `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key} = ");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn the_command_line_beats_the_environment_beats_the_file() {
    let f = config_file(
        "node = \"7011\"\nneighbours = [\"7012\", \"7013\"]\nport = 7611\n\
         tick-ms = 20\nlog_reduction = true\nresp-port = 8011\n",
    );
    let path = f.path().to_str().unwrap();
    let env = [("RAFTSTACK_PORT", "7711"), ("RAFTSTACK_TICK_MS", "30")];
    let out = run(
        &["--config", path, "--print-config", "--tick-ms", "40"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line(&text, "tick-ms"), "tick-ms = 40  # command line");
    assert_eq!(
        line(&text, "port"),
        "port = 7711  # environment (RAFTSTACK_PORT)"
    );
    assert_eq!(
        line(&text, "neighbours"),
        "neighbours = [7012, 7013]  # config file"
    );
    assert_eq!(
        line(&text, "log-reduction"),
        "log-reduction = true  # config file"
    );
    assert_eq!(line(&text, "resp-port"), "resp-port = 8011  # config file");
    assert_eq!(line(&text, "cluster"), "cluster = \"raftstack\"  # default");
    // What it printed is itself a config file giving the same settings.
    let again = config_file(&text);
    let out = run(
        &["--config", again.path().to_str().unwrap(), "--print-config"],
        &[],
    );
    let second = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line(&second, "tick-ms"), "tick-ms = 40  # config file");
    assert_eq!(line(&second, "port"), "port = 7711  # config file");
}

#[test]
fn every_setting_has_an_environment_variable() {
    let env = [
        ("RAFTSTACK_NODE", "7021"),
        ("RAFTSTACK_LOG_REDUCTION", "true"),
    ];
    let out = run(&["--print-config"], &env);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line(&text, "node"),
        "node = 7021  # environment (RAFTSTACK_NODE)"
    );
    assert!(line(&text, "log-reduction").starts_with("log-reduction = true"));
}

#[test]
fn a_bad_config_file_is_refused_naming_the_setting() {
    for (text, says) in [
        ("nod = \"1\"\n", "unknown setting \"nod\""),
        (
            "node = \"1\"\nsolo = \"yes\"\n",
            "setting \"solo\" is a flag",
        ),
        ("node = \"1\"\nport = { a = 1 }\n", "setting \"port\""),
        ("node = \n", "is not TOML"),
    ] {
        let f = config_file(text);
        let out = run(&["--config", f.path().to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(says), "{text}: {err}");
    }
    let out = run(&["--config", "/nonexistent/raftstack.toml"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading the config file"));
}

#[test]
fn help_and_version_answer_as_usual() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.starts_with("Run a raftstack node"), "{help}");
    assert!(help.contains("[env: RAFTSTACK_RESP_PORT=]"), "{help}");
    let out = run(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("raft-mock "));
    let out = run(&["--no-such-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
