//! `vigil user|token|ids|audit ...`: local administration of users, API tokens, intrusion
//! detection blocks and the audit log, working directly on the management database (`access.db`, or
//! PostgreSQL with `[database] url`; whoever may open it is trusted; every change is audited as `cli:<os user>`). The logic lives in
//! `vigil-access`; this module only parses arguments and prints.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use vigil_access::{
    Access, AccessConfig, Actor, AuditKind, AuditQuery, CameraScope, ChainReport, NewToken,
    NewUser, Role, Timestamp,
};

/// The four command groups; flatten into the binary's top-level commands.
#[derive(Subcommand, Debug)]
pub enum AccessCommand {
    /// Users, roles and camera permissions.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens for integrations.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Intrusion detection: blocked addresses.
    #[command(subcommand)]
    Ids(IdsCommand),
    /// The hash-chained audit log (`vigil audit` is the network security audit).
    #[command(subcommand, name = "audit-log")]
    Audit(AuditCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user. Without --password-file a strong password is generated and printed once.
    Add {
        name: String,
        /// admin, operator, viewer or auditor.
        #[arg(long)]
        role: Role,
        /// A camera the user may use (repeat); none given: all cameras.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// File holding the password (first line).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (ends all their sessions). Without --password-file a strong
    /// password is generated and printed once.
    Passwd {
        name: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a user.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and only its hash is kept.
    Create {
        name: String,
        #[arg(long)]
        role: Role,
        /// A camera the token may use (repeat); none given: all cameras.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// Lifetime, e.g. 90d or 12h; default: until revoked.
        #[arg(long, value_parser = vigil_config::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum IdsCommand {
    /// Blocked addresses (as recorded by the server).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Lift the block on an address; the running server picks it up within seconds.
    Unblock { addr: IpAddr },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Show audit entries, oldest first.
    Query {
        /// From this time (inclusive), RFC 3339, e.g. 2024-05-01T00:00:00Z.
        #[arg(long, value_parser = parse_time)]
        from: Option<Timestamp>,
        /// Up to this time (exclusive).
        #[arg(long, value_parser = parse_time)]
        to: Option<Timestamp>,
        #[arg(long)]
        user: Option<String>,
        /// e.g. login_failed, export, permission_changed.
        #[arg(long)]
        kind: Option<AuditKind>,
        /// Source address (or `cli`).
        #[arg(long)]
        source: Option<String>,
        /// At most this many entries (the newest ones).
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per line, for a SIEM or an archive.
        #[arg(long)]
        jsonl: bool,
    },
    /// Check the hash chain; fails if an entry was edited, deleted or inserted.
    Verify,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| e.to_string())
}

fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let pw = text.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!pw.is_empty(), "password file {} is empty", path.display());
    Ok(pw)
}

fn scope(cameras: Vec<String>) -> CameraScope {
    if cameras.is_empty() {
        CameraScope::All
    } else {
        CameraScope::only(cameras)
    }
}

fn scope_text(s: &CameraScope) -> String {
    match s {
        CameraScope::All => "all".to_owned(),
        CameraScope::Only(set) if set.is_empty() => "none".to_owned(),
        CameraScope::Only(set) => set.iter().cloned().collect::<Vec<_>>().join(","),
    }
}

/// Runs a command with the deployment's access settings (IDS IPv6 prefix, hash cost...).
pub fn run_with_config(
    cmd: AccessCommand,
    target: &vigil_access::DatabaseTarget,
    config: AccessConfig,
) -> anyhow::Result<()> {
    let access = Access::open_target(target, config)
        .with_context(|| format!("cannot open {}", vigil_app::database::describe(target)))?;
    let actor = vigil_app::audit::cli_actor();
    let mut out = std::io::stdout().lock();
    match cmd {
        AccessCommand::User(c) => user(c, &access, &actor, &mut out),
        AccessCommand::Token(c) => token(c, &access, &actor, &mut out),
        AccessCommand::Ids(c) => ids(c, &access, &actor, &mut out),
        AccessCommand::Audit(c) => audit(c, &access, &mut out),
    }
}

fn user(
    cmd: UserCommand,
    access: &Access,
    actor: &Actor,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            cameras,
            password_file,
        } => {
            let password = password_file
                .as_deref()
                .map(read_password_file)
                .transpose()?;
            let generated = access.create_user(
                &NewUser {
                    username: name.clone(),
                    role,
                    cameras: scope(cameras),
                    password,
                },
                actor,
            )?;
            writeln!(out, "user {name} added with role {role}")?;
            if let Some(pw) = generated {
                writeln!(out, "password (shown once, store it now): {pw}")?;
            }
        }
        UserCommand::List { json } => {
            let users = access.list_users()?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&users)?)?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<9} {:<5} {:<8} {:<8} cameras",
                    "user", "role", "totp", "disabled", "sessions"
                )?;
                for u in users {
                    writeln!(
                        out,
                        "{:<24} {:<9} {:<5} {:<8} {:<8} {}",
                        u.username,
                        u.role,
                        if u.totp_enabled { "yes" } else { "no" },
                        if u.disabled { "yes" } else { "no" },
                        u.active_sessions,
                        scope_text(&u.cameras)
                    )?;
                }
            }
        }
        UserCommand::Passwd {
            name,
            password_file,
        } => {
            let password = password_file
                .as_deref()
                .map(read_password_file)
                .transpose()?;
            let generated = access.set_password(&name, password.as_deref(), actor)?;
            writeln!(out, "password of {name} changed; all their sessions ended")?;
            if let Some(pw) = generated {
                writeln!(out, "password (shown once, store it now): {pw}")?;
            }
        }
        UserCommand::Remove { name } => {
            access.remove_user(&name, actor)?;
            writeln!(out, "user {name} removed")?;
        }
    }
    Ok(())
}

