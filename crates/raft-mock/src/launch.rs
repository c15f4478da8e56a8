//! Runs a cluster of `raft-mock` processes on loopback: for
//! `cargo xtask cluster`, the multi-process tests and the benchmarks.
//! Every process is killed when the `ProcessCluster` is dropped.

use bytes::Bytes;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use raft_http::HttpsClient;
use raft_http::client::{ClientError, Method, Reply};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member process.
pub struct NodeProc {
    /// The member's name: its peer address.
    pub name: String,
    /// Its command port address.
    pub api: String,
    /// Its `-t` mode (active, reluctant, passive).
    pub mode: String,
    child: Option<Child>,
    /// Where its output goes.
    pub log: PathBuf,
    /// Its redb file (`None`: in memory).
    pub file: Option<PathBuf>,
    /// The command port it joins through (a node added after the start).
    pub join: Option<String>,
    /// Flags for this node only.
    pub extra: Vec<String>,
}

impl NodeProc {
    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    /// Whether it was started and not yet stopped or killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A cluster of `raft-mock` processes on loopback (tests, benchmarks,
/// `cargo xtask cluster`); every process is killed when it drops.
pub struct ProcessCluster {
    /// The raft-mock binary.
    pub bin: PathBuf,
    /// The certificate directory every node and the client use.
    pub certs: PathBuf,
    /// The members, in start order.
    pub nodes: Vec<NodeProc>,
    /// A client with the admin certificate.
    pub client: HttpsClient,
    /// Extra flags for every node (timings).
    pub flags: Vec<String>,
    /// The first `founders` nodes form the initial cluster; later ones
    /// joined it.
    founders: usize,
    dir: PathBuf,
}

/// Loopback ports nobody listens on now (bound, then released), and never
/// handed out before by this process: clusters started side by side (tests
/// run in parallel) would otherwise sometimes get the same released port.
pub fn free_ports(n: usize) -> Vec<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut held = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().expect("a bound address").port();
        if !given.contains(&port) {
            given.push(port);
            out.push(port);
        }
        held.push(l);
    }
    out
}

impl ProcessCluster {
    /// Describes (does not start) `modes.len()` nodes on the given peer
    /// and command ports, with redb files in `dir` unless `memory`.
    pub fn new(
        bin: &Path,
        certs: &Path,
        dir: &Path,
        modes: &[&str],
        ports: &[(u16, u16)],
        memory: bool,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let tls = raft_net::tls::client_config(
            &certs.join("transport-ca.pem"),
            Some((
                &certs.join("transport-client.crt"),
                &certs.join("transport-client.key"),
            )),
        )
        .map_err(std::io::Error::other)?;
        let mut client = HttpsClient::new(tls);
        client.timeout = Duration::from_secs(15);
        let nodes = modes
            .iter()
            .zip(ports)
            .enumerate()
            .map(|(i, (mode, (peer, api)))| NodeProc {
                name: format!("127.0.0.1:{peer}"),
                api: format!("127.0.0.1:{api}"),
                mode: mode.to_string(),
                child: None,
                log: dir.join(format!("node{}.log", i + 1)),
                file: (!memory).then(|| dir.join(format!("node{}.redb", i + 1))),
                join: None,
                extra: Vec::new(),
            })
            .collect::<Vec<_>>();
        Ok(ProcessCluster {
            bin: bin.to_path_buf(),
            certs: certs.to_path_buf(),
            founders: nodes.len(),
            nodes,
            client,
            flags: Vec::new(),
            dir: dir.to_path_buf(),
        })
    }

    /// Describes and starts a new node (on free ports, with a redb file
    /// unless the founders run in memory) that joins the cluster through
    /// node `via`'s command port. Returns its position.
    pub fn add_joiner(&mut self, mode: &str, via: usize) -> std::io::Result<usize> {
        let i = self.describe_joiner(mode, via);
        self.start(i)?;
        Ok(i)
    }

