//! `cargo xtask certs`: pyraftlog's openssl recipe for a test CA and device
//! certificate, done with rcgen so no openssl binary is needed; plus a
//! client certificate for tools and tests.
//!
//! Like the recipe, keys are made once: a second run keeps the CA (and the
//! device and client keys) and re-issues the certificates; `--force` starts
//! over with a new CA.

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the files.
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// Make a new CA (and new keys) even if one exists.
    #[arg(long)]
    force: bool,
    /// Also issue a certificate bound to this one peer address
    /// (`host:port`), as `node-HOST_PORT.crt` and `.key`; raft-mock takes
    /// it over the shared one when its `-n` address is that (repeatable).
    #[arg(long = "node", value_name = "HOST:PORT")]
    nodes: Vec<String>,
    /// Also issue a command-port client certificate `client-NAME.crt` and
    /// `.key` with the role `--role` (docs/operations.md, "Roles").
    #[arg(long, value_name = "NAME", requires = "role")]
    client: Option<String>,
    /// The client certificate's role: admin, readwrite or readonly.
    #[arg(long, value_parser = ["admin", "readwrite", "readonly"], requires = "client")]
    role: Option<String>,
    /// Limit the client certificate to this KV namespace (repeatable).
    #[arg(long = "ns", value_name = "NAMESPACE", requires = "client")]
    namespaces: Vec<String>,
}

pub const CA_KEY: &str = "transport-ca.key";
pub const CA_CERT: &str = "transport-ca.pem";
pub const NODE_KEY: &str = "transport-consensus.key";
pub const NODE_CSR: &str = "transport-consensus.csr";
pub const NODE_CERT: &str = "transport-consensus.crt";
pub const CLIENT_KEY: &str = "transport-client.key";
pub const CLIENT_CERT: &str = "transport-client.crt";

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut made = make_certs(&args.out, args.force)?;
    for addr in &args.nodes {
        made.push(make_node_cert(&args.out, addr)?);
    }
    if let (Some(name), Some(role)) = (&args.client, &args.role) {
        made.push(make_client_cert(&args.out, name, role, &args.namespaces)?);
    }
    for line in made {
        println!("{line}");
    }
    Ok(())
}

/// Writes the certificate set into `dir`; returns what it did, a line each.
pub fn make_certs(dir: &Path, force: bool) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut said = Vec::new();
    let now = OffsetDateTime::now_utc();

    // The CA: made once, as in the recipe ("Only do once").
    let (ca_key, ca_pem) = match (read(dir, CA_KEY)?, read(dir, CA_CERT)?) {
        (Some(k), Some(c)) if !force => {
            said.push(format!(
                "kept the existing CA in {} (--force makes a new one)",
                dir.display()
            ));
            (KeyPair::from_pem(&k).context("reading the CA key")?, c)
        }
        (Some(_), None) | (None, Some(_)) if !force => {
            bail!(
                "{} has only half of the CA ({CA_KEY}, {CA_CERT}); remove it or pass --force",
                dir.display()
            )
        }
        _ => {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::default();
            p.distinguished_name = name("raftstack test CA");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.not_before = now - Duration::days(1);
            p.not_after = now + Duration::days(1024);
            let cert = p.self_signed(&key)?;
            write(dir, CA_KEY, &key.serialize_pem())?;
            write(dir, CA_CERT, &cert.pem())?;
            said.push(format!("made a new CA: {}", dir.join(CA_CERT).display()));
            (key, cert.pem())
        }
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("reading the CA certificate")?;

    // The node ("device") certificate: CN=localhost, for localhost and
    // 127.0.0.1, usable as server and as client (nodes dial each other),
    // and a node on any port of either (`raft_net::identity`).
    let node_key = key_once(dir, NODE_KEY, force)?;
    let p = node_params(
        &["localhost", "127.0.0.1"],
        &["localhost:*", "127.0.0.1:*"],
        now,
    )?;
    write(dir, NODE_CSR, &p.serialize_request(&node_key)?.pem()?)?;
    write(dir, NODE_CERT, &p.signed_by(&node_key, &issuer)?.pem())?;
    said.push(format!(
        "issued {} (CN=localhost, SANs localhost and 127.0.0.1, a node on any of their ports)",
        dir.join(NODE_CERT).display()
    ));

    // A client certificate for raftctl, curl and tests: an admin.
    let client_key = key_once(dir, CLIENT_KEY, force)?;
    let p = client_params("raftstack client", "admin", &[], now)?;
    write(dir, CLIENT_CERT, &p.signed_by(&client_key, &issuer)?.pem())?;
    said.push(format!(
        "issued {} (role admin)",
        dir.join(CLIENT_CERT).display()
    ));
    Ok(said)
}

