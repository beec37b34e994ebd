//! Benchmark: the audit probing 200 endpoints on loopback against `nmap -sT` of the same
//! ports, measured in the same run.
//!
//! Three processes, so that nobody's CPU is counted as somebody else's:
//! - the test server (`--serve DIR`): one rustls server process listening on 400 ports: set A
//!   (200 ports, each with its own ECDSA P-256 certificate issued by a test CA, as a site
//!   after `vigil pki`), set B (200 ports sharing one self-signed certificate, as cameras with
//!   a factory default);
//! - the audit (`--audit PORTS [--ca FILE] [--no-versions]`): a fresh process doing what
//!   `vigil audit` does (system CA bundle, runtime, /proc listener comparison, probes,
//!   findings, text report) and printing its phase timings on stderr;
//! - nmap (`nmap -sT -n -Pn -p PORTS 127.0.0.1`).
//!
//! Wall time is measured from spawn to exit of each process; CPU time (user + system) of the
//! audit and nmap comes from wait4's rusage, the server's from its threads' schedstat.
//!
//! Usage: cargo run --release -p vigil-netaudit --example audit_bench -- [--runs N] [--out FILE.md]
//!        [--certs DIR]
//! Needs `openssl` (test certificates) and `nmap` on PATH.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vigil_netaudit::{self as audit, ProbeOptions};
use vigil_netpolicy::Endpoint;
use vigil_testkit::external_ca::{ExternalCa, Key, Validity, self_signed};

const ENDPOINTS: usize = 200;

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Test CA (`root.crt`), 200 CA-issued leaves `leafN.crt` sharing the key `leaf0.key` (set
/// A) and one self-signed certificate `shared.crt` (set B).
fn make_certs(dir: &Path) {
    let ca = ExternalCa::root(dir, "bench CA", Key::P256);
    let ip = "IP:127.0.0.1";
    self_signed(dir, "shared", Key::P256, "factory default", ip, 365);
    // One key for the leaves keeps generation quick; every leaf is still a distinct
    // certificate, so the audit parses and verifies 200 different chains.
    let key = ca.leaf("leaf0", Key::P256, ip, Validity::Days(365)).key;
    for i in 1..ENDPOINTS {
        ca.leaf(
            &format!("leaf{i}"),
            Key::File(&key),
            ip,
            Validity::Days(365),
        );
    }
}

fn server_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

/// The test server: prints `A ports` and `B ports`, serves until stdin closes.
fn serve(dir: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut configs: Vec<Arc<rustls::ServerConfig>> = (0..ENDPOINTS)
        .map(|i| server_config(&dir.join(format!("leaf{i}.crt")), &dir.join("leaf0.key")))
        .collect();
    let shared = server_config(&dir.join("shared.crt"), &dir.join("shared.key"));
    configs.extend(std::iter::repeat_n(shared, ENDPOINTS));
    let ports: Vec<u16> = rt.block_on(async {
        let mut ports = Vec::new();
        for cfg in configs {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(l.local_addr().unwrap().port());
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), acceptor.accept(s)).await;
                    });
                }
            });
        }
        ports
    });
    let list = |p: &[u16]| {
        p.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "A {}", list(&ports[..ENDPOINTS])).unwrap();
    writeln!(out, "B {}", list(&ports[ENDPOINTS..])).unwrap();
    out.flush().unwrap();
    drop(out);
    // Serve until the driver closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(rt);
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

