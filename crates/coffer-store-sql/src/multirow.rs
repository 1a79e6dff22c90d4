//! Multi-row INSERT statements: many rows in one statement, so a group of writes costs
//! one round trip to the database per table rather than one per row (on SQLite, each
//! statement is a hop to the driver's thread; on PostgreSQL, a network round trip).

use sqlx::AnyConnection;

/// A query being bound, on either engine.
pub type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Bound parameters per statement at most: within both engines' limits (SQLite 32,766
/// since 3.32, PostgreSQL 65,535), and large enough that a group of key creations
/// (`batch::BATCH` rows of at most 15 columns) fits in one statement.
const MAX_PARAMS: usize = 8_000;

/// How many rows of `columns` columns one statement takes.
pub fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns.max(1)).max(1)
}

/// `INSERT INTO {into} VALUES (…), (…), …` for `rows` rows of `columns` placeholders
/// each, written as `conn`'s engine binds them fastest. `into` is the table and its
/// column list, a constant of the caller.
pub fn insert(conn: &AnyConnection, into: &str, rows: usize, columns: usize) -> String {
    values(Placeholders::of(conn), into, rows, columns)
}

/// How placeholders are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholders {
    /// `$1, $2, …`: PostgreSQL's only form.
    Numbered,
    /// `?, ?, …`: SQLite numbers them in order. sqlx looks a numbered SQLite parameter
    /// up by name, a linear search in SQLite for each one, so a statement of a thousand
    /// `$n` spends more time binding than inserting.
    Anonymous,
}

impl Placeholders {
    fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name() == "SQLite" {
            Self::Anonymous
        } else {
            Self::Numbered
        }
    }
}

fn values(placeholders: Placeholders, into: &str, rows: usize, columns: usize) -> String {
    let mut sql = format!("INSERT INTO {into} VALUES ");
    let mut param = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            param += 1;
            match placeholders {
                Placeholders::Numbered => {
                    sql.push('$');
                    sql.push_str(&param.to_string());
                }
                Placeholders::Anonymous => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_on_across_rows() {
        assert_eq!(
            values(Placeholders::Numbered, "t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            values(Placeholders::Anonymous, "t (a, b)", 2, 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            values(Placeholders::Numbered, "t (a)", 1, 1),
            "INSERT INTO t (a) VALUES ($1)"
        );
    }

    #[test]
    fn a_statement_stays_within_the_parameter_limit() {
        assert!(rows_per_statement(15) * 15 <= MAX_PARAMS);
        assert!(
            rows_per_statement(15) >= 64,
            "a whole group in one statement"
        );
        assert_eq!(rows_per_statement(0), MAX_PARAMS);
    }
}
