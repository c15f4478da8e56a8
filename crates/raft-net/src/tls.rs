//! Mutual TLS set-up from PEM files: every connection, both ways, presents
//! a certificate chaining to the cluster CA, and only TLS 1.3 is spoken.

use crate::NetError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig, version};

/// Where a node's TLS material lives.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA certificate every member and client certificate is checked
    /// against (PEM).
    pub ca: PathBuf,
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `cargo xtask certs` writes into `dir`: the shared node
    /// certificate, for a member on any port of localhost or 127.0.0.1.
    pub fn node_in(dir: &Path) -> Self {
        TlsFiles {
            ca: dir.join("transport-ca.pem"),
            cert: dir.join("transport-consensus.crt"),
            key: dir.join("transport-consensus.key"),
        }
    }

    /// The certificate `cargo xtask certs --node ADDR` writes into `dir`
    /// for a member at exactly `addr`: `node-HOST_PORT.crt` and `.key`
    /// (with the CA of `node_in`).
    pub fn bound_to(dir: &Path, addr: &str) -> Self {
        let stem = format!("node-{}", addr.replace([':', '[', ']', '/'], "_"));
        TlsFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            ..Self::node_in(dir)
        }
    }

    /// What a member at `addr` presents: its own certificate when `dir`
    /// holds one (`bound_to`), else the shared one (`node_in`).
    pub fn for_member(dir: &Path, addr: &str) -> Self {
        let own = Self::bound_to(dir, addr);
        if own.cert.exists() {
            own
        } else {
            Self::node_in(dir)
        }
    }
}

/// Server and client configurations sharing one identity and one CA.
#[derive(Clone)]
pub struct TlsSetup {
    /// For accepting: presents this node's certificate, requires a client
    /// certificate from the CA.
    pub server: Arc<ServerConfig>,
    /// For dialling: presents this node's certificate, checks the peer's.
    pub client: Arc<ClientConfig>,
}

/// ring's TLS 1.3 suites, AES-128-GCM first: as safe as AES-256 for
/// this use and cheaper per byte, which is most of the transport's cost.
fn provider() -> Arc<CryptoProvider> {
    let mut p = ring::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != tokio_rustls::rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

fn cert_error(path: &Path, reason: impl Into<String>) -> NetError {
    NetError::CertFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|e| cert_error(path, format!("cannot read: {e}")))
}

/// Every certificate in a PEM file; an error if there is none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(cert_error(path, "holds no certificate"));
    }
    Ok(certs)
}

/// What to add to pyraftlog's openssl recipe (`openssl x509 -req`, which
/// without `-extfile` makes a version 1 certificate with no extensions).
pub const OPENSSL_EXTFILE: &str = "-extfile <(printf '%s\\n' \
     'subjectAltName=DNS:localhost,IP:127.0.0.1,URI:raftstack://node/127.0.0.1:*' \
     'extendedKeyUsage=serverAuth,clientAuth')";

/// A certificate chain for this side of a TLS connection: its first
/// certificate must be X.509 version 3, which rustls requires, so that it
/// can carry a subjectAltName.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let chain = load_certs(path)?;
    let (_, leaf) = X509Certificate::from_der(&chain[0])
        .map_err(|e| cert_error(path, format!("not an X.509 certificate: {e}")))?;
    if leaf.version().0 < 2 {
        return Err(cert_error(
            path,
            format!(
                "is an X.509 version 1 certificate: it has no extensions, so no \
                 subjectAltName, and TLS refuses it. `openssl x509 -req` makes one unless \
                 given the extensions; sign the request again adding {OPENSSL_EXTFILE} \
                 (certs/README.md has the whole recipe), or run `cargo xtask certs`"
            ),
        ));
    }
    Ok(chain)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, NetError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| cert_error(path, format!("not a PEM key file: {e}")))?
        .ok_or_else(|| cert_error(path, "holds no private key"))
}

/// A root store of the CA certificates in a PEM file.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| cert_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The command port's server configuration: the node's certificate, and
/// client certificates checked against the CA; required unless
/// `require_client_cert` is false (then checked only when presented).
pub fn command_port_config(
    files: &TlsFiles,
    require_client_cert: bool,
) -> Result<Arc<ServerConfig>, NetError> {
    let roots = load_roots(&files.ca)?;
    let chain = load_chain(&files.cert)?;
    let key = load_key(&files.key)?;
    let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider());
    if !require_client_cert {
        b = b.allow_unauthenticated();
    }
    let verifier = b
        .build()
        .map_err(|e| cert_error(&files.ca, e.to_string()))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            cert_error(
                &files.key,
                format!("does not go with {}: {e}", files.cert.display()),
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client configuration for tools talking to a command port: trusts
/// `ca`, and presents `identity` (certificate, key) when given.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, NetError> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13])?
        .with_root_certificates(load_roots(ca)?);
    Ok(Arc::new(match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(load_chain(cert)?, load_key(key)?)
            .map_err(|e| cert_error(key, format!("does not go with {}: {e}", cert.display())))?,
        None => b.with_no_client_auth(),
    }))
}

/// Checks that `files` hold a node certificate a member at `addr` may
/// present (`identity.rs`), so a node whose certificate its peers would
/// refuse says so at start.
pub fn check_member_cert(files: &TlsFiles, addr: &str) -> Result<(), NetError> {
    let chain = load_chain(&files.cert)?;
    let who = crate::identity::node_identity(&chain[0])
        .map_err(|e| cert_error(&files.cert, e.to_string()))?;
    if who.allows(addr) {
        return Ok(());
    }
    Err(cert_error(
        &files.cert,
        format!(
            "is for a member at {:?}, not at {addr} (`cargo xtask certs --node {addr}` \
             issues one; docs/operations.md says how with openssl)",
            who.addrs()
        ),
    ))
}

impl TlsSetup {
    /// Loads and checks the files and builds both configurations (TLS 1.3
    /// only); a clear error for a file that cannot serve.
    pub fn load(files: &TlsFiles) -> Result<Self, NetError> {
        let roots = load_roots(&files.ca)?;
        let chain = load_chain(&files.cert)?;
        let key = load_key(&files.key)?;
        let mismatch = |e: tokio_rustls::rustls::Error| {
            cert_error(
                &files.key,
                format!("does not go with {}: {e}", files.cert.display()),
            )
        };
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| cert_error(&files.ca, e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(mismatch)?;
        let mut client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(mismatch)?;
        // Every connection is a full handshake: no tickets, no resumption.
        server.send_tls13_tickets = 0;
        client.resumption = tokio_rustls::rustls::client::Resumption::disabled();
        Ok(TlsSetup {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_certificate_is_refused_saying_what_it_lacks_and_how_to_add_it() {
        // Made by pyraftlog's recipe: `openssl x509 -req` without -extfile.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/openssl-v1.crt");
        assert_eq!(load_certs(&path).expect("a PEM certificate").len(), 1);
        let msg = load_chain(&path).expect_err("refused").to_string();
        for part in ["version 1", "subjectAltName", "-extfile", "certs/README.md"] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
    }
}
