//! `raftctl watch KEY`: prints a key's changes as they come, from any node,
//! resuming on another node where it left off when one goes away.

use super::{Ctl, check, enc};
use anyhow::bail;
use base64::Engine;
use raft_http::client::ClientError;
use std::time::Duration;

/// Where the watch is: every event below `from` was printed (0: not known
/// yet, the watch starts now), and the first `printed_at_from` events at
/// `from` (one entry may change several
/// keys, and every node records them in the same order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    from: u64,
    printed_at_from: usize,
}

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A new event: print it.
    Print,
    /// Nothing to print (progress, an event printed before, the end).
    Skip,
    /// The node's history no longer reaches the position: the message.
    Compacted(String),
}

impl Position {
    /// Moves past a line; `repeats` counts the events at `from` this
    /// connection sends again and to skip.
    fn step(&mut self, v: &serde_json::Value, repeats: &mut usize) -> Line {
        let index = v["Index"].as_u64().unwrap_or(0);
        match v["Op"].as_str().unwrap_or("") {
            "progress" => {
                if index + 1 > self.from {
                    *self = Position {
                        from: index + 1,
                        printed_at_from: 0,
                    };
                }
                Line::Skip
            }
            "compacted" => Line::Compacted(v["Reason"].as_str().unwrap_or("").to_string()),
            "end" => Line::Skip,
            _ if index == self.from && *repeats > 0 => {
                *repeats -= 1;
                Line::Skip
            }
            _ => {
                if index > self.from {
                    *self = Position {
                        from: index,
                        printed_at_from: 1,
                    };
                } else {
                    self.printed_at_from += 1;
                }
                Line::Print
            }
        }
    }
}

/// How a connection's stream ended, as its lines told.
#[derive(Debug, PartialEq, Eq)]
enum Told {
    /// Not yet (or the connection ended): go on, elsewhere if need be.
    More,
    /// The watch printed what it was asked for.
    Done,
    /// The node cannot go on (fatal): its message.
    Compacted(String),
}

/// One connection's stream: prints its events and keeps the position.
struct Lines<'a> {
    ctl: &'a Ctl,
    pending: Vec<u8>,
    at: &'a mut Position,
    /// Events at `at.from` this connection repeats from before.
    repeats: usize,
    /// Events still to print (`--count`), if bounded.
    left: &'a mut Option<u64>,
    told: Told,
}

impl Lines<'_> {
    fn line(&mut self, v: &serde_json::Value) -> Told {
        match self.at.step(v, &mut self.repeats) {
            Line::Skip => Told::More,
            Line::Compacted(why) => Told::Compacted(why),
            Line::Print => {
                self.print(v);
                match self.left {
                    Some(n) => {
                        *n = n.saturating_sub(1);
                        if *n == 0 { Told::Done } else { Told::More }
                    }
                    None => Told::More,
                }
            }
        }
    }

    fn print(&self, v: &serde_json::Value) {
        let key = v["Key"].as_str().unwrap_or("");
        let op = v["Op"].as_str().unwrap_or("");
        let value = v["Value"].as_str().map(|b| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default();
            String::from_utf8_lossy(&raw).into_owned()
        });
        self.ctl.say(v.clone(), || match value {
            Some(val) => format!("{} {op} {key} = {val}", v["Index"]),
            None => format!("{} {op} {key}", v["Index"]),
        });
    }
}

impl std::io::Write for Lines<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.told != Told::More {
            // Stop reading: the watch is over.
            return Err(std::io::Error::other("watch over"));
        }
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                self.told = self.line(&v);
                if self.told != Told::More {
                    return Err(std::io::Error::other("watch over"));
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) async fn watch(
    ctl: &Ctl,
    key: &str,
    recurse: bool,
    from: Option<u64>,
    mut count: Option<u64>,
) -> anyhow::Result<()> {
    // Without --from, the first stream starts linearizably now and its
    // first line says where.
    let mut at = Position {
        from: from.unwrap_or(0),
        printed_at_from: 0,
    };
    let mut stream = ctl.client.clone();
    stream.timeout = Duration::MAX;
    let recurse = if recurse { "&recurse" } else { "" };
    for n in ctl.nodes.iter().cycle() {
        let from = match at.from {
            0 => String::new(),
            f => format!("&from={f}"),
        };
        let path = format!("/v1/watch/{}?ns={}{from}{recurse}", enc(key), ctl.ns);
        let mut lines = Lines {
            ctl,
            pending: Vec::new(),
            repeats: at.printed_at_from,
            at: &mut at,
            left: &mut count,
            told: Told::More,
        };
        let r = stream.download(n, &path, &mut lines).await;
        match std::mem::replace(&mut lines.told, Told::More) {
            Told::Done => return Ok(()),
            Told::Compacted(why) => bail!("{why}"),
            Told::More => {}
        }
        match r {
            // 410 (compacted), a bad key or namespace, no permission.
            Ok(reply) if reply.status.is_client_error() => check(&reply)?,
            Ok(_) | Err(ClientError::Connect { .. }) => {}
            Err(e) => eprintln!("raftctl: {n}: {e}; watching from {} elsewhere", at.from),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no nodes given")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resumed_stream_skips_what_was_printed_and_nothing_else() {
        let mut at = Position {
            from: 5,
            printed_at_from: 0,
        };
        let ev = |i: u64| json!({ "Index": i, "Op": "put", "Key": "k" });
        let mut none = 0;
        assert_eq!(at.step(&ev(7), &mut none), Line::Print);
        assert_eq!(at.step(&ev(7), &mut none), Line::Print);
        assert_eq!(
            at,
            Position {
                from: 7,
                printed_at_from: 2
            }
        );
        // Reconnected from 7: its two events there come again, then a third.
        let mut repeats = at.printed_at_from;
        assert_eq!(at.step(&ev(7), &mut repeats), Line::Skip);
        assert_eq!(at.step(&ev(7), &mut repeats), Line::Skip);
        assert_eq!(at.step(&ev(7), &mut repeats), Line::Print);
        assert_eq!(at.step(&ev(9), &mut repeats), Line::Print);
        let progress = json!({ "Op": "progress", "Index": 20 });
        assert_eq!(at.step(&progress, &mut repeats), Line::Skip);
        assert_eq!(
            at,
            Position {
                from: 21,
                printed_at_from: 0
            }
        );
        let cut = json!({ "Op": "compacted", "Reason": "behind" });
        assert_eq!(
            at.step(&cut, &mut repeats),
            Line::Compacted("behind".into())
        );
    }
}
