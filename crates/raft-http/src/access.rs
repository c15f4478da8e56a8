//! Who may do what on the command port: every route's need, and the role
//! a client's certificate gives it (docs/operations.md, "Roles").
//!
//! A certificate names its role in a subjectAltName URI
//! (`raftstack://role/admin`, `readwrite` or `readonly`) and may limit it
//! to KV namespaces (`raftstack://ns/NAME`, repeatable). A node
//! certificate (`raftstack://node/...`, no role URI) is a `node`: it reads
//! status and data, asks to add or rebuild itself, and sends the requests
//! it forwards for its own clients, which it authorized itself. A
//! certificate with no role at all is refused, as is a route no rule
//! covers: `routes::ROUTES` gives every route its need.

use super::http::ApiError;
use hyper::StatusCode;
use raft_net::{ClientIdentity, NodeIdentity};
use tokio_rustls::rustls::pki_types::CertificateDer;

/// What a client may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Status and data reads.
    ReadOnly,
    /// Reads, and KV writes and log appends.
    ReadWrite,
    /// Everything: membership, leadership, modes, namespaces.
    Admin,
}

impl Role {
    /// The role named `s` (`readonly`, `readwrite`, `admin`), as a
    /// certificate or `--client-certs` names it.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "readonly" => Some(Role::ReadOnly),
            "readwrite" => Some(Role::ReadWrite),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's name, as [`Role::parse`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "readonly",
            Role::ReadWrite => "readwrite",
            Role::Admin => "admin",
        }
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The cluster's own state: status, configuration, metrics.
    Status,
    /// Reading data.
    Read(Scope),
    /// Changing data.
    Write(Scope),
    /// Operating the cluster: membership, leadership, modes, namespaces.
    Admin,
    /// Adding (or rebuilding) a member: admin, or a node for itself.
    AddMember,
}

/// What data a request touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One KV namespace (its `?ns=`).
    Namespace,
    /// All of it: the log, every namespace.
    Everything,
}

/// Who is asking, from the connection's certificate.
#[derive(Clone, Debug)]
pub enum Principal {
    /// A client with a role, limited to `namespaces` if any.
    Client {
        /// What the client may do.
        role: Role,
        /// The namespaces it may touch; all if empty.
        namespaces: Vec<String>,
        /// Its certificate's subject, for logs and errors.
        subject: String,
    },
    /// A member node.
    Node(NodeIdentity),
    /// A certificate the port takes no request from, and why.
    Refused(String),
}

impl Principal {
    /// The principal of a connection: its client certificate's, or with
    /// none (`--client-certs optional`), `anonymous`'s.
    pub fn of(certs: Option<&[CertificateDer<'_>]>, anonymous: Option<Role>) -> Principal {
        let Some(cert) = certs.and_then(|c| c.first()) else {
            return match anonymous {
                Some(role) => Principal::Client {
                    role,
                    namespaces: Vec::new(),
                    subject: "a client without a certificate".into(),
                },
                None => Principal::Refused("no client certificate".into()),
            };
        };
        match raft_net::identity::client_identity(cert) {
            Ok(id) => Self::of_identity(id),
            Err(e) => Principal::Refused(e.to_string()),
        }
    }

    fn of_identity(id: ClientIdentity) -> Principal {
        match (id.roles.as_slice(), id.node) {
            ([], Some(node)) => Principal::Node(node),
            ([], None) => Principal::Refused(format!(
                "the certificate of {} names no role: issue it with a subjectAltName URI \
                 raftstack://role/admin, readwrite or readonly (cargo xtask certs --client NAME \
                 --role ROLE; docs/operations.md, \"Roles\")",
                id.subject
            )),
            ([one], _) => match Role::parse(one) {
                Some(role) => Principal::Client {
                    role,
                    namespaces: id.namespaces,
                    subject: id.subject,
                },
                None => Principal::Refused(format!(
                    "the certificate of {} names the unknown role {one:?} (admin, readwrite, \
                     readonly)",
                    id.subject
                )),
            },
            (_, _) => Principal::Refused(format!(
                "the certificate of {} names more than one role",
                id.subject
            )),
        }
    }

    /// The role shown in status and errors.
    pub fn describe(&self) -> String {
        match self {
            Principal::Client {
                role, namespaces, ..
            } if namespaces.is_empty() => role.name().to_string(),
            Principal::Client {
                role, namespaces, ..
            } => format!("{} in namespaces {}", role.name(), namespaces.join(",")),
            Principal::Node(_) => "node".into(),
            Principal::Refused(_) => "none".into(),
        }
    }
}

/// The request being authorized.
pub struct Ask<'a> {
    /// The role the route needs.
    pub need: Need,
    /// Its `?ns=` (the default namespace if none).
    pub namespace: &'a str,
    /// Its `?address=` (for `AddMember`).
    pub address: Option<&'a str>,
    /// Another node forwarded it, having authorized it for its client.
    pub forwarded: bool,
}

