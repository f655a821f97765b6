//! Getting codes into a pool: streamed uploads, answered when every row is in. The file is read
//! by the `csv` crate on a blocking thread and handed over a chunk at a time, so memory stays
//! flat whatever its size. The upload is a job held by the request; it is not stored, so if the
//! process dies midway the job runner ends it as interrupted, with the rows committed so far.
//!
//! The file's first row sets how its rows are read (`domain::code_file`): codes only, possibly
//! several to a field, or named columns where a customer column issues each code to that
//! customer (`tagged_codes`).

use std::collections::HashSet;

use crate::store::entity::{imports, orgs, pools};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tokio::{io::AsyncRead, sync::mpsc};
use tokio_util::io::SyncIoBridge;

use crate::{
    domain::{
        code_file::{Entry, Holder, Layout},
        coupon::{check_uploaded_code, lookup_key},
        csv,
        discount::DiscountType,
        job::JobKind,
    },
    service::{
        Error, Result,
        jobs::{self, Outcome, Run},
        tagged_codes::{self, Tagged},
    },
    store::{
        self,
        coupons::{INSERT_CHUNK, NewCodes},
        imports::{Issue, NewJob, Progress},
    },
};

/// An upload's entries, a chunk at a time; an error ends the upload.
type Rows = mpsc::Receiver<Result<Vec<Entry>>>;

/// The reason of a code already in the org.
pub const DUPLICATE: &str =
    "the code already exists in this org (earlier in this file or in a pool)";

/// Reads a code file and inserts it a chunk at a time, a code with a customer as issued to
/// them. Every malformed code, row with a value in a column that is not read, and code whose
/// customer cannot be issued to is rejected, and every duplicate (in the file or already in the
/// org) skipped, each with an issue row; every good code is kept.
pub async fn upload_csv<R>(
    db: &DatabaseConnection,
    pool: &pools::Model,
    reader: R,
) -> Result<imports::Model>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    upload(db, pool, read_rows(reader)).await
}

/// Codes given as a JSON list go through the same path as a file, numbered from 1.
pub async fn upload_list(
    db: &DatabaseConnection,
    pool: &pools::Model,
    codes: Vec<String>,
) -> Result<imports::Model> {
    let rows: Vec<Entry> = (1..)
        .zip(codes)
        .map(|(line, code)| Entry::Code {
            line,
            code,
            holder: None,
        })
        .collect();
    let chunks: Vec<_> = rows.chunks(INSERT_CHUNK).map(<[_]>::to_vec).collect();
    let (tx, rx) = mpsc::channel(chunks.len().max(1));
    for chunk in chunks {
        // The channel holds every chunk, so this cannot fail.
        let _ = tx.try_send(Ok(chunk));
    }
    // The reader sees the end of the list once the sender is gone.
    drop(tx);
    upload(db, pool, rx).await
}

async fn upload(
    db: &DatabaseConnection,
    pool: &pools::Model,
    rows: Rows,
) -> Result<imports::Model> {
    let owner = jobs::new_owner();
    let job = NewJob {
        org_id: pool.org_id,
        pool_id: Some(pool.id),
        kind: JobKind::Codes,
        total: 0,
        params: None,
        file: None,
        holder: Some(jobs::inline_holder(&owner)),
    };
    let org = store::orgs::get(db, pool.org_id)
        .await?
        .ok_or_else(|| Error::internal("the org of an upload is gone"))?;
    let target = Target {
        org,
        pool: pool.clone(),
        forgiving: pool.code_options.case_insensitive,
    };
    let job = store::imports::create(db, job).await?;
    jobs::run_inline(db, job, owner, |run| async move {
        insert_rows(&run, &target, rows).await
    })
    .await
}

/// What an upload's codes go into.
struct Target {
    org: orgs::Model,
    pool: pools::Model,
    /// The pool matches codes ignoring case and separators.
    forgiving: bool,
}

