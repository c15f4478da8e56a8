//! Which node a certificate speaks for.
//!
//! Any certificate the cluster CA signed gets through the TLS handshake:
//! nodes', and the client certificates raftctl and curl users hold. The
//! peer port takes only *node* certificates, and a node only under the
//! address it is a member at:
//!
//! - a node certificate has both the serverAuth and the clientAuth
//!   extended key usage (nodes accept and dial), and one or more
//!   subjectAltName URIs `raftstack://node/HOST:PORT`, each a peer address
//!   its holder may be a member at;
//! - `raftstack://node/HOST:*` allows every port on `HOST`: what a test
//!   certificate shared by the nodes of a one-machine cluster carries
//!   (every node's key is on the same disk there anyway);
//! - a dialler's `Hello` names a node id; the accepting side looks up
//!   that member's peer address in its configuration and refuses the
//!   connection unless the certificate allows it. The dialler checks the
//!   same of the node it reached, for the address it dialled.

use crate::NetError;
use tokio_rustls::rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The subjectAltName URI prefix that marks a node certificate.
pub const NODE_URI_PREFIX: &str = "raftstack://node/";

/// The peer addresses a node certificate allows (`host:port` or
/// `host:*`), as its URIs name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    addrs: Vec<String>,
}

impl NodeIdentity {
    /// Whether a member at `addr` (`host:port`) may present this
    /// certificate. Hosts compare without regard to case; a port of `*`
    /// matches any.
    pub fn allows(&self, addr: &str) -> bool {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return false;
        };
        self.addrs.iter().any(|a| match a.rsplit_once(':') {
            Some((h, p)) => h.eq_ignore_ascii_case(host) && (p == "*" || p == port),
            None => false,
        })
    }

    /// The addresses (or `host:*` patterns) allowed, for messages.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }
}

/// Reads a peer's node identity from its end-entity certificate; a
/// certificate that is not a node's (no node URI, or not for both server
/// and client auth) is refused, saying why.
pub fn node_identity(cert: &CertificateDer<'_>) -> Result<NodeIdentity, NetError> {
    let refuse = |why: &str| NetError::Handshake(format!("not a node certificate: {why}"));
    let (_, x509) = X509Certificate::from_der(cert.as_ref())
        .map_err(|_| refuse("it does not parse as X.509"))?;
    let subject = x509.subject().to_string();
    let eku = x509
        .extended_key_usage()
        .map_err(|_| refuse("its extended key usage does not parse"))?;
    let both = eku.is_some_and(|e| e.value.any || (e.value.server_auth && e.value.client_auth));
    if !both {
        return Err(refuse(&format!(
            "{subject} is not for both TLS server and client auth"
        )));
    }
    let addrs = uris_under(&x509, NODE_URI_PREFIX)
        .map_err(|_| refuse("its subjectAltName does not parse"))?;
    if addrs.is_empty() {
        return Err(refuse(&format!(
            "{subject} has no subjectAltName URI {NODE_URI_PREFIX}HOST:PORT"
        )));
    }
    Ok(NodeIdentity { addrs })
}

/// What follows `prefix` in each of a certificate's subjectAltName URIs
/// that starts with it; `Err` if its subjectAltName does not parse.
fn uris_under(x509: &X509Certificate<'_>, prefix: &str) -> Result<Vec<String>, ()> {
    let san = x509.subject_alternative_name().map_err(|_| ())?;
    Ok(san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) => u.strip_prefix(prefix),
            _ => None,
        })
        .map(str::to_string)
        .collect())
}

/// The subjectAltName URI prefix naming a command-port client's role
/// (`raftstack://role/admin`, `readwrite` or `readonly`).
pub const ROLE_URI_PREFIX: &str = "raftstack://role/";
/// The subjectAltName URI prefix limiting a client to a KV namespace
/// (`raftstack://ns/NAME`, repeatable).
pub const NS_URI_PREFIX: &str = "raftstack://ns/";

