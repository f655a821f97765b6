//! Customer lists uploaded as CSV: a header naming the identifier column (external_id, email,
//! mobile or user_id), then one customer a row. Used for the allow-list of "specific customers
//! only" pools and for batch issuing.

use entity::{imports, pools};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, Lines};

use crate::{
    domain::{
        Invalid, csv,
        customer::{self, CustomerIdentifier},
    },
    store::{
        self,
        imports::{Issue, Progress},
    },
};

/// Rows handled per transaction.
pub const CHUNK: usize = 1_000;

/// One data row: its line number, the raw value, and the identifier it names.
pub struct Row {
    pub number: i64,
    pub value: String,
    pub identifier: Result<CustomerIdentifier, Invalid>,
}

/// Reads a customer list a chunk at a time.
pub struct CustomerRows<R> {
    lines: Lines<R>,
    column: Option<String>,
    /// Where the identifier column is in each row.
    index: usize,
    number: i64,
}

impl<R: AsyncBufRead + Unpin> CustomerRows<R> {
    pub fn new(reader: R) -> CustomerRows<R> {
        CustomerRows {
            lines: reader.lines(),
            column: None,
            index: 0,
            number: 0,
        }
    }

    /// The next rows, at most `max`; empty at the end. The first line must be the header.
    pub async fn next_chunk(&mut self, max: usize) -> Result<Vec<Row>, DbErr> {
        let mut rows = Vec::with_capacity(max);
        while rows.len() < max {
            let Some(line) = self
                .lines
                .next_line()
                .await
                .map_err(|e| DbErr::Custom(format!("reading the upload failed: {e}")))?
            else {
                break;
            };
            self.number += 1;
            let fields = csv::fields(&line);
            let Some(column) = &self.column else {
                // Checked before the job started (`checked_header`); an unknown column here
                // rejects every row.
                self.index = customer::identifier_column(&fields).unwrap_or(0);
                self.column = Some(fields.into_iter().nth(self.index).unwrap_or_default());
                continue;
            };
            let value = fields.into_iter().nth(self.index).unwrap_or_default();
            if value.is_empty() && line.trim().is_empty() {
                continue;
            }
            let identifier = CustomerIdentifier::from_column(column, &value);
            rows.push(Row {
                number: self.number,
                value,
                identifier,
            });
        }
        Ok(rows)
    }
}

/// 400 `missing_identifier_column` unless a customer list's first line names an identifier
/// column, so a wrong file is refused before any job starts.
pub fn check_header(file: &[u8]) -> crate::service::Result<()> {
    let first = file.split(|&b| b == b'\n').next().unwrap_or_default();
    customer::identifier_column(&csv::fields(&String::from_utf8_lossy(first)))
        .map(|_| ())
        .map_err(|e| crate::service::Error::bad_request("missing_identifier_column", e.reason))
}

/// A streamed customer list whose header [`check_header`] accepted, header included.
pub async fn checked_header<R: AsyncBufRead + Unpin>(
    mut reader: R,
) -> crate::service::Result<impl AsyncBufRead + Unpin> {
    let mut header = Vec::new();
    reader
        .read_until(b'\n', &mut header)
        .await
        .map_err(|e| crate::service::Error::bad_request("unreadable_body", e.to_string()))?;
    check_header(&header)?;
    Ok(std::io::Cursor::new(header).chain(reader))
}

/// Puts the listed customers on the pool's allow-list. Unknown customers and bad identifiers
/// are rejected, customers already listed skipped, each with an issue row.
pub async fn upload_allow_list<R: AsyncBufRead + Unpin>(
    db: &DatabaseConnection,
    pool: &pools::Model,
    reader: R,
) -> Result<imports::Model, DbErr> {
    let import = store::imports::create(db, pool.org_id, Some(pool.id), "allow_list", 0).await?;
    let mut rows = CustomerRows::new(reader);
    let outcome: Result<(), DbErr> = async {
        loop {
            let chunk = rows.next_chunk(CHUNK).await?;
            if chunk.is_empty() {
                return Ok(());
            }
            let txn = db.begin().await?;
            let mut progress = Progress {
                done: chunk.len() as i64,
                ..Progress::default()
            };
            let mut issues = Vec::new();
            for row in chunk {
                let customer = match &row.identifier {
                    Ok(id) => store::customers::find(&txn, pool.org_id, id)
                        .await?
                        .ok_or_else(|| id.not_found_message().to_string()),
                    Err(e) => Err(e.reason.clone()),
                };
                match customer {
                    Ok(c) if store::issuance::allow(&txn, pool.id, c.id).await? => {
                        progress.accepted += 1
                    }
                    Ok(_) => {
                        progress.skipped += 1;
                        issues.push(Issue {
                            row_number: row.number,
                            value: row.value,
                            code: "duplicate",
                            reason: "already on the list".into(),
                        });
                    }
                    Err(reason) => {
                        progress.rejected += 1;
                        issues.push(Issue {
                            row_number: row.number,
                            value: row.value,
                            code: "invalid_customer",
                            reason,
                        });
                    }
                }
            }
            store::imports::record(&txn, import.id, progress, issues).await?;
            txn.commit().await?;
        }
    }
    .await;
    store::imports::conclude(db, &import, outcome).await
}