/// Whether `p` may do `ask`; a 403 naming what it needs if not.
pub fn authorize(p: &Principal, ask: &Ask<'_>) -> Result<(), ApiError> {
    let deny = |why: String| Err(ApiError::new(StatusCode::FORBIDDEN, why));
    let (role, namespaces) = match p {
        Principal::Refused(why) => return deny(format!("refused: {why}")),
        Principal::Node(_) if ask.forwarded => return Ok(()),
        Principal::Node(id) => {
            return match ask.need {
                Need::Status | Need::Read(_) => Ok(()),
                Need::AddMember if ask.address.is_some_and(|a| id.allows(a)) => Ok(()),
                _ => deny(
                    "a node certificate reads, forwards its clients' requests and adds itself; \
                     this needs the admin role"
                        .into(),
                ),
            };
        }
        Principal::Client {
            role, namespaces, ..
        } => (*role, namespaces),
    };
    let needed = match ask.need {
        Need::Status | Need::Read(_) => Role::ReadOnly,
        Need::Write(_) => Role::ReadWrite,
        Need::Admin | Need::AddMember => Role::Admin,
    };
    if role < needed {
        return deny(format!(
            "this needs the {} role; the certificate gives {}",
            needed.name(),
            p.describe()
        ));
    }
    if namespaces.is_empty() {
        return Ok(());
    }
    match ask.need {
        Need::Status => Ok(()),
        Need::Read(Scope::Namespace) | Need::Write(Scope::Namespace)
            if namespaces.iter().any(|n| n == ask.namespace) =>
        {
            Ok(())
        }
        Need::Read(Scope::Namespace) | Need::Write(Scope::Namespace) => deny(format!(
            "namespace {:?} is not among the certificate's ({})",
            ask.namespace,
            namespaces.join(",")
        )),
        _ => deny(format!(
            "this touches every namespace; the certificate is limited to {}",
            namespaces.join(",")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(role: Role, ns: &[&str]) -> Principal {
        Principal::Client {
            role,
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
            subject: "t".into(),
        }
    }

    fn ask(need: Need, ns: &str) -> Ask<'_> {
        Ask {
            need,
            namespace: ns,
            address: None,
            forwarded: false,
        }
    }

    #[test]
    fn each_role_gets_what_it_is_for() {
        let read = Need::Read(Scope::Namespace);
        let write = Need::Write(Scope::Namespace);
        let ro = client(Role::ReadOnly, &[]);
        assert!(authorize(&ro, &ask(read, "default")).is_ok());
        assert!(authorize(&ro, &ask(Need::Status, "default")).is_ok());
        let e = authorize(&ro, &ask(write, "default")).unwrap_err();
        assert!(e.message.contains("readwrite"), "{}", e.message);
        let rw = client(Role::ReadWrite, &[]);
        assert!(authorize(&rw, &ask(write, "default")).is_ok());
        assert!(authorize(&rw, &ask(Need::Admin, "default")).is_err());
        assert!(authorize(&rw, &ask(Need::AddMember, "default")).is_err());
        let admin = client(Role::Admin, &[]);
        assert!(authorize(&admin, &ask(Need::Admin, "default")).is_ok());
    }

    #[test]
    fn namespaces_limit_a_role_to_their_keys() {
        let p = client(Role::ReadWrite, &["a"]);
        assert!(authorize(&p, &ask(Need::Write(Scope::Namespace), "a")).is_ok());
        assert!(authorize(&p, &ask(Need::Write(Scope::Namespace), "b")).is_err());
        assert!(authorize(&p, &ask(Need::Read(Scope::Everything), "a")).is_err());
        assert!(authorize(&p, &ask(Need::Status, "b")).is_ok());
    }

    #[test]
    fn a_certificate_with_no_one_known_role_is_refused_saying_why() {
        let id = |roles: &[&str]| ClientIdentity {
            subject: "CN=app".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            namespaces: vec![],
            node: None,
        };
        for (roles, why) in [
            (&[][..], "names no role"),
            (&["root"][..], "unknown role \"root\""),
            (&["admin", "readonly"][..], "more than one role"),
        ] {
            match Principal::of_identity(id(roles)) {
                Principal::Refused(m) => assert!(m.contains(why), "{m}"),
                other => panic!("{roles:?}: {other:?}"),
            }
        }
        assert!(matches!(
            Principal::of_identity(id(&["readonly"])),
            Principal::Client {
                role: Role::ReadOnly,
                ..
            }
        ));
        // No certificate: the anonymous role, or refused without one.
        assert!(matches!(Principal::of(None, None), Principal::Refused(_)));
        assert!(matches!(
            Principal::of(None, Some(Role::ReadOnly)),
            Principal::Client { .. }
        ));
    }

    #[test]
    fn no_role_is_refused_everything() {
        let p = Principal::Refused("no role".into());
        assert!(authorize(&p, &ask(Need::Status, "default")).is_err());
    }
}