/// The audit process: what `vigil audit --ca FILE` does, with phase timings on stderr.
fn audit_child(ports: &str) {
    let t0 = Instant::now();
    let ca: Vec<PathBuf> = arg("--ca").map(PathBuf::from).into_iter().collect();
    let mut opts = ProbeOptions::with_ca_files(true, &ca).expect("CA files");
    opts.check_versions = !flag("--no-versions");
    let t_cas = t0.elapsed();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t_rt = t0.elapsed();
    let endpoints: Vec<Endpoint> = ports
        .split(',')
        .map(|p| {
            let p: u16 = p.parse().unwrap();
            Endpoint::new(format!("device:{p}"), "127.0.0.1", p, "https")
        })
        .collect();
    let n = endpoints.len();
    let concurrency = opts.effective_concurrency(n);
    let config = vigil_config::Config::with_data_dir("/var/lib/vigil");
    let expected = audit::listeners::expected_from_config(&config);
    let t_start = t0.elapsed();
    let report = rt
        .block_on(audit::run(endpoints, Some(&expected), &opts))
        .unwrap();
    let t_run = t0.elapsed();
    let text = report.to_text();
    std::io::stdout().write_all(text.as_bytes()).unwrap();
    let t_end = t0.elapsed();
    assert!(
        report.probes.iter().all(|p| p.tls.is_some()),
        "every endpoint must complete TLS"
    );
    let col = |f: fn(&audit::Timing) -> u64| {
        median_u64(report.probes.iter().map(|p| f(&p.timing)).collect())
    };
    let max = |f: fn(&audit::Timing) -> u64| {
        report
            .probes
            .iter()
            .map(|p| f(&p.timing))
            .max()
            .unwrap_or(0)
    };
    let cert_sum: u64 = report.probes.iter().map(|p| p.timing.cert_us).sum();
    let high = report
        .findings
        .iter()
        .filter(|f| f.severity == audit::Severity::High)
        .count();
    eprintln!(
        "PHASES cas={} runtime={} setup={} run={} render={} total={} \
         connect_med={} connect_max={} versions_med={} versions_max={} chain_med={} chain_max={} \
         probe_med={} probe_max={} queued_max={} cert_sum={} concurrency={concurrency} high={high} endpoints={n}",
        us(t_cas),
        us(t_rt - t_cas),
        us(t_start - t_rt),
        us(t_run - t_start),
        us(t_end - t_run),
        us(t_end),
        col(|t| t.connect_us),
        max(|t| t.connect_us),
        col(|t| t.versions_us),
        max(|t| t.versions_us),
        col(|t| t.chain_us),
        max(|t| t.chain_us),
        col(|t| t.total_us),
        max(|t| t.total_us),
        max(|t| t.queued_us),
        cert_sum,
    );
}

/// CPU time of every thread of a running process, from schedstat (nanoseconds).
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    stderr: String,
    stdout: String,
}

/// Runs a process to its end; wall time from spawn to exit, CPU from wait4's rusage.
// The child is reaped by wait4 (which also returns its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command, keep_stdout: bool) -> Measured {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    cmd.stdout(if keep_stdout {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout).unwrap();
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; the child is ours and not yet reaped
    // (std's Child is never waited on after this).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: see above; status and ru outlive the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status),
        "child died: {status}; stderr: {stderr}"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        stderr,
        stdout,
    }
}

#[derive(Default)]
struct Series {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    server_cpu: Vec<Duration>,
    phases: Vec<Vec<(String, u64)>>,
}

impl Series {
    fn median(v: &[Duration]) -> Duration {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    }
    fn wall(&self) -> Duration {
        Self::median(&self.wall)
    }
    fn cpu(&self) -> Duration {
        Self::median(&self.cpu)
    }
    fn server_cpu(&self) -> Duration {
        Self::median(&self.server_cpu)
    }
    fn phase(&self, key: &str) -> u64 {
        median_u64(
            self.phases
                .iter()
                .filter_map(|p| p.iter().find(|(k, _)| k == key).map(|(_, v)| *v))
                .collect(),
        )
    }
}