/// Parses the file on a blocking thread (the `csv` crate reads synchronously).
fn read_rows<R: AsyncRead + Unpin + Send + 'static>(reader: R) -> Rows {
    let (tx, rx) = mpsc::channel(2);
    let input = std::io::BufReader::new(SyncIoBridge::new(reader));
    tokio::task::spawn_blocking(move || {
        let mut records = match csv::records(input) {
            Ok(records) => records,
            Err(e) => return drop(tx.blocking_send(Err(unreadable(e)))),
        };
        let first = match records.next() {
            None => return,
            Some(Ok(first)) => first,
            Some(Err(e)) => return drop(tx.blocking_send(Err(unreadable(e)))),
        };
        let (layout, data) = match Layout::from_first_row(&first) {
            Ok(Some(header)) => (header, None),
            Ok(None) => (Layout::Codes, Some(first)),
            Err(e) => {
                let refused = Error::bad_request("missing_code_column", e.reason);
                return drop(tx.blocking_send(Err(refused)));
            }
        };
        let mut chunk = Vec::with_capacity(INSERT_CHUNK);
        for record in data.map(Ok).into_iter().chain(records) {
            let record = match record {
                Ok(record) => record,
                Err(e) => return drop(tx.blocking_send(Err(unreadable(e)))),
            };
            if record.is_blank() {
                continue;
            }
            chunk.extend(layout.entries(&record));
            if chunk.len() >= INSERT_CHUNK
                && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
            {
                return;
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    });
    rx
}

fn unreadable(err: std::io::Error) -> Error {
    Error::bad_request(
        "unreadable_file",
        format!("reading the upload failed: {err}"),
    )
}

async fn insert_rows(run: &Run, target: &Target, mut rows: Rows) -> Result<Outcome> {
    while let Some(chunk) = rows.recv().await {
        if !insert_chunk(run, target, chunk?).await? {
            return Ok(Outcome::Stopped);
        }
    }
    after_load(&run.db).await;
    Ok(Outcome::Finished)
}

/// After a job that loaded codes. Until autovacuum catches up, the planner keeps the coupon
/// count of before the load, and with it a claim reads and sorts the whole pool instead of
/// seeking the index: 400 ms instead of 3 ms to take 5,000 codes of a million just loaded.
/// Best effort: the codes are in either way.
pub(super) async fn after_load(db: &DatabaseConnection) {
    if let Err(err) = store::coupons::analyze(db).await {
        tracing::warn!(%err, "refreshing the coupons' statistics failed");
    }
}

/// A well-formed code of an upload and the customer its row names, if any.
struct Upload {
    line: i64,
    code: String,
    holder: Option<Holder>,
}

/// One chunk in one transaction: its coupons, its counters and its issue rows commit together.
/// False when the job's lease was lost (nothing committed).
async fn insert_chunk(run: &Run, target: &Target, entries: Vec<Entry>) -> Result<bool> {
    let Some(last_line) = entries.last().map(Entry::line) else {
        return Ok(true);
    };
    let mut report = Report::new(entries.len());
    let mut good = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry {
            Entry::Refused {
                line,
                value,
                code,
                reason,
            } => report.reject(line, value, code, reason),
            Entry::Code { line, code, holder } => match check_uploaded_code(&code) {
                Ok(()) => good.push(Upload { line, code, holder }),
                Err(reason) => report.reject(line, code, "malformed", reason.into()),
            },
        }
    }
    let txn = run.db.begin().await?;
    if target.forgiving {
        good = drop_case_twins(&txn, target.pool.org_id, good, &mut report).await?;
    }
    // The first row with a code owns it; any later one in the file is a duplicate.
    let mut seen = HashSet::with_capacity(good.len());
    let mut untagged = Vec::new();
    let mut tagged = Vec::new();
    for Upload { line, code, holder } in good {
        if !seen.insert(code.clone()) {
            report.duplicate(line, code, DUPLICATE.into());
            continue;
        }
        match holder {
            Some(holder) => tagged.push(Tagged { line, code, holder }),
            None => untagged.push((line, code)),
        }
    }
    add_available(&txn, new_codes(&target.pool), untagged, &mut report).await?;
    tagged_codes::issue(&txn, &target.org, &target.pool, tagged, &mut report).await?;
    let (progress, issues) = report.finish();
    if !store::imports::record(&txn, &run.lease, progress, issues, last_line).await? {
        return Ok(false);
    }
    txn.commit().await?;
    Ok(true)
}

