//! `vigil server ...`: recording servers under a management server (docs/cluster.md). Thin
//! adapter over `vigil_app::cluster`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use vigil_config::Config;

#[derive(clap::Subcommand)]
pub enum ServerCommand {
    /// One-time enrolment tokens (management server).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Join a management server with a token (recording server): makes this server's key,
    /// sends a certificate request and stores the certificate the installation CA issues.
    Join {
        /// The management server's inter-server URL, e.g. https://mgmt.example:8444.
        url: String,
        /// File holding the token (`vigil server token create` printed it); never give a
        /// token on the command line, where other users can read it.
        #[arg(long)]
        token_file: PathBuf,
        /// Names and addresses the management server reaches this server by, for its
        /// certificate (repeatable); default: [management] hostnames of this configuration.
        #[arg(long = "address")]
        addresses: Vec<String>,
    },
    /// Recording servers, their state (online, last seen) and certificate expiry.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a recording server: its certificate is revoked and its connections closed.
    Remove { name: String },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token for a server called NAME; printed once, only its hash is kept.
    Create {
        name: String,
        /// How long the token stays valid (at most 7d).
        #[arg(long, default_value = "1h", value_parser = vigil_config::parse_duration)]
        expires: Duration,
        /// Write the token to this file (mode 0600) instead of printing it.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Tokens and whether they were used (never the tokens themselves).
    List {
        #[arg(long)]
        json: bool,
    },
}

fn time(t: time::OffsetDateTime) -> String {
    vigil_pki::rfc3339(t)
}

pub fn run(cmd: ServerCommand, cfg: &Config) -> anyhow::Result<()> {
    use vigil_app::cluster;
    match cmd {
        ServerCommand::Token(TokenCommand::Create {
            name,
            expires,
            output,
        }) => {
            let access = vigil_app::audit::open_access(cfg)?;
            let trail = vigil_app::audit::Trail::new(&access, vigil_app::audit::cli_actor());
            let token = cluster::create_token(cfg, &trail, &name, expires)?;
            match output {
                Some(path) => {
                    vigil_pki::write_secret_file(&path, format!("{}\n", token.token).as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!(
                        "Token {} for server {} written to {} (valid until {}, single use).",
                        token.id,
                        token.name,
                        path.display(),
                        time(token.expires)
                    );
                }
                None => {
                    println!("{}", token.token);
                    eprintln!(
                        "Token {} for server {} (valid until {}, single use). It is shown only now: put it in a file on the recording server (mode 0600) and run\n  vigil server join https://THIS-SERVER:{} --token-file FILE",
                        token.id,
                        token.name,
                        time(token.expires),
                        cfg.management.inter_server.bind.port()
                    );
                }
            }
            Ok(())
        }
        ServerCommand::Token(TokenCommand::List { json }) => {
            let tokens = cluster::tokens(cfg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(());
            }
            println!("{:<18} {:<20} {:<26} USED", "ID", "SERVER", "EXPIRES");
            for t in tokens {
                println!(
                    "{:<18} {:<20} {:<26} {}",
                    t.id,
                    t.name,
                    time(t.expires),
                    t.used.map(time).unwrap_or_else(|| "-".into())
                );
            }
            Ok(())
        }
        ServerCommand::Join {
            url,
            token_file,
            addresses,
        } => {
            let text = std::fs::read_to_string(&token_file)
                .with_context(|| format!("cannot read the token file {}", token_file.display()))?;
            let sans = if addresses.is_empty() {
                cfg.management.hostnames.clone()
            } else {
                addresses
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let member = rt.block_on(cluster::join(cfg, &url, &text, &sans))?;
            let expires = vigil_pki::CertInfo::from_der(
                &member.cert,
                vigil_pki::CertSource::Generated,
                vigil_pki::CertRole::Server,
                false,
            )
            .map(|i| time(i.not_after))
            .unwrap_or_default();
            println!(
                "Joined {} as {}; certificate valid until {expires}, kept in {}.",
                member.management,
                member.name,
                vigil_cluster::member::dir(&cfg.data_dir).display()
            );
            println!("Start recording with: vigil serve --role recording");
            Ok(())
        }
        ServerCommand::List { json } => {
            let servers = cluster::servers(cfg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&servers)?);
                return Ok(());
            }
            if servers.is_empty() {
                println!("No recording server has joined (vigil server token create NAME).");
                return Ok(());
            }
            println!(
                "{:<20} {:<8} {:<26} {:<26} {:<8} {:<10} ADDRESS",
                "NAME", "STATE", "LAST SEEN", "CERTIFICATE EXPIRES", "CAMERAS", "RECORDING"
            );
            for s in servers {
                let recording = s
                    .status
                    .as_ref()
                    .map(|st| {
                        format!(
                            "{}/{}",
                            st["cameras_recording"].as_u64().unwrap_or(0),
                            st["cameras_total"].as_u64().unwrap_or(0)
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<20} {:<8} {:<26} {:<26} {:<8} {:<10} {}",
                    s.name,
                    s.state,
                    s.last_seen.map(time).unwrap_or_else(|| "never".into()),
                    time(s.certificate_expires),
                    s.cameras,
                    recording,
                    s.address.unwrap_or_default()
                );
            }
            Ok(())
        }
        ServerCommand::Remove { name } => {
            let access = vigil_app::audit::open_access(cfg)?;
            let trail = vigil_app::audit::Trail::new(&access, vigil_app::audit::cli_actor());
            let s = cluster::remove_server(cfg, &trail, &name)?;
            println!(
                "Removed server {}: certificate {} revoked; a running management server closes its connections within a second.",
                s.name, s.certificate_sha256
            );
            Ok(())
        }
    }
}
