//! The one SQL spelling rewritten for PostgreSQL: `?N` and `?` placeholders become `$N`
//! (outside quoted strings and identifiers); migration tokens are in `migrate.rs`.

/// `?1`, `?2`... keep their numbers; a bare `?` takes the next one after the highest seen so
/// far, as SQLite numbers them.
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut highest = 0u32;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    highest + 1
                } else {
                    digits.parse().unwrap_or(highest + 1)
                };
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_postgres;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1"
        );
        assert_eq!(
            to_postgres("x >= ? AND y < ? LIMIT ?"),
            "x >= $1 AND y < $2 LIMIT $3"
        );
        assert_eq!(
            to_postgres("SELECT '?1', \"a?\" FROM t WHERE x = ?12"),
            "SELECT '?1', \"a?\" FROM t WHERE x = $12"
        );
        assert_eq!(to_postgres("VALUES (?1, ?2, ?2)"), "VALUES ($1, $2, $2)");
    }
}
