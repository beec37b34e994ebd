//! HTTP Digest (RFC 7616) in front of ONVIF against an independent peer:
//! tests/peers/onvif_digest.py (Python's http.server, responses checked the RFC way, nonce
//! counts that must grow). The client answers the challenge once per refusal, prefers
//! SHA-256, takes MD5 where that is all, says a wrong password is wrong, and never answers
//! over plain HTTP unless the device was allowed it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil_media::ingest_tls::TrustStore;
use vigil_onvif::{Client, Credentials, OnvifError, Options, Target};

struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(password: &str, algorithms: &[&str]) -> Peer {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/peers/onvif_digest.py"
        );
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script)
            .args(["--password", password, "--serial", "SN-DIGEST"]);
        for a in algorithms {
            cmd.args(["--algorithm", a]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tests/peers/onvif_digest.py with /usr/bin/python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY port=")
            .unwrap_or_else(|| panic!("no READY line: {line:?}"))
            .parse()
            .unwrap();
        Peer { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/onvif/device_service", self.port)
    }

    /// Stops the peer and returns its `AUTH ...` lines.
    fn stop(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let _ = self.child.wait();
        err.lines().map(str::to_owned).collect()
    }
}

fn client(url: &str, password: &str, allow_plain_http: bool) -> Client {
    let mut options = Options::new(TrustStore::new(&[], false));
    options.timeout = Duration::from_secs(5);
    options.allow_plain_http = allow_plain_http;
    Client::new(
        Target::parse(url).unwrap(),
        Some(Credentials::new("admin", password)),
        options,
    )
}

#[tokio::test]
async fn sha256_is_answered_once_per_refusal_and_reused_with_a_growing_count() {
    let peer = Peer::start("pw-digest", &["MD5", "SHA-256"]);
    let c = client(&peer.url(), "pw-digest", true);
    let info = c.device_information().await.unwrap();
    assert_eq!(info.serial_number, "SN-DIGEST");
    assert_eq!(info.manufacturer, "digest-peer");
    // A second call answers the kept challenge up front (nonce count 2): no new 401.
    let again = c.device_information().await.unwrap();
    assert_eq!(again.serial_number, "SN-DIGEST");
    let log = peer.stop();
    // The clock question (refused, then answered), then two identity questions.
    assert_eq!(
        log,
        [
            "AUTH missing",
            "AUTH ok SHA-256",
            "AUTH ok SHA-256",
            "AUTH ok SHA-256"
        ],
        "{log:?}"
    );
}

#[tokio::test]
async fn md5_alone_is_answered() {
    let peer = Peer::start("pw-md5", &["MD5"]);
    let info = client(&peer.url(), "pw-md5", true)
        .device_information()
        .await
        .unwrap();
    assert_eq!(info.serial_number, "SN-DIGEST");
    assert!(peer.stop().iter().any(|l| l == "AUTH ok MD5"));
}

#[tokio::test]
async fn a_wrong_password_is_refused_after_one_retry() {
    let peer = Peer::start("right", &["SHA-256"]);
    let e = client(&peer.url(), "wrong", true)
        .device_information()
        .await
        .unwrap_err();
    assert!(matches!(e, OnvifError::Unauthorized), "{e:?}");
    let log = peer.stop();
    // The clock question without, then with a response; the identity question with the
    // kept challenge, then once more with the one its refusal sent; no further tries.
    assert_eq!(
        log,
        [
            "AUTH missing",
            "AUTH bad response",
            "AUTH bad response",
            "AUTH bad response"
        ],
        "{log:?}"
    );
}

#[tokio::test]
async fn plain_http_gets_no_digest_unless_allowed() {
    let peer = Peer::start("pw", &["SHA-256"]);
    let e = client(&peer.url(), "pw", false)
        .device_information()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OnvifError::DigestOverPlainHttp { addr } if addr.starts_with("127.0.0.1:")),
        "{e:?}"
    );
    assert!(e.to_string().contains("--allow-http"), "{e}");
    let log = peer.stop();
    assert!(log.iter().all(|l| l == "AUTH missing"), "{log:?}");
}
