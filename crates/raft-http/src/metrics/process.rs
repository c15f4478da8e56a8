//! The standard process series (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), named as every Prometheus
//! client library names them, read from `/proc/self` on Linux. Elsewhere
//! only the start time is known.

use super::sampled::{Sampled, Series, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// `/proc` reports CPU time in USER_HZ ticks, which Linux fixes at 100
/// for every architecture's user-visible interfaces.
const USER_HZ: f64 = 100.0;

/// The process series, read now.
pub(super) struct Process;

impl Process {
    /// Samples the process; `started` is when the node started.
    pub(super) fn sample(started: Instant) -> Sampled {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(started.elapsed());
        let mut series = vec![Series::one(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            Value::Float(start.as_secs_f64()),
        )];
        series.extend(read_proc());
        Sampled(series)
    }
}

/// What `/proc/self` tells; nothing where it cannot be read.
fn read_proc() -> Vec<Series> {
    let mut out = Vec::new();
    if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_seconds(&s))
    {
        out.push(Series::one(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            Value::Seconds(cpu),
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field| status_kib(&status, field).map(|k| Value::Float(k as f64 * 1024.0));
    let rows = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            kib("VmRSS:"),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            kib("VmSize:"),
        ),
        (
            "process_threads",
            "Number of OS threads in the process",
            status_kib(&status, "Threads:").map(|n| Value::Int(n as i64)),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| Value::Int(d.count() as i64)),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|l| max_fds(&l))
                .map(|n| Value::Int(n as i64)),
        ),
    ];
    for (name, help, v) in rows {
        if let Some(v) = v {
            out.push(Series::one(name, help, v));
        }
    }
    out
}

/// utime + stime from `/proc/self/stat`, in seconds. The command name
/// (field 2) may hold spaces and parentheses, so fields count from the
/// last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: f64 = f.next()?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// The number after `field` in `/proc/self/status` (kB for sizes).
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_fields_after_the_command_name() {
        // pid (comm) state, then fields 4..; utime is field 14, stime 15.
        let stat = "42 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        assert_eq!(cpu_seconds(stat), Some(4.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn status_and_limits_fields() {
        let status = "Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t 512 kB\nThreads:\t7\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(512));
        assert_eq!(status_kib(status, "Threads:"), Some(7));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit Soft Hard Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        let names: Vec<_> = read_proc().iter().map(|s| s.name).collect();
        for want in [
            "process_cpu_seconds",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}