/// A command-port client certificate's parameters: its role and the
/// namespaces it is limited to (`raft_http::access`).
fn client_params(
    cn: &str,
    role: &str,
    namespaces: &[String],
    now: OffsetDateTime,
) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = name(cn);
    let uris = std::iter::once(format!("{}{role}", raft_net::identity::ROLE_URI_PREFIX)).chain(
        namespaces
            .iter()
            .map(|n| format!("{}{n}", raft_net::identity::NS_URI_PREFIX)),
    );
    for u in uris {
        p.subject_alt_names
            .push(SanType::URI(u.try_into().context("a role URI")?));
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(500);
    Ok(p)
}

/// The CA in `dir`, made by an earlier `cargo xtask certs`.
fn existing_issuer(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let (Some(ca_key), Some(ca_pem)) = (read(dir, CA_KEY)?, read(dir, CA_CERT)?) else {
        bail!(
            "{} holds no CA: run `cargo xtask certs` first",
            dir.display()
        );
    };
    let ca_key = KeyPair::from_pem(&ca_key).context("reading the CA key")?;
    Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("reading the CA certificate")
}

/// Issues `client-NAME.crt` (and its key, made once) in `dir`, from the CA
/// there, with `role`, limited to `namespaces` if any.
pub fn make_client_cert(
    dir: &Path,
    client: &str,
    role: &str,
    namespaces: &[String],
) -> anyhow::Result<String> {
    if client.is_empty()
        || !client
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bail!("--client {client:?}: use letters, digits, - _ and .");
    }
    let issuer = existing_issuer(dir)?;
    let key = key_once(dir, &format!("client-{client}.key"), false)?;
    let p = client_params(client, role, namespaces, OffsetDateTime::now_utc())?;
    let file = format!("client-{client}.crt");
    write(dir, &file, &p.signed_by(&key, &issuer)?.pem())?;
    let limit = if namespaces.is_empty() {
        String::new()
    } else {
        format!(", namespaces {}", namespaces.join(","))
    };
    Ok(format!(
        "issued {} (role {role}{limit})",
        dir.join(file).display()
    ))
}

/// A node certificate's parameters: DNS or IP names it is reached by,
/// and the peer addresses (`host:port` or `host:*`) it may be a member at.
fn node_params(
    names: &[&str],
    members: &[&str],
    now: OffsetDateTime,
) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    for m in members {
        let uri = format!("{}{m}", raft_net::identity::NODE_URI_PREFIX);
        p.subject_alt_names
            .push(SanType::URI(uri.try_into().context("a node URI")?));
    }
    p.distinguished_name = name(names.first().copied().unwrap_or("raftstack node"));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(500);
    Ok(p)
}