    /// Describes a node as `add_joiner` does, without starting it.
    pub fn describe_joiner(&mut self, mode: &str, via: usize) -> usize {
        let ports = free_ports(2);
        let i = self.nodes.len();
        let memory = self.nodes[0].file.is_none();
        self.nodes.push(NodeProc {
            name: format!("127.0.0.1:{}", ports[0]),
            api: format!("127.0.0.1:{}", ports[1]),
            mode: mode.to_string(),
            child: None,
            log: self.dir.join(format!("node{}.log", i + 1)),
            file: (!memory).then(|| self.dir.join(format!("node{}.redb", i + 1))),
            join: Some(self.nodes[via].api.clone()),
            extra: Vec::new(),
        });
        i
    }

    /// Starts every node, in order.
    pub fn start_all(&mut self) -> std::io::Result<()> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// Starts node `i` (again), appending to its log file.
    pub fn start(&mut self, i: usize) -> std::io::Result<()> {
        let n = &self.nodes[i];
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-t").arg(&n.mode).arg("-n").arg(&n.name);
        match &n.join {
            Some(via) => {
                cmd.arg("--join").arg(via);
            }
            None if self.founders > 1 => {
                cmd.arg("-b");
                for (j, m) in self.nodes[..self.founders].iter().enumerate() {
                    if j != i {
                        cmd.arg(&m.name);
                    }
                }
            }
            None => {}
        }
        let port = n.api.rsplit_once(':').map_or("0", |(_, p)| p);
        cmd.arg("-p").arg(port).arg("--certs").arg(&self.certs);
        if let Some(f) = &n.file {
            cmd.arg("-f").arg(f);
        }
        cmd.args(&self.flags).args(&n.extra);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    fn signal(&self, i: usize, sig: Signal) {
        if let Some(pid) = self.nodes[i].pid() {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// kill -9, and reap.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, Signal::SIGKILL);
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns whether it exited by
    /// itself, successfully.
    pub fn stop(&mut self, i: usize, grace: Duration) -> bool {
        self.signal(i, Signal::SIGTERM);
        let Some(mut c) = self.nodes[i].child.take() else {
            return false;
        };
        let deadline = Instant::now() + grace;
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    /// Waits up to `within` for node `i` to exit by itself, and reaps it:
    /// its exit code (`None` if it is still running, or was not).
    pub async fn wait_exit(&mut self, i: usize, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            let c = self.nodes[i].child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.nodes[i].child = None;
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Freezes node `i` (SIGSTOP): alive to the kernel, silent to peers.
    pub fn pause(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    /// One request to node `i`'s command port.
    pub async fn request(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: &str,
    ) -> Result<Reply, ClientError> {
        let body = Bytes::from(body.to_string());
        self.client
            .request(&self.nodes[i].api, method, path, &[], body)
            .await
    }

    /// Node `i`'s status (`GET /`), if it answers.
    pub async fn status(&self, i: usize) -> Option<serde_json::Value> {
        let r = self.request(i, Method::GET, "/", "").await.ok()?;
        r.json()
    }

    /// Waits until a running node (not in `except`) leads and every
    /// running node not in `except` agrees on it; its index.
    pub async fn wait_leader(&self, timeout: Duration, except: &[usize]) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut leader = None;
            let mut agree = true;
            for i in 0..self.nodes.len() {
                if except.contains(&i) || !self.nodes[i].is_running() {
                    continue;
                }
                let Some(s) = self.status(i).await else {
                    agree = false;
                    continue;
                };
                let l = s["leader"].as_str().map(String::from);
                match (&leader, l) {
                    (_, None) => agree = false,
                    (None, Some(l)) => leader = Some(l),
                    (Some(a), Some(b)) if *a != b => agree = false,
                    _ => {}
                }
            }
            if agree
                && let Some(l) = leader
                && let Some(i) = self.nodes.iter().position(|n| n.name == l)
                && !except.contains(&i)
            {
                return Some(i);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.resume(i);
            self.kill(i);
        }
    }
}
