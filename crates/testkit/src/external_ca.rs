//! A PKI from outside Vigil, made with the real `openssl` command line: a customer's root CA
//! (and intermediate), the certificates it signs, and self-signed device certificates.
//!
//! Every file lives in one directory under a fixed name: `root.crt`/`root.key`,
//! `inter.crt`/`inter.key`, and `NAME.crt`/`NAME.key`/`NAME.csr` for the certificates made
//! here. Leaves are TLS server and client certificates for the subject alternative names
//! given (`IP:127.0.0.1,DNS:localhost`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::require_tool;

/// How long one openssl run may take (an `s_client` to a server that never answers must not
/// hang the test).
const OPENSSL_LIMIT_SECS: &str = "30";

const CA_EXTENSIONS: &str =
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";

/// Runs openssl in `dir` with stdin closed, bounded by coreutils `timeout`, and returns what
/// it did (success or not).
pub fn openssl_output(dir: &Path, args: &[&str]) -> Output {
    Command::new(require_tool("timeout"))
        .arg(OPENSSL_LIMIT_SECS)
        .arg(require_tool("openssl"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs")
}

/// Runs openssl in `dir` and returns its stdout; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = openssl_output(dir, args);
    assert!(
        out.status.success(),
        "openssl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The private key of a certificate made here.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A new ECDSA P-256 key.
    P256,
    /// A new RSA key of this many bits.
    Rsa(u32),
    /// An existing unencrypted key file (relative to the PKI directory, or absolute).
    File(&'a Path),
}

/// How long a certificate made here is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity<'a> {
    /// From now on, for this many days.
    Days(u32),
    /// From one instant to another, as `openssl ca` takes them (`YYYYMMDDHHMMSSZ`): past,
    /// expired or not yet valid certificates.
    Between(&'a str, &'a str),
}

/// A certificate made here and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority outside Vigil, kept in `dir`.
#[derive(Debug)]
pub struct ExternalCa {
    pub dir: PathBuf,
    /// `inter` when an intermediate signs, else `root`.
    signer: &'static str,
}

impl ExternalCa {
    /// A self-signed root CA named `cn` (`root.crt`, `root.key`, ten years) in `dir`, which is
    /// created if needed; the root signs what this CA issues.
    pub fn root(dir: &Path, cn: &str, key: Key) -> Self {
        std::fs::create_dir_all(dir).expect("create the external CA's directory");
        if let Key::File(file) = key {
            std::fs::copy(dir.join(file), dir.join("root.key")).expect("copy the root's key");
        }
        let mut args = vec!["req", "-x509"];
        let newkey = new_key_args(key, "root.key");
        args.extend(newkey.iter().map(String::as_str));
        let subject = format!("/CN={cn}");
        args.extend([
            "-out",
            "root.crt",
            "-days",
            "3650",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
        ExternalCa {
            dir: dir.to_path_buf(),
            signer: "root",
        }
    }

    /// A P-256 root named `root_cn` and an intermediate named `inter_cn` signed by it
    /// (`inter.crt`, `inter.key`, 1000 days); the intermediate signs what this CA issues.
    pub fn with_intermediate(dir: &Path, root_cn: &str, inter_cn: &str) -> Self {
        let mut ca = Self::root(dir, root_cn, Key::P256);
        ca.request("inter", Key::P256, inter_cn);
        ca.sign_as(
            "root",
            "inter.csr",
            "inter.crt",
            Validity::Days(1000),
            CA_EXTENSIONS,
        );
        ca.signer = "inter";
        ca
    }

    /// The root certificate file.
    pub fn root_cert(&self) -> PathBuf {
        self.dir.join("root.crt")
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.read("root.crt")
    }

    /// A key (`name.key` unless `key` names one) and a CSR for it (`name.csr`) with the
    /// subject `/CN=cn`; returns the key file.
    pub fn request(&self, name: &str, key: Key, cn: &str) -> PathBuf {
        request(&self.dir, name, key, cn, None)
    }

    /// A CSR `csr` with the subject `/CN=cn` for the existing key file `key`, encrypted
    /// with `passphrase` if given.
    pub fn request_for_key(&self, key: &str, passphrase: Option<&str>, csr: &str, cn: &str) {
        let subject = format!("/CN={cn}");
        let mut args = vec!["req", "-new", "-key", key, "-out", csr, "-subj", &subject];
        let passin = passphrase.map(|p| format!("pass:{p}"));
        if let Some(p) = &passin {
            args.extend(["-passin", p.as_str()]);
        }
        openssl(&self.dir, &args);
    }

    /// Signs the CSR file `csr` as a TLS server and client certificate for `san`; writes
    /// `out`.
    pub fn sign(&self, csr: &str, out: &str, validity: Validity, san: &str) {
        self.sign_as(self.signer, csr, out, validity, &leaf_extensions(san));
    }

    /// [`ExternalCa::sign`] with other extensions: `extensions` holds `-extfile` lines
    /// (`extendedKeyUsage=clientAuth`...).
    pub fn sign_with_extensions(&self, csr: &str, out: &str, validity: Validity, extensions: &str) {
        self.sign_as(self.signer, csr, out, validity, extensions);
    }

    /// [`ExternalCa::sign`] by the root, even when an intermediate signs otherwise.
    pub fn sign_with_root(&self, csr: &str, out: &str, validity: Validity, san: &str) {
        self.sign_as("root", csr, out, validity, &leaf_extensions(san));
    }

    /// A new certificate `name.crt` for `san` with the subject `/CN=name`, signed by this CA.
    pub fn leaf(&self, name: &str, key: Key, san: &str, validity: Validity) -> Leaf {
        let key = self.request(name, key, name);
        let cert = format!("{name}.crt");
        self.sign(&format!("{name}.csr"), &cert, validity, san);
        Leaf {
            cert: self.dir.join(cert),
            key,
        }
    }

    /// The leaf certificate file `leaf`, then the intermediate (if any) and the root, as an
    /// admin concatenates them.
    pub fn chain(&self, leaf: &str) -> String {
        let mut pem = self.read(leaf);
        if self.signer == "inter" {
            pem.push_str(&self.read("inter.crt"));
        }
        pem.push_str(&self.read("root.crt"));
        pem
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Signs `csr` with the CA `signer` (`root` or `inter`) and the extension lines `ext`.
    fn sign_as(&self, signer: &str, csr: &str, out: &str, validity: Validity, ext: &str) {
        let ext_file = format!("{out}.ext");
        std::fs::write(self.dir.join(&ext_file), ext).expect("write the extensions file");
        let (ca_cert, ca_key) = (format!("{signer}.crt"), format!("{signer}.key"));
        match validity {
            Validity::Days(days) => {
                let days = days.to_string();
                openssl(
                    &self.dir,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        csr,
                        "-CA",
                        &ca_cert,
                        "-CAkey",
                        &ca_key,
                        "-CAcreateserial",
                        "-days",
                        &days,
                        "-extfile",
                        &ext_file,
                        "-out",
                        out,
                    ],
                );
            }
            // `openssl x509` (before 3.4) only counts days from now; `openssl ca` takes any
            // dates, through a minimal CA database.
            Validity::Between(start, end) => {
                let config = self.ca_database(signer);
                openssl(
                    &self.dir,
                    &[
                        "ca",
                        "-batch",
                        "-notext",
                        "-config",
                        &config,
                        "-in",
                        csr,
                        "-out",
                        out,
                        "-extfile",
                        &ext_file,
                        "-startdate",
                        start,
                        "-enddate",
                        end,
                    ],
                );
            }
        }
    }

    /// The `openssl ca` configuration for `signer` (created on first use).
    fn ca_database(&self, signer: &str) -> String {
        let db = self.dir.join(format!("{signer}-db"));
        let config = format!("{signer}-ca.cnf");
        if !db.exists() {
            std::fs::create_dir_all(&db).expect("create the CA database");
            std::fs::write(db.join("index.txt"), "").expect("write index.txt");
            std::fs::write(db.join("serial"), "1000\n").expect("write serial");
            let text = format!(
                "[ca]\ndefault_ca = test\n[test]\ndir = {db}\ndatabase = {db}/index.txt\n\
                 new_certs_dir = {db}\nserial = {db}/serial\ncertificate = {d}/{signer}.crt\n\
                 private_key = {d}/{signer}.key\ndefault_md = sha256\npolicy = any\n\
                 unique_subject = no\n[any]\ncommonName = supplied\n",
                db = db.display(),
                d = self.dir.display(),
            );
            std::fs::write(self.dir.join(&config), text).expect("write the CA configuration");
        }
        config
    }
}

/// A key (`name.key` unless `key` names one) and a certificate request for it (`name.csr`) in
/// `dir`, with the subject `/CN=cn` and, if given, the subject alternative names `san` (as a
/// device or a customer's server asks for its certificate); returns the key file.
pub fn request(dir: &Path, name: &str, key: Key, cn: &str, san: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the request's directory");
    let key_file = match key {
        Key::File(path) => path.to_string_lossy().into_owned(),
        _ => format!("{name}.key"),
    };
    let mut args = vec!["req", "-new"];
    let newkey = new_key_args(key, &key_file);
    args.extend(newkey.iter().map(String::as_str));
    let (csr, subject) = (format!("{name}.csr"), format!("/CN={cn}"));
    args.extend(["-out", &csr, "-subj", &subject]);
    let san = san.map(|s| format!("subjectAltName={s}"));
    if let Some(s) = &san {
        args.extend(["-addext", s.as_str()]);
    }
    openssl(dir, &args);
    dir.join(key_file)
}

/// A new P-256 key in `dir`/`file` as `openssl genpkey` writes it encrypted: PKCS#8 with
/// AES-256, `-----BEGIN ENCRYPTED PRIVATE KEY-----`, under `passphrase`.
pub fn encrypted_p256_key(dir: &Path, file: &str, passphrase: &str) {
    let pass = format!("pass:{passphrase}");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            &pass,
            "-out",
            file,
        ],
    );
}

/// A self-signed certificate `name.crt` (key `name.key`) with the subject `/CN=cn` and the
/// subject alternative names `san`, in `dir`.
pub fn self_signed(dir: &Path, name: &str, key: Key, cn: &str, san: &str, days: u32) -> Leaf {
    std::fs::create_dir_all(dir).expect("create the certificate's directory");
    let (key_file, cert) = match key {
        Key::File(path) => (path.to_string_lossy().into_owned(), format!("{name}.crt")),
        _ => (format!("{name}.key"), format!("{name}.crt")),
    };
    let mut args = vec!["req", "-x509"];
    let newkey = new_key_args(key, &key_file);
    args.extend(newkey.iter().map(String::as_str));
    let (days, subject, san) = (
        days.to_string(),
        format!("/CN={cn}"),
        format!("subjectAltName={san}"),
    );
    args.extend([
        "-out", &cert, "-days", &days, "-subj", &subject, "-addext", &san,
    ]);
    openssl(dir, &args);
    Leaf {
        cert: dir.join(cert),
        key: dir.join(key_file),
    }
}

/// A TLS server and client certificate's extensions for the subject alternative names `san`.
fn leaf_extensions(san: &str) -> String {
    format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"
    )
}

/// `openssl req` arguments that make the key `file` (or use it, for [`Key::File`]).
fn new_key_args(key: Key, file: &str) -> Vec<String> {
    let new = |spec: &[&str]| {
        let mut v: Vec<String> = vec!["-newkey".into()];
        v.extend(spec.iter().map(|s| s.to_string()));
        v.extend(["-nodes".into(), "-keyout".into(), file.into()]);
        v
    };
    match key {
        Key::P256 => new(&["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        Key::Rsa(bits) => new(&[&format!("rsa:{bits}")]),
        Key::File(_) => vec!["-key".into(), file.into()],
    }
}
