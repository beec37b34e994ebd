//! `vigil db status|migrate|copy-from-sqlite`: the management database's schema and the move
//! of an `access.db` into PostgreSQL (docs/database.md). The use cases are in
//! `vigil_app::database`; this module parses arguments and prints what was done.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use vigil_access::ChainReport;

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Where the management data is and which migrations are applied or pending.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Apply pending migrations (also done by `vigil serve` at start).
    Migrate,
    /// Copy the SQLite access.db (users, sessions, tokens, access and audit logs, layouts)
    /// into the empty PostgreSQL database `[database] url` names; the audit chain is verified
    /// after the copy.
    CopyFromSqlite {
        /// The SQLite file; default: access.db in the data directory.
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

pub fn run(cmd: DbCommand, config: &Path) -> anyhow::Result<()> {
    let cfg = vigil_config::Config::load(config)?;
    match cmd {
        DbCommand::Status { json } => {
            let (target, status) = vigil_app::database::status(&cfg)?;
            let place = vigil_app::database::describe(&target);
            if json {
                let applied: Vec<_> = status
                    .applied
                    .iter()
                    .map(|m| serde_json::json!({"version": m.version, "name": m.name, "applied_ms": m.applied_ms}))
                    .collect();
                let pending: Vec<_> = status
                    .pending
                    .iter()
                    .map(|(v, n)| serde_json::json!({"version": v, "name": n}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "database": place,
                        "component": status.component,
                        "version": status.current(),
                        "known": status.known,
                        "too_new": status.too_new(),
                        "applied": applied,
                        "pending": pending,
                    })
                );
            } else {
                println!("database: {place}");
                println!(
                    "{} schema: version {} (this Vigil knows {})",
                    status.component,
                    status.current(),
                    status.known
                );
                for m in &status.applied {
                    println!("  applied  {:>3}  {}", m.version, m.name);
                }
                for (v, n) in &status.pending {
                    println!("  pending  {v:>3}  {n}");
                }
                if status.too_new() {
                    println!(
                        "the database was migrated by a newer Vigil: upgrade this one before `vigil serve`"
                    );
                } else if !status.pending.is_empty() {
                    println!("run `vigil db migrate` to apply the pending migrations");
                }
            }
            Ok(())
        }
        DbCommand::Migrate => {
            let (target, applied) = vigil_app::database::migrate(&cfg)?;
            let place = vigil_app::database::describe(&target);
            if applied.is_empty() {
                println!("{place}: up to date, nothing to apply");
            }
            for (v, n) in &applied {
                println!("{place}: applied access migration {v} ({n})");
            }
            Ok(())
        }
        DbCommand::CopyFromSqlite { from } => {
            let (target, report) = vigil_app::database::copy_from_sqlite(&cfg, from)?;
            let place = vigil_app::database::describe(&target);
            for (table, n) in &report.tables {
                println!("copied {n:>7} rows of {table}");
            }
            match &report.destination_chain {
                ChainReport::Intact { entries, head } => println!(
                    "into {place}; audit log verified there: {entries} entries, head {head} (the same as the source's)"
                ),
                other => println!("into {place}; audit log: {other}"),
            }
            println!(
                "keep the SQLite file as a backup; Vigil now uses PostgreSQL while [database] url is set"
            );
            Ok(())
        }
    }
}
