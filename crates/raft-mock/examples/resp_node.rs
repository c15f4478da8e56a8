//! A one-node raftstack cluster in memory serving the Redis protocol, and
//! a few commands sent to it over a plain socket (the RESP port in
//! plaintext, which raft-mock allows on loopback only).
//!
//! ```sh
//! cargo xtask certs        # the peer and command ports still use TLS
//! cargo run -p raft-mock --example resp_node
//! ```

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = raft_mock::MockConfig::new("127.0.0.1:17001", &[], 17501);
    cfg.resp_port = Some(16379);
    cfg.resp_plaintext = true;
    let node = raft_mock::start(cfg).await?;
    let mut status = node.node.watch_status();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.is_leader())).await??;
    let addr = node.resp_addr.expect("the RESP port was asked for");
    println!("RESP on redis://{addr} (try: redis-cli -p {})", addr.port());

    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(b"SET greeting hello\r\nINCR visits\r\nGET greeting\r\nINFO replication\r\n")
        .await?;
    let mut reply = vec![0u8; 4096];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = conn.read(&mut reply).await?;
    println!("{}", String::from_utf8_lossy(&reply[..n]));
    node.shutdown().await;
    Ok(())
}
