//! `cargo xtask bench net`: peer traffic between two transports over
//! loopback mutual TLS, and the same framing over plain TCP and over the
//! transport's TLS sessions with no transport around them, to separate
//! TLS's cost from the transport's.

use bytes::{Bytes, BytesMut};
use raft_core::{Body, Entry, Message, Mode, Payload};
use raft_net::wire::{self, Frame};
use raft_net::{NetConfig, TlsFiles, TlsSetup, Transport, frame, session};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn message(payload: usize, n: u64) -> Message {
    let data = Bytes::from(vec![0x5Au8; payload]);
    Message {
        from: 1,
        to: 2,
        term: 1,
        mode: Mode::Active,
        body: Body::Append {
            prev_index: n,
            prev_term: 1,
            entries: vec![Entry {
                term: 1,
                index: n + 1,
                payload: Payload::Normal(data),
            }],
            commit: n,
        },
        storage: 0,
    }
}

pub fn run(dir: &Path, seconds: f64) -> anyhow::Result<Value> {
    let certs = dir.join("net-certs");
    crate::certs::make_certs(&certs, false)?;
    let tls = TlsSetup::load(&TlsFiles::node_in(&certs))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut results = Vec::new();
        if let Ok(which) = std::env::var("BENCH_NET_ONLY") {
            // For profiling one path: `plain` or `tls`, 4 KiB messages.
            let r = stream_bench((which == "tls").then_some(&tls), 4096, seconds).await?;
            return Ok(rate(r));
        }
        for size in [64usize, 4096] {
            let transport = transport_bench(&tls, size, seconds).await?;
            let (plain, over_tls, ratio) = alternating(&tls, size, seconds).await?;
            results.push(json!({
                "payload_bytes": size,
                "transport_tls": rate(transport),
                "stream_tls": rate(over_tls),
                "stream_plain_tcp": rate(plain),
                "tls_vs_plain": (ratio * 100.0).round() / 100.0,
            }));
        }
        let ratio_4k = results[1]["tls_vs_plain"].as_f64().unwrap_or(0.0);
        Ok(json!({
            "benchmark": "net",
            "results": results,
            "targets": { "tls_vs_plain_4k": { "value": ratio_4k, "target": ">= 0.6", "met": ratio_4k >= 0.6 } },
        }))
    })
}

fn rate((msgs, mb): (f64, f64)) -> Value {
    json!({ "messages_per_sec": msgs.round(), "mb_per_sec": (mb * 10.0).round() / 10.0 })
}

/// Plain TCP and TLS in alternating slices, so that the machine's drift
/// (other load) hits both alike: the medians of each, and the median of
/// the per-round ratios.
async fn alternating(
    tls: &TlsSetup,
    size: usize,
    seconds: f64,
) -> anyhow::Result<((f64, f64), (f64, f64), f64)> {
    const ROUNDS: usize = 8;
    let slice = (seconds / 2.0).max(0.2);
    let (mut plain, mut over_tls, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let p = stream_bench(None, size, slice).await?;
        let t = stream_bench(Some(tls), size, slice).await?;
        ratios.push(t.0 / p.0);
        plain.push(p);
        over_tls.push(t);
    }
    let median = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    ratios.sort_by(f64::total_cmp);
    Ok((
        median(&mut plain),
        median(&mut over_tls),
        ratios[ROUNDS / 2],
    ))
}

/// The real transport, A to B, with a window so the bounded queue is not
/// simply overrun.
async fn transport_bench(tls: &TlsSetup, size: usize, seconds: f64) -> anyhow::Result<(f64, f64)> {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    let (a_addr, b_addr) = (free()?, free()?);
    let peers: std::collections::BTreeMap<_, _> =
        [(1, a_addr.to_string()), (2, b_addr.to_string())].into();
    let mut ca = NetConfig::new(1, "bench", a_addr, tls.clone());
    ca.peers = peers.clone();
    let mut cb = NetConfig::new(2, "bench", b_addr, tls.clone());
    cb.peers = peers;
    let (a, _a_rx) = Transport::start(ca).await?;
    let (_b, mut b_rx) = Transport::start(cb).await?;
    let received = Arc::new(AtomicU64::new(0));
    let r = received.clone();
    tokio::spawn(async move {
        while b_rx.recv().await.is_some() {
            r.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Wait for the connection.
    while received.load(Ordering::Relaxed) == 0 {
        a.send(message(size, 0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = message(size, 1);
    let start = Instant::now();
    let base = received.load(Ordering::Relaxed);
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        while sent - (received.load(Ordering::Relaxed) - base) < 2048 {
            a.send(m.clone());
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    let secs = start.elapsed().as_secs_f64();
    let got = (received.load(Ordering::Relaxed) - base) as f64;
    Ok((got / secs, got * size as f64 / secs / 1e6))
}

/// Frames of 256 messages, written as fast as the connection takes them:
/// over plain TCP, or over a TLS session the way the transport runs one
/// (a rustls stream, frames written as the transport writes them).
async fn stream_bench(
    tls: Option<&TlsSetup>,
    size: usize,
    seconds: f64,
) -> anyhow::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let r = received.clone();
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone()));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).ok();
        match acceptor {
            Some(acc) => {
                let (rd, _wr, _) = session::accept(&acc, tcp).await.expect("tls accept");
                count_frames(Source::Tls(Box::new(rd)), r).await
            }
            None => count_frames(Source::Plain(tcp), r).await,
        }
    });
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let batch: Vec<Message> = (0..256).map(|i| message(size, i)).collect();
    let body = wire::to_body(&Frame::Messages(batch));
    let mut out = BytesMut::new();
    frame::encode(&body, &mut out);
    let frame_bytes = out.freeze();
    let start = Instant::now();
    match tls {
        Some(t) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")?;
            let connector = tokio_rustls::TlsConnector::from(t.client.clone());
            let (_rd, mut wr, _) =
                session::connect(&connector, name, tcp, Duration::from_secs(5)).await?;
            while start.elapsed().as_secs_f64() < seconds {
                wr.write_body(&body).await?;
            }
        }
        None => {
            let mut tcp = tcp;
            while start.elapsed().as_secs_f64() < seconds {
                tcp.write_all(&frame_bytes).await?;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = received.load(Ordering::Relaxed) as f64;
    Ok((got / secs, got * size as f64 / secs / 1e6))
}

enum Source {
    Plain(TcpStream),
    Tls(Box<session::SecureReader>),
}

/// Decodes every frame fully (as the transport does) and counts messages.
async fn count_frames(mut s: Source, count: Arc<AtomicU64>) {
    let mut buf = BytesMut::with_capacity(1 << 20);
    loop {
        let n = match &mut s {
            Source::Plain(tcp) => tcp.read_buf(&mut buf).await.map_err(|_| ()),
            Source::Tls(rd) => rd.read_plain(&mut buf).await.map_err(|_| ()),
        };
        if !matches!(n, Ok(1..)) {
            return;
        }
        while let Ok(Some(body)) = frame::decode(&mut buf, frame::DEFAULT_MAX_FRAME) {
            if let Ok(Frame::Messages(ms)) = wire::from_body(&body) {
                count.fetch_add(ms.len() as u64, Ordering::Relaxed);
            }
        }
    }
}
