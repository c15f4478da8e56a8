//! Where raft-mock's settings come from, first found wins: the command
//! line, then `RAFTSTACK_<FLAG>` environment variables (`--resp-port` is
//! `RAFTSTACK_RESP_PORT`), then the TOML file given by `--config` (keys
//! are the long flag names: `resp-port = 8001`), then the defaults.
//! `--print-config` shows what that resolved to, and from where.

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

/// Flags that only steer this resolution, or clap's own.
const NOT_SETTINGS: &[&str] = &["help", "version", "config", "print_config"];

/// The environment variable for a flag.
pub fn env_name(long: &str) -> String {
    format!("RAFTSTACK_{}", long.replace('-', "_").to_uppercase())
}

/// `cmd` with an environment variable for every setting.
pub fn with_env(cmd: Command) -> Command {
    cmd.mut_args(|a| match a.get_long() {
        Some(long) if !NOT_SETTINGS.contains(&a.get_id().as_str()) => {
            // clap takes a &'static str here: one small string per flag,
            // once per process.
            let name: &'static str = Box::leak(env_name(long).into_boxed_str());
            a.env(name)
        }
        _ => a,
    })
}

/// What the settings resolved to: the matches, and which of the settings
/// given as arguments came from the config file.
pub struct Resolved {
    pub matches: ArgMatches,
    pub from_file: BTreeSet<String>,
}

/// Resolves `argv` (with its program name) against `cmd`.
pub fn resolve(cmd: &Command, argv: Vec<OsString>) -> anyhow::Result<Resolved> {
    // Errors are left for the full parse below; --help and --version
    // are answered here, as clap answers them.
    let pre = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let Some(file) = pre.get_one::<std::path::PathBuf>("config") else {
        let matches = cmd
            .clone()
            .try_get_matches_from(argv)
            .unwrap_or_else(|e| e.exit());
        return Ok(Resolved {
            matches,
            from_file: BTreeSet::new(),
        });
    };
    let (file_args, from_file) = file_args(cmd, &pre, file)?;
    let mut all = vec![argv[0].clone()];
    all.extend(file_args);
    all.extend(argv.into_iter().skip(1));
    let matches = cmd
        .clone()
        .try_get_matches_from(all)
        .unwrap_or_else(|e| e.exit());
    Ok(Resolved { matches, from_file })
}

/// The file's settings as arguments, leaving out those the command line
/// or the environment already gives.
fn file_args(
    cmd: &Command,
    pre: &ArgMatches,
    file: &Path,
) -> anyhow::Result<(Vec<OsString>, BTreeSet<String>)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the config file {}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("the config file {} is not TOML", file.display()))?;
    let mut out = Vec::new();
    let mut from_file = BTreeSet::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
        else {
            bail!(
                "{}: unknown setting {key:?}; the settings are: {}",
                file.display(),
                settings(cmd).join(", ")
            );
        };
        let id = arg.get_id().as_str();
        let given = matches!(
            pre.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if given {
            continue;
        }
        let values = if matches!(arg.get_action(), ArgAction::SetTrue) {
            match value {
                toml::Value::Boolean(true) => Vec::new(),
                toml::Value::Boolean(false) => continue,
                _ => bail!(
                    "{}: setting {key:?} is a flag: true or false",
                    file.display()
                ),
            }
        } else {
            values(key, value).with_context(|| file.display().to_string())?
        };
        out.push(OsString::from(format!("--{long}")));
        out.extend(values.into_iter().map(OsString::from));
        from_file.insert(id.to_string());
    }
    Ok((out, from_file))
}

/// A TOML value as argument values: one per array element, else one.
fn values(key: &str, value: &toml::Value) -> anyhow::Result<Vec<String>> {
    use toml::Value as V;
    let one = |v: &V| -> anyhow::Result<String> {
        Ok(match v {
            V::String(s) => s.clone(),
            V::Integer(i) => i.to_string(),
            V::Float(f) => f.to_string(),
            V::Boolean(b) => b.to_string(),
            _ => bail!("setting {key:?}: a string, number or boolean, not {v}"),
        })
    };
    match value {
        V::Array(items) => items.iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

/// Every setting's key.
fn settings(cmd: &Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !NOT_SETTINGS.contains(&a.get_id().as_str()))
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

/// The resolved settings as a config file, each with where it came from.
pub fn print(cmd: &Command, r: &Resolved) -> String {
    let mut out = String::new();
    for a in cmd.get_arguments() {
        let (id, Some(long)) = (a.get_id().as_str(), a.get_long()) else {
            continue;
        };
        if NOT_SETTINGS.contains(&id) {
            continue;
        }
        let raw: Vec<String> = r
            .matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match r.matches.value_source(id) {
            Some(ValueSource::CommandLine) if r.from_file.contains(id) => "config file".to_string(),
            Some(ValueSource::CommandLine) => "command line".to_string(),
            Some(ValueSource::EnvVariable) => format!("environment ({})", env_name(long)),
            Some(ValueSource::DefaultValue) => "default".to_string(),
            _ => {
                let _ = writeln!(out, "# {long} (not set)");
                continue;
            }
        };
        let flag = matches!(a.get_action(), ArgAction::SetTrue);
        let value = if flag {
            r.matches.get_flag(id).to_string()
        } else if a.get_num_args().is_some_and(|n| n.max_values() > 1) {
            let items: Vec<String> = raw.iter().map(|s| toml_value(s)).collect();
            format!("[{}]", items.join(", "))
        } else {
            toml_value(raw.first().map_or("", String::as_str))
        };
        let _ = writeln!(out, "{long} = {value}  # {source}");
    }
    out
}

/// A number as a number, anything else as a TOML string.
fn toml_value(s: &str) -> String {
    if s.parse::<i64>().is_ok() {
        s.to_string()
    } else {
        toml::Value::String(s.to_string()).to_string()
    }
}
