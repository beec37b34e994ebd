//! Cost of refusing a blocked address (`Access::check`) against one Argon2id verification with
//! the production (OWASP) parameters: the reason blocked addresses are refused before any
//! password work. Run optimised for meaningful numbers:
//!
//! ```sh
//! cargo run --release -p vigil-access --example blocked_check_bench
//! ```

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use vigil_access::{
    Access, AccessConfig, BlockPolicy, Credentials, HashParams, IdsConfig, hash_password,
    verify_password,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let access = Access::open(
        &dir.path().join("access.db"),
        AccessConfig {
            ids: IdsConfig {
                notification_threshold: 5,
                block: BlockPolicy::UntilRestart,
                ..IdsConfig::default()
            },
            ..AccessConfig::default()
        },
    )?;
    let attacker: IpAddr = "198.51.100.66".parse()?;
    let bystander: IpAddr = "198.51.100.67".parse()?;
    // Block the attacker the real way: five failed logins.
    for _ in 0..5 {
        let _ = access.login(
            &Credentials {
                username: "nobody",
                password: "not-the-password",
                totp: None,
            },
            attacker,
        );
    }
    assert!(
        access.check(attacker).is_err(),
        "attacker should be blocked"
    );
    // Fill the block table so the lookup is not trivially small.
    for i in 0..10_000u32 {
        access.ids().restore_block(vigil_access::BlockInfo {
            addr: IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
            since: access.now(),
            until: None,
            failures: 5,
        });
    }

    let n = 2_000_000u32;
    let t = Instant::now();
    for _ in 0..n {
        black_box(access.check(black_box(attacker)).is_err());
    }
    let blocked_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        black_box(access.check(black_box(bystander)).is_ok());
    }
    let open_ns = t.elapsed().as_nanos() as f64 / f64::from(n);

    let phc = hash_password("correct horse battery staple", HashParams::OWASP)?;
    let rounds = 20u32;
    let t = Instant::now();
    for _ in 0..rounds {
        black_box(verify_password(
            black_box("wrong horse battery staple"),
            &phc,
        ));
    }
    let verify = t.elapsed() / rounds;
    let verify_ns = verify.as_nanos() as f64;

    println!("blocked check (refused): {blocked_ns:.0} ns");
    println!("check (not blocked):     {open_ns:.0} ns");
    println!(
        "Argon2id verify (m=19456 KiB, t=2, p=1): {:.1} ms",
        verify.as_secs_f64() * 1e3
    );
    println!(
        "ratio verify / blocked check: {:.0}x",
        verify_ns / blocked_ns.max(1.0)
    );
    Ok(())
}
