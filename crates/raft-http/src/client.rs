//! A small HTTPS client with kept-alive connections per address: used to
//! forward writes to the leader, and by raftctl, the tests and the
//! benchmarks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
pub use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No TLS connection to `addr` (refused, unreachable, handshake).
    #[error("cannot connect to {addr}: {why}")]
    Connect {
        /// Where.
        addr: String,
        /// What failed.
        why: String,
    },
    /// Connected, but the request or its answer broke off.
    #[error("request to {addr} failed: {why}")]
    Request {
        /// Where.
        addr: String,
        /// What failed.
        why: String,
    },
    /// No whole answer within the client's timeout.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// Where.
        addr: String,
        /// How long it waited.
        timeout: Duration,
    },
}

/// One answer.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

type Sender = SendRequest<Full<Bytes>>;

fn failed(addr: &str, why: impl std::fmt::Display) -> ClientError {
    ClientError::Request {
        addr: addr.to_string(),
        why: why.to_string(),
    }
}

/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct HttpsClient {
    tls: TlsConnector,
    pool: Arc<Mutex<HashMap<String, Vec<Sender>>>>,
    /// How long a request may take, connecting included.
    pub timeout: Duration,
}

/// Idle connections kept per address.
const MAX_IDLE: usize = 64;

impl HttpsClient {
    /// A client that presents and checks certificates as `tls` says.
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        HttpsClient {
            tls: TlsConnector::from(tls),
            pool: Arc::default(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Sends one request to `addr` (`host:port`); `path` includes the query.
    pub async fn request(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let fut = self.request_inner(addr, method, path, headers, body);
        self.within(addr, fut).await
    }

    /// `fut`, given up on after the client's timeout.
    async fn within<T>(
        &self,
        addr: &str,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_string(),
                timeout,
            })?
    }

    async fn request_inner(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let (sender, resp) = self.send(addr, method, path, headers, body).await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| failed(addr, e))?
            .to_bytes();
        self.put_back(addr, sender);
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// A GET whose successful answer's body goes to `out` as it arrives
    /// (a backup need not fit in memory); the `Reply`'s body is empty then.
    /// An unsuccessful answer's body is in the `Reply`, as with `request`.
    pub async fn download(
        &self,
        addr: &str,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<Reply, ClientError> {
        let fut = async {
            let (sender, resp) = self
                .send(addr, Method::GET, path, &[], Bytes::new())
                .await?;
            let (parts, mut body) = resp.into_parts();
            let mut kept = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| failed(addr, e))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if parts.status.is_success() {
                    out.write_all(&data).map_err(|e| failed(addr, e))?;
                } else {
                    kept.extend_from_slice(&data);
                }
            }
            self.put_back(addr, sender);
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body: kept.into(),
            })
        };
        self.within(addr, fut).await
    }

    /// Sends a request on a kept-alive connection or a new one; the answer
    /// with its body still to read, and the connection to put back after.
    async fn send(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(Sender, hyper::Response<hyper::body::Incoming>), ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body)).map_err(|e| failed(addr, e))?;
        let (sender, resp) = match self.idle(addr) {
            Some(mut s) => {
                let retry = req.clone();
                match s.send_request(req).await {
                    // A kept-alive connection the server closed meanwhile:
                    // the request never left, so a new connection may
                    // carry it.
                    Err(e) if e.is_canceled() => {
                        let mut s = self.connect(addr).await?;
                        let r = s.send_request(retry).await;
                        (s, r)
                    }
                    r => (s, r),
                }
            }
            None => {
                let mut s = self.connect(addr).await?;
                let r = s.send_request(req).await;
                (s, r)
            }
        };
        Ok((sender, resp.map_err(|e| failed(addr, e))?))
    }

    fn idle(&self, addr: &str) -> Option<Sender> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.get_mut(addr)?;
        while let Some(s) = list.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_back(&self, addr: &str, s: Sender) {
        if s.is_closed() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let list = pool.entry(addr.to_string()).or_default();
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    async fn connect(&self, addr: &str) -> Result<Sender, ClientError> {
        let fail = |why: String| ClientError::Connect {
            addr: addr.to_string(),
            why,
        };
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_string()).map_err(|e| fail(e.to_string()))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}