/// Inserts codes as available; one the org already has is a duplicate.
async fn add_available(
    txn: &DatabaseTransaction,
    new: NewCodes,
    rows: Vec<(i64, String)>,
    report: &mut Report,
) -> Result<()> {
    let codes: Vec<String> = rows.iter().map(|(_, c)| c.clone()).collect();
    let inserted = store::coupons::insert_available(txn, new, &codes).await?;
    for (line, code) in rows {
        if inserted.contains(&code) {
            report.accept(1);
        } else {
            report.duplicate(line, code, DUPLICATE.into());
        }
    }
    Ok(())
}

/// What a chunk did: its counts and its issue rows.
pub struct Report {
    progress: Progress,
    issues: Vec<Issue>,
}

impl Report {
    fn new(entries: usize) -> Report {
        Report {
            progress: Progress {
                done: entries as i64,
                ..Progress::default()
            },
            issues: Vec::new(),
        }
    }

    pub fn accept(&mut self, n: i64) {
        self.progress.accepted += n;
    }

    /// A row (or one code of it) refused, and why.
    pub fn reject(&mut self, line: i64, value: String, code: &'static str, reason: String) {
        self.progress.rejected += 1;
        self.issue(line, value, code, reason);
    }

    /// A code skipped because the org has it already.
    pub fn duplicate(&mut self, line: i64, value: String, reason: String) {
        self.progress.skipped += 1;
        self.issue(line, value, "duplicate", reason);
    }

    fn issue(&mut self, line: i64, value: String, code: &'static str, reason: String) {
        self.issues.push(Issue {
            row_number: line,
            value,
            code,
            reason,
        });
    }

    /// The counts and the issue rows in file order.
    fn finish(mut self) -> (Progress, Vec<Issue>) {
        self.issues.sort_by_key(|i| i.row_number);
        (self.progress, self.issues)
    }
}

/// A pool with forgiving entry matches codes ignoring case and separators, so a code that
/// folds to the same key as one already in the org, or earlier in the file, would be a second
/// code a till cannot tell apart: it is skipped as a duplicate.
async fn drop_case_twins(
    txn: &DatabaseTransaction,
    org_id: i64,
    rows: Vec<Upload>,
    report: &mut Report,
) -> Result<Vec<Upload>> {
    let keys: Vec<String> = rows.iter().filter_map(|u| lookup_key(&u.code)).collect();
    let mut taken = store::coupons::taken_lookup_keys(txn, org_id, &keys).await?;
    let mut kept = Vec::with_capacity(rows.len());
    for upload in rows {
        if lookup_key(&upload.code).is_none_or(|key| taken.insert(key)) {
            kept.push(upload);
        } else {
            report.duplicate(
                upload.line,
                upload.code,
                "a code differing only in case or separators is already in this org; this \
                 pool matches codes ignoring both"
                    .into(),
            );
        }
    }
    Ok(kept)
}

/// The interrupted-upload job, when the runner finds one whose request died: its file was
/// never stored, so it ends failed, keeping the rows committed so far.
pub fn interrupted() -> Error {
    Error::conflict(
        "upload_interrupted",
        "the upload stopped before its end when the service restarted; the counted rows are in, \
         and uploading the file again skips them as duplicates",
    )
}

pub fn new_codes(pool: &pools::Model) -> NewCodes {
    NewCodes {
        org_id: pool.org_id,
        pool_id: pool.id,
        value: pool.value,
        gift_card: pool.discount_type == DiscountType::GiftCard,
    }
}