fn token(
    cmd: TokenCommand,
    access: &Access,
    actor: &Actor,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            cameras,
            expires_in,
        } => {
            let t = access.create_token(
                &NewToken {
                    name,
                    role,
                    cameras: scope(cameras),
                    expires_in,
                },
                actor,
            )?;
            writeln!(out, "token {} created (role {role})", t.id)?;
            if let Some(e) = t.expires {
                writeln!(out, "expires {e}")?;
            }
            writeln!(out, "token (shown once, store it now): {}", t.token)?;
        }
        TokenCommand::List { json } => {
            let tokens = access.list_tokens()?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&tokens)?)?;
            } else {
                writeln!(
                    out,
                    "{:<16} {:<20} {:<9} {:<8} {:<24} cameras",
                    "id", "name", "role", "state", "last used"
                )?;
                let now = access.now();
                for t in tokens {
                    let state = t.state(now);
                    writeln!(
                        out,
                        "{:<16} {:<20} {:<9} {:<8} {:<24} {}",
                        t.id,
                        t.name,
                        t.role,
                        state,
                        t.last_used.map_or("never".to_owned(), |t| t.to_string()),
                        scope_text(&t.cameras)
                    )?;
                }
            }
        }
        TokenCommand::Revoke { id } => {
            access.revoke_token(&id, actor)?;
            writeln!(out, "token {id} revoked")?;
        }
    }
    Ok(())
}

fn ids(
    cmd: IdsCommand,
    access: &Access,
    actor: &Actor,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    match cmd {
        IdsCommand::Status { json } => {
            let status = access.ids_status();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?;
            } else if status.blocked.is_empty() {
                writeln!(out, "no address is blocked")?;
            } else {
                writeln!(
                    out,
                    "{:<40} {:<9} {:<24} until",
                    "address", "failures", "since"
                )?;
                for b in status.blocked {
                    writeln!(
                        out,
                        "{:<40} {:<9} {:<24} {}",
                        b.addr.to_string(),
                        b.failures,
                        b.since.to_string(),
                        b.until.map_or("restart".to_owned(), |t| t.to_string())
                    )?;
                }
            }
        }
        IdsCommand::Unblock { addr } => {
            if access.unblock(addr, actor)? {
                writeln!(out, "{addr} unblocked")?;
            } else {
                writeln!(out, "{addr} was not blocked")?;
            }
        }
    }
    Ok(())
}

fn audit(cmd: AuditCommand, access: &Access, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Query {
            from,
            to,
            user,
            kind,
            source,
            limit,
            jsonl,
        } => {
            let q = AuditQuery {
                from,
                to,
                user,
                kind,
                source,
                newest_first: limit.is_some(),
                limit,
            };
            if jsonl && limit.is_none() {
                access.audit_export_jsonl(&q, out)?;
                return Ok(());
            }
            let mut entries = access.audit_query(&q)?;
            // A limit selects the newest entries; print them oldest first all the same.
            entries.sort_by_key(|e| e.seq);
            for e in entries {
                if jsonl {
                    writeln!(out, "{}", serde_json::to_string(&e)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>6} {} {:<22} {:<20} {:<16} {}",
                        e.seq,
                        e.time_utc,
                        e.kind.as_str(),
                        e.user.as_deref().unwrap_or("-"),
                        e.source.as_deref().unwrap_or("-"),
                        e.detail
                    )?;
                }
            }
        }
        AuditCommand::Verify => {
            let report = access.verify_audit_chain()?;
            writeln!(out, "{report}")?;
            if let ChainReport::Broken { .. } = report {
                anyhow::bail!("the audit log was tampered with");
            }
        }
    }
    Ok(())
}
