//! Getting codes into a pool: streamed uploads, answered when every row is in. The file is read
//! by the `csv` crate on a blocking thread and handed over a chunk at a time, so memory stays
//! flat whatever its size. The upload is a job held by the request; it is not stored, so if the
//! process dies midway the job runner ends it as interrupted, with the rows committed so far.

use std::collections::HashSet;

use crate::store::entity::{imports, pools};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tokio::{io::AsyncRead, sync::mpsc};
use tokio_util::io::SyncIoBridge;

use crate::{
    domain::{
        coupon::{check_uploaded_code, lookup_key},
        csv,
        discount::DiscountType,
        job::JobKind,
    },
    service::{
        Error, Result,
        jobs::{self, Outcome, Run},
    },
    store::{
        self,
        coupons::{INSERT_CHUNK, NewCodes},
        imports::{Issue, NewJob, Progress},
    },
};

/// Column names that mark an optional header row.
const HEADER_NAMES: [&str; 4] = ["code", "codes", "coupon_code", "coupon"];

/// Rows of an upload, (line, code), a chunk at a time; an error ends the upload.
type Rows = mpsc::Receiver<Result<Vec<(i64, String)>>>;

/// Reads a code file and inserts it a chunk at a time. Every malformed row is rejected and
/// every duplicate (in the file or already in the org) skipped, each with an issue row; every
/// good row is kept.
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
    let rows: Vec<(i64, String)> = (1..).zip(codes).collect();
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
    let job = store::imports::create(db, job).await?;
    let new = new_codes(pool);
    let forgiving = pool.code_options.case_insensitive;
    jobs::run_inline(db, job, owner, |run| async move {
        insert_rows(&run, new, forgiving, rows).await
    })
    .await
}

/// Parses the file on a blocking thread (the `csv` crate reads synchronously).
fn read_rows<R: AsyncRead + Unpin + Send + 'static>(reader: R) -> Rows {
    let (tx, rx) = mpsc::channel(2);
    let input = std::io::BufReader::new(SyncIoBridge::new(reader));
    tokio::task::spawn_blocking(move || {
        let records = match csv::records(input) {
            Ok(records) => records,
            Err(e) => return drop(tx.blocking_send(Err(unreadable(e)))),
        };
        let mut chunk = Vec::with_capacity(INSERT_CHUNK);
        let mut first = true;
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(e) => return drop(tx.blocking_send(Err(unreadable(e)))),
            };
            let header = std::mem::take(&mut first) && csv::is_header(&record, &HEADER_NAMES);
            if header || record.is_blank() {
                continue;
            }
            chunk.push((record.line as i64, record.first().to_string()));
            if chunk.len() == INSERT_CHUNK
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

async fn insert_rows(run: &Run, new: NewCodes, forgiving: bool, mut rows: Rows) -> Result<Outcome> {
    while let Some(chunk) = rows.recv().await {
        if !insert_chunk(run, new, forgiving, chunk?).await? {
            return Ok(Outcome::Stopped);
        }
    }
    Ok(Outcome::Finished)
}

/// One chunk in one transaction: its coupons, its counters and its issue rows commit together.
/// False when the job's lease was lost (nothing committed).
async fn insert_chunk(
    run: &Run,
    new: NewCodes,
    forgiving: bool,
    rows: Vec<(i64, String)>,
) -> Result<bool> {
    let Some(&(last_line, _)) = rows.last() else {
        return Ok(true);
    };
    let mut issues = Vec::new();
    let mut good = Vec::with_capacity(rows.len());
    for (row_number, code) in rows.iter() {
        match check_uploaded_code(code) {
            Ok(()) => good.push((*row_number, code.clone())),
            Err(reason) => issues.push(Issue {
                row_number: *row_number,
                value: code.clone(),
                code: "malformed",
                reason: reason.to_string(),
            }),
        }
    }
    let txn = run.db.begin().await?;
    if forgiving {
        good = drop_case_twins(&txn, new.org_id, good, &mut issues).await?;
    }
    let codes: Vec<String> = good.iter().map(|(_, c)| c.clone()).collect();
    let mut inserted: HashSet<String> = store::coupons::insert_available(&txn, new, &codes).await?;
    let twins = issues.iter().filter(|i| i.code == "duplicate").count() as i64;
    let mut progress = Progress {
        done: rows.len() as i64,
        rejected: issues.len() as i64 - twins,
        skipped: twins,
        ..Progress::default()
    };
    for (row_number, code) in good {
        // The first row with a code owns the insert; any later one is a duplicate.
        if inserted.remove(&code) {
            progress.accepted += 1;
        } else {
            progress.skipped += 1;
            issues.push(Issue {
                row_number,
                value: code,
                code: "duplicate",
                reason: "the code already exists in this org (earlier in this file or in a pool)"
                    .into(),
            });
        }
    }
    issues.sort_by_key(|i| i.row_number);
    if !store::imports::record(&txn, &run.lease, progress, issues, last_line).await? {
        return Ok(false);
    }
    txn.commit().await?;
    Ok(true)
}

/// A pool with forgiving entry matches codes ignoring case and separators, so a code that
/// folds to the same key as one already in the org, or earlier in the file, would be a second
/// code a till cannot tell apart: it is skipped as a duplicate.
async fn drop_case_twins(
    txn: &DatabaseTransaction,
    org_id: i64,
    rows: Vec<(i64, String)>,
    issues: &mut Vec<Issue>,
) -> Result<Vec<(i64, String)>> {
    let keys: Vec<String> = rows.iter().filter_map(|(_, c)| lookup_key(c)).collect();
    let mut taken = store::coupons::taken_lookup_keys(txn, org_id, &keys).await?;
    let mut kept = Vec::with_capacity(rows.len());
    for (row_number, code) in rows {
        if lookup_key(&code).is_none_or(|key| taken.insert(key)) {
            kept.push((row_number, code));
        } else {
            issues.push(Issue {
                row_number,
                value: code,
                code: "duplicate",
                reason: "a code differing only in case or separators is already in this org; \
                         this pool matches codes ignoring both"
                    .into(),
            });
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
