//! The supervisor's persisted state: one SQLite file in the state folder, written in
//! transactions. Pipeline definitions as submitted (with their generation, desired state and
//! origin), desired states of pipelines that come from files, and usage counters.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// What an operator asked a pipeline to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Records flow.
    Running,
    /// Nothing is read; the consumer stays in its group.
    Paused,
    /// Drained, committed and stopped.
    Stopped,
}

impl Desired {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Paused => "paused",
            Desired::Stopped => "stopped",
        }
    }

    fn parse(s: &str) -> Desired {
        match s {
            "paused" => Desired::Paused,
            "stopped" => Desired::Stopped,
            _ => Desired::Running,
        }
    }
}

/// A pipeline created over the API, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPipeline {
    /// Its name.
    pub name: String,
    /// The body as submitted (YAML or JSON), with its `${VAR}` references unexpanded.
    pub definition: String,
    /// `application/yaml` or `application/json`.
    pub content_type: String,
    /// Bumped on every change of the definition.
    pub generation: u64,
    /// What it should be doing.
    pub desired: Desired,
}

/// The store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

/// The SQLite store.
pub struct Store {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pipelines (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    content_type TEXT NOT NULL,
    generation INTEGER NOT NULL,
    desired_state TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- Desired states of pipelines defined in files (their definitions live in the files).
CREATE TABLE IF NOT EXISTS file_pipelines (
    name TEXT PRIMARY KEY,
    desired_state TEXT NOT NULL
);
-- Records and bytes a pipeline delivered, per tenant (empty when unknown) and hour.
CREATE TABLE IF NOT EXISTS usage (
    pipeline TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT '',
    hour TEXT NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pipeline, tenant, hour)
);
-- Tenants of the multi-tenant service.
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
";

impl Store {
    /// Opens (creating when needed) `weir.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let file = dir.join("weir.db");
        let path = file.display().to_string();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&file).map_err(err)?;
        // WAL survives a kill -9 of the process with every committed transaction.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn, path })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Every pipeline created over the API.
    pub fn pipelines(&self) -> Result<Vec<StoredPipeline>, StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT name, definition, content_type, generation, desired_state FROM pipelines ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok(StoredPipeline {
                    name: r.get(0)?,
                    definition: r.get(1)?,
                    content_type: r.get(2)?,
                    generation: r.get::<_, i64>(3)? as u64,
                    desired: Desired::parse(&r.get::<_, String>(4)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Creates or replaces an API pipeline, in one transaction.
    pub fn put(&mut self, p: &StoredPipeline) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError {
            path: self.path.clone(),
            source: e,
        })?;
        tx.execute(
            "INSERT INTO pipelines (name, definition, content_type, generation, desired_state)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET definition = ?2, content_type = ?3, generation = ?4,
                 desired_state = ?5, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![
                p.name,
                p.definition,
                p.content_type,
                p.generation as i64,
                p.desired.as_str()
            ],
        )
        .map_err(|e| StoreError {
            path: self.path.clone(),
            source: e,
        })?;
        tx.commit().map_err(|e| StoreError {
            path: self.path.clone(),
            source: e,
        })
    }

    /// Sets the desired state of a pipeline (API or file).
    pub fn set_desired(&self, name: &str, from_file: bool, d: Desired) -> Result<(), StoreError> {
        let sql = if from_file {
            "INSERT INTO file_pipelines (name, desired_state) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET desired_state = ?2"
        } else {
            "UPDATE pipelines SET desired_state = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE name = ?1"
        };
        self.conn
            .execute(sql, params![name, d.as_str()])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The desired state stored for a pipeline from a file, if one was set over the API.
    pub fn file_desired(&self, name: &str) -> Result<Option<Desired>, StoreError> {
        self.conn
            .query_row(
                "SELECT desired_state FROM file_pipelines WHERE name = ?1",
                params![name],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map(|o| o.map(|s| Desired::parse(&s)))
            .map_err(|e| self.err(e))
    }

    /// Deletes an API pipeline.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM pipelines WHERE name = ?1", params![name])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Adds delivered records and bytes to a pipeline's usage in the hour starting at `hour`
    /// (`2026-12-01T14`).
    pub fn add_usage(
        &self,
        pipeline: &str,
        tenant: &str,
        hour: &str,
        events: u64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO usage (pipeline, tenant, hour, events, bytes) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(pipeline, tenant, hour) DO UPDATE SET events = events + ?4, bytes = bytes + ?5",
                params![pipeline, tenant, hour, events as i64, bytes as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// A pipeline's usage per hour: (hour, events, bytes), oldest first.
    pub fn usage(&self, pipeline: &str) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT hour, SUM(events), SUM(bytes) FROM usage WHERE pipeline = ?1 GROUP BY hour ORDER BY hour",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![pipeline], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_desired_states_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let p = StoredPipeline {
            name: "orders".into(),
            definition: "name: orders\n".into(),
            content_type: "application/yaml".into(),
            generation: 1,
            desired: Desired::Running,
        };
        s.put(&p).unwrap();
        s.put(&StoredPipeline {
            generation: 2,
            ..p.clone()
        })
        .unwrap();
        s.set_desired("orders", false, Desired::Paused).unwrap();
        s.set_desired("from-file", true, Desired::Stopped).unwrap();
        s.add_usage("orders", "", "2026-12-01T14", 10, 100).unwrap();
        s.add_usage("orders", "", "2026-12-01T14", 5, 50).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        let all = s.pipelines().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].generation, 2);
        assert_eq!(all[0].desired, Desired::Paused);
        assert_eq!(s.file_desired("from-file").unwrap(), Some(Desired::Stopped));
        assert_eq!(s.file_desired("other").unwrap(), None);
        assert_eq!(
            s.usage("orders").unwrap(),
            vec![("2026-12-01T14".to_owned(), 15, 150)]
        );
        s.delete("orders").unwrap();
        assert!(s.pipelines().unwrap().is_empty());
    }
}
