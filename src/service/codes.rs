//! Getting codes into a pool: streamed uploads.

use std::collections::HashSet;

use entity::{imports, pools};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::{
    domain::{coupon::check_uploaded_code, csv},
    store::{
        self,
        coupons::{INSERT_CHUNK, NewCodes},
        imports::{Issue, Progress},
    },
};

/// Column names that mark an optional header row.
const HEADER_NAMES: [&str; 4] = ["code", "codes", "coupon_code", "coupon"];

/// Reads a code file a line at a time and inserts it a chunk at a time, so memory stays flat
/// whatever the file size. Every malformed row is rejected and every duplicate (in the file or
/// already in the org) skipped, each with an issue row; every good row is kept.
pub async fn upload_csv<R: AsyncBufRead + Unpin>(
    db: &DatabaseConnection,
    pool: &pools::Model,
    reader: R,
) -> Result<imports::Model, DbErr> {
    let import = store::imports::create(db, pool.org_id, Some(pool.id), "codes", 0).await?;
    let mut lines = reader.lines();
    let mut chunk = Vec::with_capacity(INSERT_CHUNK);
    let mut row_number = 0i64;
    let outcome: Result<(), DbErr> = async {
        while let Some(line) = lines.next_line().await.map_err(io_error)? {
            row_number += 1;
            let fields = csv::fields(&line);
            if row_number == 1 && csv::is_header(&fields, &HEADER_NAMES) {
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            chunk.push((row_number, fields.into_iter().next().unwrap_or_default()));
            if chunk.len() == INSERT_CHUNK {
                insert_chunk(db, pool, import.id, std::mem::take(&mut chunk)).await?;
            }
        }
        insert_chunk(db, pool, import.id, chunk).await
    }
    .await;
    store::imports::conclude(db, &import, outcome).await
}

/// Codes given as a JSON list go through the same path as a file.
pub async fn upload_list(
    db: &DatabaseConnection,
    pool: &pools::Model,
    codes: Vec<String>,
) -> Result<imports::Model, DbErr> {
    let text = codes
        .iter()
        .map(|c| csv::quote(c))
        .collect::<Vec<_>>()
        .join("\n");
    upload_csv(db, pool, text.as_bytes()).await
}

fn io_error(err: std::io::Error) -> DbErr {
    DbErr::Custom(format!("reading the upload failed: {err}"))
}

/// One chunk in one transaction: its coupons, its counters and its issue rows commit together.
async fn insert_chunk(
    db: &DatabaseConnection,
    pool: &pools::Model,
    import_id: i64,
    rows: Vec<(i64, String)>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
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
    let codes: Vec<String> = good.iter().map(|(_, c)| c.clone()).collect();
    let txn = db.begin().await?;
    let mut inserted: HashSet<String> =
        store::coupons::insert_available(&txn, new_codes(pool), &codes).await?;
    let mut progress = Progress {
        done: rows.len() as i64,
        rejected: issues.len() as i64,
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
    store::imports::record(&txn, import_id, progress, issues).await?;
    txn.commit().await
}

pub fn new_codes(pool: &pools::Model) -> NewCodes {
    NewCodes {
        org_id: pool.org_id,
        pool_id: pool.id,
        value: pool.value,
        gift_card: pool.discount_type == "gift_card",
    }
}