/// What a command-port client's certificate says about it: the role and
/// namespaces its URIs name, and the node identity if it is a node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate's subject, for messages.
    pub subject: String,
    /// Every role URI's role (more than one is the caller's to refuse).
    pub roles: Vec<String>,
    /// The namespaces its namespace URIs limit it to (all if none).
    pub namespaces: Vec<String>,
    /// Set for a node certificate (`node_identity`).
    pub node: Option<NodeIdentity>,
}

/// Reads a command-port client's identity from its end-entity certificate.
pub fn client_identity(cert: &CertificateDer<'_>) -> Result<ClientIdentity, NetError> {
    let bad = |why: &str| NetError::Handshake(format!("client certificate: {why}"));
    let (_, x509) =
        X509Certificate::from_der(cert.as_ref()).map_err(|_| bad("it does not parse as X.509"))?;
    let under =
        |prefix| uris_under(&x509, prefix).map_err(|()| bad("its subjectAltName does not parse"));
    Ok(ClientIdentity {
        subject: x509.subject().to_string(),
        roles: under(ROLE_URI_PREFIX)?,
        namespaces: under(NS_URI_PREFIX)?,
        node: node_identity(cert).ok(),
    })
}

/// The identity of the peer at the other end of a handshake: its
/// end-entity certificate is the first one it presented.
pub(crate) fn of_peer(certs: Option<&[CertificateDer<'_>]>) -> Result<NodeIdentity, NetError> {
    let first = certs
        .and_then(|c| c.first())
        .ok_or_else(|| NetError::Handshake("the peer presented no certificate".into()))?;
    node_identity(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose as Eku, KeyPair, SanType};

    fn cert(uris: &[&str], eku: Vec<Eku>) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        for u in uris {
            p.subject_alt_names
                .push(SanType::URI(u.to_string().try_into().unwrap()));
        }
        p.extended_key_usages = eku;
        p.self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .clone()
    }

    fn both() -> Vec<Eku> {
        vec![Eku::ServerAuth, Eku::ClientAuth]
    }

    #[test]
    fn a_client_certificate_names_its_role_and_namespaces() {
        let c = cert(
            &[
                "raftstack://role/readwrite",
                "raftstack://ns/a",
                "raftstack://ns/b",
            ],
            vec![Eku::ClientAuth],
        );
        let id = client_identity(&c).unwrap();
        assert_eq!(id.roles, ["readwrite"]);
        assert_eq!(id.namespaces, ["a", "b"]);
        assert!(id.node.is_none());
        let n = client_identity(&cert(&["raftstack://node/h:1"], both())).unwrap();
        assert!(n.roles.is_empty() && n.node.is_some_and(|n| n.allows("h:1")));
    }

    #[test]
    fn exact_addresses_and_host_patterns() {
        let id = node_identity(&cert(
            &[
                "raftstack://node/10.0.0.1:7001",
                "raftstack://node/LocalHost:*",
            ],
            both(),
        ))
        .unwrap();
        assert!(id.allows("10.0.0.1:7001"));
        assert!(!id.allows("10.0.0.1:7002"));
        assert!(!id.allows("10.0.0.2:7001"));
        assert!(id.allows("localhost:9"));
        assert!(!id.allows("127.0.0.1:9"));
        assert!(!id.allows("localhost"));
    }

    #[test]
    fn client_and_unmarked_certificates_are_refused() {
        let client = node_identity(&cert(&[], vec![Eku::ClientAuth])).unwrap_err();
        assert!(client.to_string().contains("server and client"), "{client}");
        let marked_client =
            node_identity(&cert(&["raftstack://node/h:*"], vec![Eku::ClientAuth])).unwrap_err();
        assert!(marked_client.to_string().contains("server and client"));
        let unmarked = node_identity(&cert(&["https://example.invalid/"], both())).unwrap_err();
        assert!(unmarked.to_string().contains(NODE_URI_PREFIX), "{unmarked}");
        let garbage = node_identity(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]));
        assert!(garbage.is_err());
        assert!(of_peer(None).is_err());
    }
}
