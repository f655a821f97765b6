//! Customer lists uploaded as CSV: a header naming the identifier column (external_id, email,
//! mobile or user_id), then one customer a row. Used for the allow-list of "specific customers
//! only" pools, batch issuing and revocation. Every list is a job whose file is stored with
//! it, worked a chunk per transaction; each chunk commits the line it reached, so a job taken
//! over after a crash continues after the last committed row.

use std::{future::Future, pin::Pin};

use crate::store::entity::{imports, pools};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::{
    domain::{
        Invalid, csv,
        customer::{self, CustomerIdentifier},
        job::JobKind,
    },
    service::{
        Error, Result,
        jobs::{self, Outcome, Run},
    },
    store::{
        self,
        imports::{Issue, NewJob, Progress},
    },
};

/// Rows handled per transaction.
pub const CHUNK: usize = 1_000;
/// The largest customer list accepted.
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// One data row: its line number, the raw value, and the identifier it names.
pub struct Row {
    pub number: i64,
    pub value: String,
    pub identifier: std::result::Result<CustomerIdentifier, Invalid>,
}

/// Reads a stored customer list a chunk at a time, from a checkpoint on.
pub struct CustomerRows<'a> {
    records: Box<dyn Iterator<Item = std::io::Result<csv::Record>> + Send + 'a>,
    column: Option<String>,
    /// Where the identifier column is in each row.
    index: usize,
    after: i64,
}

impl<'a> CustomerRows<'a> {
    /// Rows of `file` on lines after `after` (0: from the start). The header is always read.
    pub fn new(file: &'a [u8], after: i64) -> Result<CustomerRows<'a>> {
        Ok(CustomerRows {
            records: Box::new(csv::records(file).map_err(unreadable)?),
            column: None,
            index: 0,
            after,
        })
    }

    /// The next rows, at most `max`, and the line reached; no rows at the end.
    pub fn next_chunk(&mut self, max: usize) -> Result<(Vec<Row>, i64)> {
        let mut rows = Vec::with_capacity(max.min(4_096));
        let mut reached = self.after;
        while rows.len() < max {
            let Some(record) = self.records.next() else {
                break;
            };
            let record = record.map_err(unreadable)?;
            let Some(column) = &self.column else {
                // Checked before the job started (`check_header`); an unknown column here
                // rejects every row.
                self.index = customer::identifier_column(&record.fields).unwrap_or(0);
                self.column = Some(field(&record, self.index));
                continue;
            };
            let line = record.line as i64;
            if line <= self.after {
                continue;
            }
            reached = line;
            if record.is_blank() {
                continue;
            }
            let value = field(&record, self.index);
            rows.push(Row {
                number: line,
                identifier: CustomerIdentifier::from_column(column, &value),
                value,
            });
        }
        self.after = reached;
        Ok((rows, reached))
    }
}

fn field(record: &csv::Record, index: usize) -> String {
    record.fields.get(index).cloned().unwrap_or_default()
}

/// 400 `missing_identifier_column` unless a customer list's header names an identifier
/// column, so a wrong file is refused before any job starts.
pub fn check_header(file: &[u8]) -> Result<()> {
    let mut records = csv::records(file).map_err(unreadable)?;
    let header = match records.next() {
        Some(record) => record.map_err(unreadable)?.fields,
        None => Vec::new(),
    };
    customer::identifier_column(&header)
        .map(|_| ())
        .map_err(|e| Error::bad_request("missing_identifier_column", e.reason))
}

fn unreadable(err: std::io::Error) -> Error {
    Error::bad_request(
        "unreadable_file",
        format!("the file could not be read: {err}"),
    )
}

/// Refuses a list over the size limit before anything is stored.
pub fn check_size(file: &[u8]) -> Result<()> {
    if file.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    Ok(())
}

pub fn too_large() -> Error {
    Error::TooLarge {
        code: "file_too_large".into(),
        detail: format!("a customer list may have at most {MAX_FILE_BYTES} bytes"),
    }
}

/// Creates a list job for `pool` with its file; `holder` when the caller runs it inline.
pub async fn create_job(
    db: &DatabaseConnection,
    pool: &pools::Model,
    kind: JobKind,
    file: Vec<u8>,
    holder: Option<&str>,
) -> Result<imports::Model> {
    check_size(&file)?;
    Ok(store::imports::create(
        db,
        NewJob {
            org_id: pool.org_id,
            pool_id: Some(pool.id),
            kind,
            total: 0,
            params: None,
            file: Some(file),
            holder: holder.map(jobs::inline_holder),
        },
    )
    .await?)
}

/// The work on one chunk of a list, in the chunk's transaction: its progress and issue rows.
pub type ChunkWork<'t> = Pin<Box<dyn Future<Output = Result<(Progress, Vec<Issue>)>> + Send + 't>>;

/// Works through a list job's file from its checkpoint: each chunk of rows goes to `work` in
/// its own transaction with the progress and issue rows it returns, fenced by the lease.
pub async fn run_list<F>(run: &Run, chunk: usize, mut work: F) -> Result<Outcome>
where
    F: for<'t> FnMut(&'t DatabaseTransaction, Vec<Row>) -> ChunkWork<'t>,
{
    let file = store::imports::file(&run.db, run.job.id)
        .await?
        .ok_or_else(|| Error::internal(format!("job {} has no file", run.job.id)))?;
    let mut rows = CustomerRows::new(&file, run.job.checkpoint)?;
    loop {
        if run.stopping() {
            return Ok(Outcome::Stopped);
        }
        let (chunk, reached) = rows.next_chunk(chunk)?;
        if chunk.is_empty() {
            return Ok(Outcome::Finished);
        }
        let txn = run.db.begin().await?;
        let (progress, issues) = work(&txn, chunk).await?;
        if !store::imports::record(&txn, &run.lease, progress, issues, reached).await? {
            txn.rollback().await?;
            return Ok(Outcome::Stopped);
        }
        txn.commit().await?;
    }
}

