//! Test certificates made at test time (nothing private is committed): a
//! CA that signs the server's certificate (for 127.0.0.1) and a client
//! certificate, a second, unrelated CA with its own client certificate, and
//! the web config and clients that use them.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority that can issue leaf certificates.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).expect("self-signed CA");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf certificate and its key (PEM) for `sans`, for a server or a
    /// client.
    pub(crate) fn issue(&self, name: &str, sans: &[&str], client: bool) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(sans).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &self.issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// The files of one test PKI, in a directory: `ca.crt`, `server.{crt,key}`,
/// `client.{crt,key}` (signed by `ca`), and `rogue-client.{crt,key}`
/// (signed by an unrelated CA).
pub(crate) struct Pki {
    pub dir: PathBuf,
    pub ca: TestCa,
}

impl Pki {
    pub(crate) fn create(dir: &Path) -> Pki {
        let ca = TestCa::new("tessera test CA");
        let rogue = TestCa::new("another CA");
        let write = |name: &str, (cert, key): (String, String)| {
            std::fs::write(dir.join(format!("{name}.crt")), cert).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
        };
        std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
        write(
            "server",
            ca.issue("tessera", &["127.0.0.1", "localhost"], false),
        );
        write("client", ca.issue("prometheus", &[], true));
        write("rogue-client", rogue.issue("prometheus", &[], true));
        Pki {
            dir: dir.to_path_buf(),
            ca,
        }
    }

    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A web config with TLS (client certificates verified when given) and
    /// `users` (name, password) hashed with bcrypt at `cost`.
    pub(crate) fn web_config(&self, users: &[(&str, &str)], cost: u32) -> String {
        let mut s = String::from(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
        );
        if !users.is_empty() {
            s.push_str("basic_auth_users:\n");
            for (u, p) in users {
                s.push_str(&format!("  {u}: '{}'\n", bcrypt::hash(p, cost).unwrap()));
            }
        }
        s
    }

    /// An HTTPS client trusting the test CA, presenting the client
    /// certificate `client` (`"client"`, `"rogue-client"`) when given.
    pub(crate) fn agent(&self, client: Option<&str>) -> ureq::Agent {
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(self.ca.cert_pem.as_bytes()).unwrap();
        let cert = client.map(|name| {
            let c = std::fs::read(self.dir.join(format!("{name}.crt"))).unwrap();
            let k = std::fs::read(self.dir.join(format!("{name}.key"))).unwrap();
            ClientCert::new_with_certs(
                &[Certificate::from_pem(&c).unwrap()],
                PrivateKey::from_pem(&k).unwrap(),
            )
        });
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&[ca]))
            .client_cert(cert)
            .build();
        super::agent_config().tls_config(tls).build().into()
    }
}

/// The `Authorization` header value for `user:password`.
pub(crate) fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