/// Issues `node-HOST_PORT.crt` (and its key, made once) in `dir`, from the
/// CA there: a certificate for a member at exactly `addr`.
pub fn make_node_cert(dir: &Path, addr: &str) -> anyhow::Result<String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        bail!("{addr:?} is not HOST:PORT");
    };
    port.parse::<u16>()
        .with_context(|| format!("{addr:?}: the port is not a number"))?;
    let issuer = existing_issuer(dir)?;
    let files = raft_net::TlsFiles::bound_to(dir, addr);
    let key_file = file_name(&files.key);
    let key = key_once(dir, &key_file, false)?;
    let p = node_params(
        &[host.trim_matches(['[', ']'])],
        &[addr],
        OffsetDateTime::now_utc(),
    )?;
    write(
        dir,
        &file_name(&files.cert),
        &p.signed_by(&key, &issuer)?.pem(),
    )?;
    Ok(format!(
        "issued {} (a node at {addr} only)",
        files.cert.display()
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "GB");
    dn.push(DnType::CommonName, cn);
    dn
}

fn key_once(dir: &Path, file: &str, force: bool) -> anyhow::Result<KeyPair> {
    match read(dir, file)? {
        Some(pem) if !force => KeyPair::from_pem(&pem).with_context(|| format!("reading {file}")),
        _ => {
            let key = KeyPair::generate()?;
            write(dir, file, &key.serialize_pem())?;
            Ok(key)
        }
    }
}

fn read(dir: &Path, file: &str) -> anyhow::Result<Option<String>> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write(dir: &Path, file: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if file.ends_with(".key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn have(tool: &str) -> bool {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(tool)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn second_run_keeps_the_ca_and_force_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_certs(dir.path(), false).expect("first run");
        let ca = std::fs::read(dir.path().join(CA_CERT)).expect("ca");
        let said = make_certs(dir.path(), false).expect("second run");
        assert!(said[0].contains("kept the existing CA"), "{said:?}");
        assert_eq!(std::fs::read(dir.path().join(CA_CERT)).expect("ca"), ca);
        make_certs(dir.path(), true).expect("forced run");
        assert_ne!(std::fs::read(dir.path().join(CA_CERT)).expect("ca"), ca);
    }

    #[test]
    fn openssl_accepts_the_chain() {
        if !have("openssl") {
            eprintln!("openssl not installed; skipping the cross-check");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        make_certs(dir.path(), false).expect("certs");
        for cert in [NODE_CERT, CLIENT_CERT] {
            let out = Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(dir.path().join(CA_CERT))
                .arg(dir.path().join(cert))
                .output()
                .expect("run openssl");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.trim_end().ends_with("OK"),
                "{cert}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let csr = Command::new("openssl")
            .args(["req", "-noout", "-verify", "-in"])
            .arg(dir.path().join(NODE_CSR))
            .output()
            .expect("run openssl");
        assert!(
            csr.status.success(),
            "the CSR verifies: {}",
            String::from_utf8_lossy(&csr.stderr)
        );
    }

    /// curl, as a client with the client certificate, completes a TLS 1.3
    /// handshake with a node's TLS set-up (the node then hangs up: curl
    /// speaks HTTP, not the peer protocol).
    #[test]
    fn curl_accepts_the_node_certificate() {
        if !have("curl") {
            eprintln!("curl not installed; skipping the cross-check");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        make_certs(dir.path(), false).expect("certs");
        let tls = raft_net::TlsSetup::load(&raft_net::TlsFiles::node_in(dir.path())).expect("load");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        let server = rt.spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            acceptor.accept(tcp).await.is_ok()
        });
        let out = Command::new("curl")
            .args(["-sv", "--max-time", "10", "--cacert"])
            .arg(dir.path().join(CA_CERT))
            .arg("--cert")
            .arg(dir.path().join(CLIENT_CERT))
            .arg("--key")
            .arg(dir.path().join(CLIENT_KEY))
            .arg(format!("https://localhost:{port}/"))
            .output()
            .expect("run curl");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            rt.block_on(server).expect("server task"),
            "the server accepted curl's client certificate: {log}"
        );
        assert!(
            log.contains("TLSv1.3"),
            "curl negotiated TLS 1.3 and trusted the chain: {log}"
        );
    }
}
