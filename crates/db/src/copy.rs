//! Copying a component's tables from one database to another (`vigil db copy-from-sqlite`):
//! rows go across unchanged (same columns, same values, same keys), in one transaction on the
//! destination, which must already be migrated to the same schema version and hold no rows in
//! those tables. PostgreSQL's identity sequences are moved past the copied keys afterwards so
//! new rows do not collide with them.

use crate::{Backend, Db, DbError, Result, Schema, migrate};

/// One table and, when it has an auto-numbered key, that column.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub identity: Option<&'static str>,
}

/// Copies `tables` (in an order that satisfies foreign keys) from `src` to `dst`; returns the
/// row count per table.
pub fn copy_tables(
    src: &mut Db,
    dst: &mut Db,
    schema: &Schema,
    tables: &[Table],
) -> Result<Vec<(&'static str, usize)>> {
    let from = migrate::status(src, schema)?;
    let to = migrate::status(dst, schema)?;
    if from.current() != to.current() {
        return Err(DbError::Other(format!(
            "the source is at {} schema version {} and the destination at {}: run `vigil db migrate` on both with this Vigil first",
            schema.component,
            from.current(),
            to.current()
        )));
    }
    for t in tables {
        let n: i64 = dst.query_row(&format!("SELECT COUNT(*) FROM {}", t.name), (), |r| {
            r.get(0)
        })?;
        if n > 0 {
            return Err(DbError::Other(format!(
                "the destination already holds data (table {} has {n} rows): copy into a new, empty database",
                t.name
            )));
        }
    }
    let backend = dst.backend();
    let tx = dst.transaction()?;
    let mut counts = Vec::new();
    for t in tables {
        let rows = src.query(&format!("SELECT * FROM {}", t.name), ())?;
        let Some(first) = rows.first() else {
            counts.push((t.name, 0));
            continue;
        };
        let columns = first.columns().to_vec();
        let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            t.name,
            quoted.join(", "),
            marks.join(", ")
        );
        let n = rows.len();
        for row in rows {
            tx.execute(&sql, row.into_values())?;
        }
        if let (Backend::Postgres, Some(col)) = (backend, t.identity) {
            tx.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{col}'), (SELECT MAX({col}) FROM {0}))",
                    t.name
                ),
                (),
            )?;
        }
        counts.push((t.name, n));
    }
    tx.commit()?;
    Ok(counts)
}
