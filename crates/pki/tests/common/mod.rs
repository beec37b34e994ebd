//! Test helpers: running the real `openssl` tool and building an external PKI with it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs openssl in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = openssl_raw(dir, args);
    assert!(
        out.status.success(),
        "openssl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn openssl_raw(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed")
}

pub fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

/// An external PKI made with openssl: root CA → intermediate CA → leaves.
pub struct ExternalPki {
    pub dir: PathBuf,
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
const LEAF_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:cam.example,IP:127.0.0.1,DNS:localhost\n";

impl ExternalPki {
    /// Creates root.crt/key (self-signed, P-256) and inter.crt/key (signed by root).
    pub fn new(dir: &Path) -> Self {
        write(dir, "ca.ext", CA_EXT.as_bytes());
        write(dir, "leaf.ext", LEAF_EXT.as_bytes());
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=Test External Root",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "inter.key",
                "-out",
                "inter.csr",
                "-subj",
                "/CN=Test Intermediate",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "inter.csr",
                "-CA",
                "root.crt",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-days",
                "1000",
                "-extfile",
                "ca.ext",
                "-out",
                "inter.crt",
            ],
        );
        ExternalPki {
            dir: dir.to_path_buf(),
        }
    }

    /// Signs `csr` (file in dir) with the intermediate; writes `out`.
    pub fn sign_with_intermediate(&self, csr: &str, out: &str, days: u32) {
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                "inter.crt",
                "-CAkey",
                "inter.key",
                "-CAcreateserial",
                "-days",
                &days.to_string(),
                "-extfile",
                "leaf.ext",
                "-out",
                out,
            ],
        );
    }

    /// Signs `csr` directly with the root; writes `out`.
    pub fn sign_with_root(&self, csr: &str, out: &str, days: u32) {
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                "root.crt",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-days",
                &days.to_string(),
                "-extfile",
                "leaf.ext",
                "-out",
                out,
            ],
        );
    }

    /// Makes a CSR for an existing key file (optionally passphrase protected).
    pub fn csr_for_key(&self, key: &str, pass: Option<&str>, csr: &str) {
        let passin = pass.map(|p| format!("pass:{p}"));
        let mut args = vec![
            "req",
            "-new",
            "-key",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=cam.example",
        ];
        if let Some(p) = &passin {
            args.extend(["-passin", p.as_str()]);
        }
        openssl(&self.dir, &args);
    }

    /// leaf + intermediate + root, as an admin would concatenate them.
    pub fn full_chain(&self, leaf: &str) -> Vec<u8> {
        [
            read(&self.dir, leaf),
            read(&self.dir, "inter.crt"),
            read(&self.dir, "root.crt"),
        ]
        .concat()
    }
}
