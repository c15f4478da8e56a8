//! SIGKILL at random moments while appending: on reopen the log must be a
//! prefix of what was written, hold everything that was acknowledged, and
//! contain no torn entry.
//!
//! The test re-runs its own binary as the child (`CRASH_CHILD_LOG` set),
//! which appends batches and prints each acknowledged last index.

use raft_core::{Entry, HardState, Index, LogStore, Payload, WriteBatch};
use raft_log::RedbLogStore;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Payload of entry `index` in generation `term`: its size varies (up to
/// 8 KiB) so batches span pages, and its content is checkable.
fn payload(index: Index, term: u64) -> Vec<u8> {
    let len = (index.wrapping_mul(2654435761) % 8192) as usize;
    let mut v = format!("{index}/{term}:").into_bytes();
    v.resize(len.max(v.len()), (index % 251) as u8);
    v
}

fn child(path: &str) {
    let mut s = RedbLogStore::open(path).expect("child: open");
    // Small segments, so kills also land while one is being started and
    // while old ones are deleted.
    s.set_segment_bytes(96 * 1024);
    // Small records too, so a batch is often several records and kills
    // land between a batch's records as well.
    s.set_record_bytes(8 * 1024);
    let st = s.state().expect("child: state");
    let term = st.hard_state.term + 1;
    // Now and then, start by replacing a suffix, as a new leader would.
    let mut next = st.last_index + 1;
    if st.last_index > 10 && term.is_multiple_of(3) {
        next = st.last_index - 5;
    }
    let mut batch = 1;
    let out = std::io::stdout();
    loop {
        let entries: Vec<Entry> = (next..next + batch)
            .map(|i| Entry {
                index: i,
                term,
                payload: Payload::Normal(payload(i, term).into()),
            })
            .collect();
        let hs = HardState {
            term,
            vote: None,
            commit: 0,
        };
        s.write(WriteBatch {
            hard_state: Some(hs),
            entries: &entries,
            ..Default::default()
        })
        .expect("child: write");
        next += batch;
        batch = batch % 40 + 1;
        if batch % 7 == 0 && next > 200 {
            s.purge_to(next - 150).expect("child: purge");
        }
        use std::io::Write;
        let mut o = out.lock();
        writeln!(o, "{} {}", next - 1, term).expect("child: stdout");
        o.flush().expect("child: flush");
    }
}

#[test]
fn sigkill_during_appends_loses_nothing_acknowledged() {
    if let Ok(path) = std::env::var("CRASH_CHILD_LOG") {
        child(&path);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    let exe = std::env::current_exe().expect("test binary");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let rounds = 25;
    for round in 0..rounds {
        let mut proc = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_during_appends_loses_nothing_acknowledged",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CRASH_CHILD_LOG", &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let reader = BufReader::new(proc.stdout.take().expect("stdout"));
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let acks_before_kill = 1 + (seed >> 33) % 60;
        let mut acked: Option<(Index, u64)> = None;
        let started = Instant::now();
        for line in reader.lines() {
            let line = line.expect("read child");
            let mut it = line
                .split_whitespace()
                .filter_map(|w| w.parse::<u64>().ok());
            if let (Some(i), Some(t)) = (it.next(), it.next()) {
                acked = Some((i, t));
            }
            let n = acked.map_or(0, |(i, _)| i);
            if n >= acks_before_kill || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        // Let the child run into its next write before the kill lands.
        std::thread::sleep(Duration::from_micros((seed >> 40) % 3000));
        proc.kill().expect("SIGKILL");
        proc.wait().expect("reap");
        let (acked_last, acked_term) = acked.expect("the child acknowledged something");

        let s = RedbLogStore::open(&path).expect("reopen after SIGKILL");
        let st = s.state().expect("state");
        assert!(
            st.last_index >= acked_last,
            "round {round}: acknowledged up to {acked_last}, found only {}",
            st.last_index
        );
        assert!(
            st.hard_state.term >= acked_term,
            "round {round}: acknowledged hard state lost"
        );
        let first = st.purged.0 + 1;
        assert!(
            first + 100 <= acked_last.max(101),
            "round {round}: purged too much"
        );
        let entries = s
            .entries(first, st.last_index + 1, usize::MAX)
            .expect("read everything");
        assert_eq!(entries.len() as u64, st.last_index - st.purged.0);
        for e in &entries {
            let Payload::Normal(b) = &e.payload else {
                panic!("round {round}: entry {} is not ours", e.index)
            };
            assert_eq!(
                b.as_ref(),
                payload(e.index, e.term).as_slice(),
                "round {round}: entry {} is torn",
                e.index
            );
        }
        assert!(
            entries.windows(2).all(|w| w[0].term <= w[1].term),
            "round {round}: terms out of order"
        );
    }
}
