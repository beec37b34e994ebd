//! Who did what: the identity of the person running the `vigil` command line, and the audit
//! trail a use case writes its entry to (the hash-chained log in `access.db`, the one the
//! HTTP API writes; docs/security-model.md, "Audit log").
//!
//! A use case that changes or reveals something (an export, a verification, a camera or
//! certificate change) takes a [`Trail`] and records one entry when it succeeds, so the command
//! line and the API, which call the same use case, write the same entry once.

use std::path::Path;

use vigil_access::{Access, AccessError, Actor, AuditKind, AuditRecord};
use vigil_config::Config;

use crate::access_settings::{AccessSettingsError, access_config};

/// Where an action is recorded, and who performed it.
pub struct Trail<'a> {
    access: &'a Access,
    actor: Actor,
}

impl<'a> Trail<'a> {
    pub fn new(access: &'a Access, actor: Actor) -> Self {
        Trail { access, actor }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Appends one entry for this actor.
    pub fn record(&self, kind: AuditKind, detail: serde_json::Value) -> Result<(), AccessError> {
        self.access.audit(
            AuditRecord::new(kind, Some(&self.actor.name), Some(&self.actor.source)).detail(detail),
        )?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Settings(#[from] AccessSettingsError),
    #[error("{0}")]
    Database(#[from] crate::database::DatabaseError),
    #[error("cannot open the audit log in {place}: {source}")]
    Open { place: String, source: AccessError },
}

/// The access database (users, tokens, audit log) of the installation `cfg` describes, opened
/// with its `[access]` settings.
pub fn open_access(cfg: &Config) -> Result<Access, OpenError> {
    let target = crate::database::target(cfg)?;
    Access::open_target(&target, access_config(cfg)?).map_err(|source| OpenError::Open {
        place: crate::database::describe(&target),
        source,
    })
}

/// The person running this process, as the command line's audit entries and evidence bundles
/// name them: `cli:<login name>(uid <N>)`, and `cli:uid<N>` when the user database has no
/// name for the uid. Under sudo the invoking user is added: `cli:root(uid 0, sudo alice)`.
///
/// The uid is the process's real uid from the kernel; the login name comes from the system's
/// user database, not from `$USER`, which anyone can set. Whoever can open `access.db` is
/// trusted to administer the installation anyway; the name says which of them it was.
pub fn cli_actor() -> Actor {
    Actor::command_line(cli_identity())
}

/// The `<login name>(uid <N>)` part of [`cli_actor`] (what follows `cli:`).
pub fn cli_identity() -> String {
    let uid = real_uid();
    let mut id = match uid {
        Some(uid) => match login_name(Path::new("/etc/passwd"), uid) {
            Some(name) => format!("{name}(uid {uid})"),
            None => format!("uid{uid}"),
        },
        None => "unknown".to_owned(),
    };
    // sudo sets SUDO_USER for the commands it runs as root; a plain user could set it too, so
    // it is only reported next to uid 0, as who asked sudo.
    if uid == Some(0)
        && let Ok(by) = std::env::var("SUDO_USER")
        && !by.is_empty()
        && by != "root"
        && by.chars().all(|c| c.is_ascii_graphic())
    {
        // "root(uid 0)" becomes "root(uid 0, sudo alice)"; a uid without a name gets the
        // parenthesis of its own ("uid0(sudo alice)").
        match id.strip_suffix(')') {
            Some(inner) => id = format!("{inner}, sudo {by})"),
            None => id.push_str(&format!("(sudo {by})")),
        }
    }
    id
}

/// The real uid (first field of the `Uid:` line of /proc/self/status).
fn real_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_real_uid(&status)
}

fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The first name `passwd` (the file) gives `uid`.
fn login_name(passwd: &Path, uid: u32) -> Option<String> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let uid_field = f.nth(1)?;
        (uid_field.parse::<u32>().ok()? == uid
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_graphic()))
        .then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_uid_is_the_first_of_the_four() {
        let status =
            "Name:\tvigil\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_real_uid(status), Some(1000));
        assert_eq!(parse_real_uid("Name:\tx\n"), None);
        assert_eq!(parse_real_uid("Uid:\tx\t0\n"), None);
    }

    #[test]
    fn login_names_come_from_the_user_database() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(login_name(&passwd, 0).as_deref(), Some("root"));
        assert_eq!(login_name(&passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(login_name(&passwd, 1001), None);
        assert_eq!(login_name(&dir.path().join("none"), 0), None);
    }

    #[test]
    fn this_process_is_named_by_its_uid() {
        let actor = cli_actor();
        assert_eq!(actor.source, "cli");
        let uid = real_uid().unwrap();
        assert!(actor.name.starts_with("cli:"), "{}", actor.name);
        assert!(
            actor.name.contains(&format!("(uid {uid}")) || actor.name == format!("cli:uid{uid}"),
            "{}",
            actor.name
        );
    }
}
