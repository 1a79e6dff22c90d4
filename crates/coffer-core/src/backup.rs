//! Backups: a consistent snapshot of the store, sealed into a bundle only the same
//! custody can open.
//!
//! - [`Snapshot`] — every durable table's rows as the store read them in one read
//!   transaction ([`BackupStore::snapshot`]), and written back into an empty store in one
//!   transaction ([`BackupStore::restore`]). Rows are typed cells, so a snapshot taken
//!   on SQLite restores on PostgreSQL.
//! - [`bundle`] — the file format: a readable header, the snapshot sealed with a fresh
//!   data key wrapped by custody, and a SHA-256 trailer (details in the module).
//!
//! The store only ever holds wrapped material, so a snapshot holds no secret in the
//! clear either; the bundle still seals it, so that tokens, names and the audit log are
//! neither readable nor alterable without custody.

pub mod bundle;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::store::{StoreError, StoreResult};

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer column.
    Int(i64),
    /// A text column.
    Text(String),
    /// A binary column.
    Blob(Vec<u8>),
}

/// The rows of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// Column names, in the order of each row's cells.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

/// Every durable table of a store, read at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The schema migrations the store had applied.
    pub schema: Vec<i64>,
    /// The tables, in an order that satisfies their foreign keys when inserted.
    pub tables: Vec<Table>,
}

impl Snapshot {
    /// The table `name`, if the snapshot has it.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Rows per table.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.tables
            .iter()
            .map(|t| (t.name.clone(), t.rows.len() as u64))
            .collect()
    }

    /// The number of audit entries (the log's size at the snapshot).
    pub fn audit_size(&self) -> u64 {
        self.table("audit_entries")
            .map_or(0, |t| t.rows.len() as u64)
    }

    /// The size of the newest stored checkpoint.
    pub fn checkpoint_size(&self) -> Option<u64> {
        let table = self.table("audit_checkpoints")?;
        let at = table.columns.iter().position(|c| c == "size")?;
        table
            .rows
            .iter()
            .filter_map(|row| match row.get(at) {
                Some(Cell::Int(size)) => u64::try_from(*size).ok(),
                _ => None,
            })
            .max()
    }

    /// The snapshot as JSON (what a bundle seals).
    pub fn to_json(&self) -> Vec<u8> {
        let tables: Vec<Value> = self
            .tables
            .iter()
            .map(|t| {
                let rows: Vec<Value> = t
                    .rows
                    .iter()
                    .map(|row| Value::Array(row.iter().map(cell_to_json).collect()))
                    .collect();
                json!({ "name": t.name, "columns": t.columns, "rows": rows })
            })
            .collect();
        serde_json::to_vec(&json!({ "schema": self.schema, "tables": tables })).unwrap_or_default()
    }

    /// Parses [`Snapshot::to_json`]'s output; any other input is a typed error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
        let schema = value
            .get("schema")
            .and_then(Value::as_array)
            .ok_or("no schema list")?
            .iter()
            .map(|v| v.as_i64().ok_or("a schema version is not an integer"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tables = Vec::new();
        for table in value
            .get("tables")
            .and_then(Value::as_array)
            .ok_or("no table list")?
        {
            tables.push(table_from_json(table)?);
        }
        Ok(Self { schema, tables })
    }
}

fn cell_to_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(n) => json!(n),
        Cell::Text(s) => json!(s),
        Cell::Blob(b) => json!({ "b64": STANDARD.encode(b) }),
    }
}

fn cell_from_json(value: &Value) -> Result<Cell, String> {
    Ok(match value {
        Value::Null => Cell::Null,
        Value::Number(n) => Cell::Int(n.as_i64().ok_or("a number that is not an i64")?),
        Value::String(s) => Cell::Text(s.clone()),
        Value::Object(map) => Cell::Blob(blob_from(map)?),
        _ => return Err("a cell of an unknown type".into()),
    })
}

fn blob_from(map: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let text = map
        .get("b64")
        .and_then(Value::as_str)
        .filter(|_| map.len() == 1)
        .ok_or("a binary cell without its b64 field")?;
    STANDARD
        .decode(text)
        .map_err(|_| "a binary cell that is not base64".into())
}

fn table_from_json(value: &Value) -> Result<Table, String> {
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a table without a name")?
        .to_owned();
    let columns = value
        .get("columns")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("table {name} has no column list"))?
        .iter()
        .map(|c| c.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("table {name} has a column name that is not text"))?;
    let mut rows = Vec::new();
    for row in value
        .get("rows")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("table {name} has no rows list"))?
    {
        let cells = row
            .as_array()
            .filter(|cells| cells.len() == columns.len())
            .ok_or_else(|| format!("table {name} has a row that does not match its columns"))?;
        rows.push(cells.iter().map(cell_from_json).collect::<Result<_, _>>()?);
    }
    Ok(Table {
        name,
        columns,
        rows,
    })
}

/// Reading and restoring whole stores.
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Every durable table, read in one read transaction: a consistent instant even
    /// while writers commit (leases are left out: they belong to running replicas).
    async fn snapshot(&self) -> StoreResult<Snapshot>;

    /// Writes `snapshot` into this store in one transaction. Refused with
    /// [`StoreError::Conflict`] (nothing written) unless every table is empty, and with
    /// [`StoreError::Corrupt`] when the snapshot names a migration or a table this
    /// store's schema does not have.
    async fn restore(&self, snapshot: &Snapshot) -> StoreResult<()>;
}

/// The refusal of a restore into a store that holds data.
pub const NOT_EMPTY: StoreError =
    StoreError::Conflict("the store is not empty: restore only into a new, empty database");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_through_json_and_bad_json_is_an_error() {
        let snapshot = Snapshot {
            schema: vec![1, 2, 17],
            tables: vec![Table {
                name: "t".into(),
                columns: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                rows: vec![vec![
                    Cell::Null,
                    Cell::Int(-5),
                    Cell::Text("{\"b64\":\"x\"}".into()),
                    Cell::Blob(vec![0, 1, 255]),
                ]],
            }],
        };
        assert_eq!(Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
        for bad in [
            &b"[]"[..],
            b"{\"schema\":[],\"tables\":[{\"name\":\"t\",\"columns\":[\"a\"],\"rows\":[[1,2]]}]}",
            b"{\"schema\":[],\"tables\":[{\"name\":\"t\",\"columns\":[\"a\"],\"rows\":[[{\"b64\":\"!\"}]]}]}",
            b"{\"schema\":[1.5],\"tables\":[]}",
            b"\xff",
        ] {
            assert!(Snapshot::from_json(bad).is_err());
        }
    }
}