/// Puts the listed customers on the pool's allow-list, answering when done. Unknown customers
/// and bad identifiers are rejected, customers already listed skipped, each with an issue row.
pub async fn upload_allow_list(
    db: &DatabaseConnection,
    pool: &pools::Model,
    file: Vec<u8>,
) -> Result<imports::Model> {
    let owner = jobs::new_owner();
    let job = create_job(db, pool, JobKind::AllowList, file, Some(&owner)).await?;
    jobs::run_inline(db, job, owner, |run| async move { allow_list(&run).await }).await
}

/// The allow-list job's work (also run when a crashed upload is resumed).
pub async fn allow_list(run: &Run) -> Result<Outcome> {
    let pool_id = run.job.pool_id.unwrap_or_default();
    let org_id = run.job.org_id;
    run_list(run, CHUNK, |txn, chunk| {
        Box::pin(allow_chunk(txn, org_id, pool_id, chunk))
    })
    .await
}

async fn allow_chunk(
    txn: &DatabaseTransaction,
    org_id: i64,
    pool_id: i64,
    chunk: Vec<Row>,
) -> Result<(Progress, Vec<Issue>)> {
    let mut progress = Progress {
        done: chunk.len() as i64,
        ..Progress::default()
    };
    let mut issues = Vec::new();
    for row in chunk {
        let customer = match &row.identifier {
            Ok(id) => super::customers::resolve_row(txn, org_id, id).await?,
            Err(e) => Err(("invalid_customer", e.reason.clone())),
        };
        let (code, reason) = match customer {
            Ok(c) if store::issuance::allow(txn, pool_id, c.id).await? => {
                progress.accepted += 1;
                continue;
            }
            Ok(_) => {
                progress.skipped += 1;
                ("duplicate", "already on the list".to_string())
            }
            Err(issue) => {
                progress.rejected += 1;
                issue
            }
        };
        issues.push(Issue {
            row_number: row.number,
            value: row.value,
            code,
            reason,
        });
    }
    Ok((progress, issues))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_resume_after_the_checkpoint() {
        let file = b"\xEF\xBB\xBFexternal_id\na\n\nb\n\"c\"\n";
        let mut rows = CustomerRows::new(file, 0).unwrap();
        let (first, reached) = rows.next_chunk(1).unwrap();
        assert_eq!((first[0].value.as_str(), reached), ("a", 2));
        let mut resumed = CustomerRows::new(file, reached).unwrap();
        let (rest, reached) = resumed.next_chunk(10).unwrap();
        let values: Vec<&str> = rest.iter().map(|r| r.value.as_str()).collect();
        assert_eq!((values, reached), (vec!["b", "c"], 5));
        assert!(resumed.next_chunk(10).unwrap().0.is_empty());
    }
}