fn parse_phases(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("PHASES "))
        .expect("the audit child prints its phases")
        .split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn main() {
    if let Some(dir) = arg("--serve") {
        return serve(Path::new(&dir));
    }
    if let Some(ports) = arg("--audit") {
        return audit_child(&ports);
    }
    let load_at_start = loadavg();
    let runs: usize = arg("--runs").map_or(9, |r| r.parse().expect("--runs N"));
    let out = arg("--out");
    let tmp = tempfile::tempdir().expect("temp dir");
    // --certs DIR keeps the certificates (and lets a profiler run the server and the audit
    // by hand); otherwise they live in a temporary directory.
    let dir = arg("--certs").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    if !dir.join(format!("leaf{}.crt", ENDPOINTS - 1)).exists() {
        eprintln!("creating {} test certificates...", ENDPOINTS + 2);
        std::fs::create_dir_all(&dir).expect("certificate directory");
        make_certs(&dir);
    }
    let exe = std::env::current_exe().unwrap();
    let mut server = Command::new(&exe)
        .arg("--serve")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process");
    let server_pid = server.id();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let set_a = lines.next().unwrap().unwrap()["A ".len()..].to_string();
    let set_b = lines.next().unwrap().unwrap()["B ".len()..].to_string();
    let ca = dir.join("root.crt");

    let audit_cmd = |ports: &str, versions: bool| {
        let mut c = Command::new(&exe);
        c.arg("--audit").arg(ports).arg("--ca").arg(&ca);
        if !versions {
            c.arg("--no-versions");
        }
        c
    };
    let nmap_cmd = |ports: &str| {
        let mut c = Command::new("nmap");
        c.args(["-sT", "-n", "-Pn", "-p", ports, "127.0.0.1"]);
        c
    };
    let names = [
        "nmap A",
        "audit A full",
        "audit A no-versions",
        "nmap B",
        "audit B full",
    ];
    let mut series: Vec<Series> = names.iter().map(|_| Series::default()).collect();
    // One warm-up round (page cache, first connections), then the measured rounds; the
    // tools alternate within each round so machine load hits them alike.
    for round in 0..=runs {
        for (i, name) in names.iter().enumerate() {
            let (mut cmd, is_nmap) = match i {
                0 => (nmap_cmd(&set_a), true),
                1 => (audit_cmd(&set_a, true), false),
                2 => (audit_cmd(&set_a, false), false),
                3 => (nmap_cmd(&set_b), true),
                _ => (audit_cmd(&set_b, true), false),
            };
            let s0 = process_cpu_ns(server_pid);
            let m = measure(&mut cmd, is_nmap);
            let s1 = process_cpu_ns(server_pid);
            if is_nmap {
                let open = m
                    .stdout
                    .lines()
                    .filter(|l| l.contains("/tcp") && l.contains("open"))
                    .count();
                assert_eq!(open, ENDPOINTS, "{name}: nmap must see every port open");
            }
            if round == 0 {
                continue;
            }
            let s = &mut series[i];
            s.wall.push(m.wall);
            s.cpu.push(m.cpu);
            s.server_cpu
                .push(Duration::from_nanos(s1.saturating_sub(s0)));
            if !is_nmap {
                s.phases.push(parse_phases(&m.stderr));
            }
        }
    }
    drop(server.stdin.take());
    let _ = server.wait();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let msu = |u: u64| u as f64 / 1000.0;
    let nmap_a = series[0].wall();
    let nmap_b = series[3].wall();
    let row = |label: &str, what: &str, s: &Series, nmap: Duration| {
        format!(
            "| {label} | {what} | {:.1} ms | {:.2} | {:.1} ms | {:.1} ms |\n",
            ms(s.wall()),
            ms(s.wall()) / ms(nmap),
            ms(s.cpu()),
            ms(s.server_cpu()),
        )
    };
    let mut report = format!(
        "## audit of {ENDPOINTS} endpoints on loopback vs nmap -sT\n\n\
         Machine: {} cores (shared with other work; 1-minute load average at the start: {}, at the end: {}). \
         Median of {runs} rounds after one warm-up round, all in one invocation of \
         `bench/audit/run.sh`; within a round the tools run one after the other on the same ports.\n\n\
         Processes: the test server (rustls, its own process), the audit (a fresh process doing \
         what `vigil audit --ca CA` does: loads the system CA bundle and the CA, starts the runtime, \
         compares /proc listeners with the manifest, probes, writes the text report) and \
         `nmap -sT -n -Pn -p PORTS 127.0.0.1`. Wall time is spawn to exit; CPU is user + system \
         of that process (wait4 rusage); server CPU is what the test server spent meanwhile.\n\n\
         Set A: 200 ports, each with its own ECDSA P-256 certificate issued by the test CA \
         (trusted through `--ca`; no findings). Set B: 200 ports sharing one self-signed \
         certificate (a factory default: self-signed, untrusted and shared findings).\n\n\
         | tool | per endpoint | wall (median) | ratio vs nmap | CPU | server CPU |\n|---|---|---|---|---|---|\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_at_start,
        loadavg(),
    );
    report += &row("nmap, set A", "TCP connect", &series[0], nmap_a);
    report += &row(
        "audit, set A",
        "TCP connect; ClientHellos for TLS up to 1.2 (chain read in clear, TLS 1.3 support from the downgrade sentinel) and up to 1.1, on 2 connections at once; certificate checks",
        &series[1],
        nmap_a,
    );
    report += &row(
        "audit, set A, no version probes",
        "TCP connect, full rustls handshake, certificate checks",
        &series[2],
        nmap_a,
    );
    report += &row("nmap, set B", "TCP connect", &series[3], nmap_b);
    report += &row(
        "audit, set B",
        "as set A (one shared certificate)",
        &series[4],
        nmap_b,
    );
    let s = &series[1];
    report += &format!(
        "\nWhere the audit's time goes (set A, full, medians over rounds; per-endpoint marks are \
         from the probe's start):\n\n\
         | phase | time |\n|---|---|\n\
         | load system CA bundle + test CA | {:.1} ms |\n\
         | start the tokio runtime | {:.2} ms |\n\
         | build endpoints and expected listeners | {:.2} ms |\n\
         | resolve, probe and /proc listener walk (concurrent) | {:.1} ms |\n\
         | write the report | {:.2} ms |\n\
         | total inside the process | {:.1} ms |\n\
         | per endpoint: TCP connected (median / max) | {:.2} / {:.2} ms |\n\
         | per endpoint: ClientHello probes answered (median / max) | {:.2} / {:.2} ms |\n\
         | per endpoint: certificate chain in hand (median / max) | {:.2} / {:.2} ms |\n\
         | per endpoint: probe done (median / max) | {:.2} / {:.2} ms |\n\
         | waiting for a concurrency slot (max) | {:.2} ms |\n\
         | certificate parsing and trust checks, summed over endpoints | {:.1} ms |\n\
         | endpoints probed at once | {} |\n",
        msu(s.phase("cas")),
        msu(s.phase("runtime")),
        msu(s.phase("setup")),
        msu(s.phase("run")),
        msu(s.phase("render")),
        msu(s.phase("total")),
        msu(s.phase("connect_med")),
        msu(s.phase("connect_max")),
        msu(s.phase("versions_med")),
        msu(s.phase("versions_max")),
        msu(s.phase("chain_med")),
        msu(s.phase("chain_max")),
        msu(s.phase("probe_med")),
        msu(s.phase("probe_max")),
        msu(s.phase("queued_max")),
        msu(s.phase("cert_sum")),
        s.phase("concurrency"),
    );
    report += "\nHow the audit keeps up with a port scanner while doing TLS work:\n\n\
        - every endpoint is probed at once (bounded by the open-file limit); TLS work starts \
        only after the TCP connect succeeded, and closed ports cost nothing more;\n\
        - each ClientHello is sent right after connect(2) returns (on loopback the TCP \
        handshake is complete by then) instead of after the runtime reports the connection, \
        and the probe tasks are spawned from inside the runtime and store their results \
        without waking the caller: no reactor round trip or thread wake-up per connection;\n\
        - certificate checks (CPU only) wait until every probe has sent its ClientHellos, so \
        the server has all its work from the start instead of waiting behind the checks of \
        early answers;\n\
        - no handshake is completed in the common case: a ClientHello offering up to TLS 1.2 \
        returns the certificate chain in clear, and a TLS 1.3 server marks that answer with \
        the RFC 8446 downgrade sentinel; a second ClientHello offering up to TLS 1.1 runs on \
        its own connection at the same time. The client does no public-key operation but the \
        chain's signature check, and the server one signature per endpoint. A server without \
        the sentinel gets a TLS 1.3 HelloRetryRequest probe; a TLS 1.3-only server one full \
        rustls handshake (the `no version probes` row shows that path's cost for every \
        endpoint);\n\
        - the TLS client takes randomness from the kernel: aws-lc seeds its DRBG from CPU \
        jitter entropy on first use, about 20 ms of CPU and 50+ ms of wall time per process \
        here;\n\
        - probe connections end with a reset (no TIME_WAIT), listeners come from netlink \
        sock_diag rather than /proc/net/tcp (which walks the whole connection hash), the \
        /proc fd walk runs on its own thread during the probes, reads links relative to each \
        /proc/PID/fd directory, skips the audit's own process (its sockets are recorded \
        before the probes open hundreds) and stops once every listener's owner is found, \
        the CA bundle is decoded with a fast base64 decoder (certificates are public), and \
        certificates are judged once per distinct chain (set B).\n\n\
        What remains: per endpoint two TCP connections (nmap: one), the kernel's loopback \
        work for them (charged to whoever sends), one ECDSA verification of the chain (about \
        60 us of CPU each here, a third of the audit's CPU in set A), and the test server's TLS \
        work (one ECDSA signature per endpoint), which shares the same 2 cores. nmap's CPU is \
        mostly its own start-up (about 27 ms for a single port here). Under machine load the \
        wall-time ratio follows the CPU ratio (audit + server CPU vs nmap CPU): the audit \
        needs both cores, nmap one.\n";
    print!("{report}");
    if let Some(path) = out {
        std::fs::write(&path, format!("# Audit benchmark\n\n{report}")).expect("write report");
        eprintln!("wrote {path}");
    }
}
