//! Password policy (minimum length, refusal of common passwords), Argon2id hashing and
//! verification, and generation of strong random passwords.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng as _;

/// The 10,000 most common passwords (see `data/README.md` for the source).
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Shortest password accepted.
pub const MIN_PASSWORD_LENGTH: usize = 12;
/// Longest password accepted; bounds the hashing input an attacker controls.
pub const MAX_PASSWORD_LENGTH: usize = 256;

fn common_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Why a password was refused. The message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error(
        "password is too short ({len} characters); use at least {min}, e.g. a passphrase of several words"
    )]
    TooShort { len: usize, min: usize },
    #[error("password is too long ({len} characters); use at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "password is one of the most common passwords (or one followed by digits/symbols); choose something that is not on a breach list"
    )]
    Common,
    #[error("password contains the user name; choose one that does not")]
    ContainsUsername,
    #[error("password uses only {distinct} different characters; choose a less repetitive one")]
    TooRepetitive { distinct: usize },
}

/// Checks a new password against Vigil's policy: at least [`MIN_PASSWORD_LENGTH`] characters,
/// not a common password (case-insensitive, also with trailing digits/punctuation stripped),
/// not containing the user name, and at least 5 distinct characters.
pub fn check_password_policy(password: &str, username: &str) -> Result<(), PasswordRejected> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LENGTH {
        return Err(PasswordRejected::TooShort {
            len,
            min: MIN_PASSWORD_LENGTH,
        });
    }
    if len > MAX_PASSWORD_LENGTH {
        return Err(PasswordRejected::TooLong {
            len,
            max: MAX_PASSWORD_LENGTH,
        });
    }
    let lower = password.to_lowercase();
    let set = common_set();
    if set.contains(lower.as_str()) {
        return Err(PasswordRejected::Common);
    }
    // "password1234!" is as guessable as "password": cracking rules append digits and symbols.
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if stem.len() >= 4 && set.contains(stem) {
        return Err(PasswordRejected::Common);
    }
    let user = username.to_lowercase();
    if user.len() >= 3 && lower.contains(&user) {
        return Err(PasswordRejected::ContainsUsername);
    }
    let distinct = password.chars().collect::<HashSet<_>>().len();
    if distinct < 5 {
        return Err(PasswordRejected::TooRepetitive { distinct });
    }
    Ok(())
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

/// Parameters refused because they are weaker than OWASP's minimum.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "Argon2id parameters m={m_kib} KiB, t={t}, p={p} are weaker than the OWASP minimum (OWASP lists m=47104/t=1, m=19456/t=2, m=12288/t=3, m=9216/t=4, m=7168/t=5: memory ≥ 7168 KiB and memory × passes ≥ 35840); raise memory or passes"
)]
pub struct WeakHashParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

impl HashParams {
    /// OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
    pub const OWASP: HashParams = HashParams {
        m_kib: 19456,
        t: 2,
        p: 1,
    };

    /// Custom parameters, refused if weaker than OWASP's recommended set (its equivalent
    /// trade-offs from m=47104,t=1 to m=7168,t=5 are accepted).
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self, WeakHashParams> {
        let weak = WeakHashParams { m_kib, t, p };
        if p == 0 || t == 0 || m_kib < 7168 || u64::from(m_kib) * u64::from(t) < 7168 * 5 {
            return Err(weak);
        }
        Params::new(m_kib, t, p, None).map_err(|_| weak)?;
        Ok(HashParams { m_kib, t, p })
    }

    /// Cheap parameters so unit tests run fast; never reachable outside `cfg(test)`.
    #[cfg(test)]
    pub(crate) const fn fast_for_tests() -> Self {
        HashParams {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }
    pub fn t(&self) -> u32 {
        self.t
    }
    pub fn p(&self) -> u32 {
        self.p
    }

    fn argon2(&self) -> Argon2<'static> {
        let params =
            Params::new(self.m_kib, self.t, self.p, None).expect("validated in HashParams::new");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams::OWASP
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes `password` with Argon2id and a random 128-bit salt into a PHC string
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
pub fn hash_password(password: &str, params: HashParams) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    params
        .argon2()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

/// Verifies `password` against a PHC string. The parameters stored in the string are used, so
/// hashes made with older parameters keep working. Any malformed hash counts as a mismatch.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LENGTH * 4 {
        return false;
    }
    HashParams::OWASP
        .argon2()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Whether a stored hash is Argon2id with parameters at least as strong as `params`
/// (callers rehash on the next successful login when it is not).
pub fn hash_is_current(phc: &str, params: HashParams) -> bool {
    let Ok(h) = argon2::password_hash::phc::PasswordHash::new(phc) else {
        return false;
    };
    if h.algorithm.as_str() != "argon2id" {
        return false;
    }
    let get = |k: &str| h.params.get_decimal(k);
    matches!((get("m"), get("t"), get("p")), (Some(m), Some(t), Some(_)) if m >= params.m_kib && t >= params.t)
}

const GENERATED_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// A random password of 20 characters from a 57-symbol alphabet without look-alikes
/// (about 116 bits), grouped in fives with dashes so it can be read out and typed.
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(23);
    for i in 0..20 {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        let c = GENERATED_ALPHABET[rng.random_range(0..GENERATED_ALPHABET.len())];
        out.push(c as char);
    }
    out
}

#[cfg(test)]
pub(crate) fn tests_common_len() -> usize {
    common_set().len()
}
