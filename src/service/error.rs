//! The one error type of the service layer. It speaks the domain: a rule that refused, a thing
//! that does not exist, a state that forbids the change. The API's error module maps it to HTTP once.

use std::borrow::Cow;

use sea_orm::{DbErr, RuntimeErr};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable machine-readable code such as `customer_limit` or `pattern_taken`.
pub type Code = Cow<'static, str>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A business rule said no; nothing changed.
    #[error("{0}")]
    Refused(Refusal),
    /// No such thing in the caller's org (or it belongs to another org).
    #[error("{detail}")]
    NotFound { code: Code, detail: String },
    /// The current state does not allow the change (duplicate, wrong status, key reuse).
    #[error("{detail}")]
    Conflict { code: Code, detail: String },
    /// One field of the request or of a setting is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: Code, reason: String },
    /// One field names something that cannot be used, or breaks a format rule with its own
    /// code (an unknown customer, a pool not claimed, an invalid pattern). Unlike a refusal no
    /// business rule was asked: the request itself must change.
    #[error("{detail}")]
    Rejected {
        field: Code,
        code: Code,
        detail: String,
    },
    /// The request could not be read at all (unreadable file, missing header column).
    #[error("{detail}")]
    BadRequest { code: Code, detail: String },
    /// The caller's credentials (a remote key, a signature) are missing or wrong.
    #[error("{detail}")]
    Unauthorized { code: Code, detail: String },
    /// The caller may not do this (level, group, claimed pool).
    #[error("{detail}")]
    Forbidden { code: Code, detail: String },
    /// A body, file or list is over its size limit.
    #[error("{detail}")]
    TooLarge { code: Code, detail: String },
    /// A remote party (remote coupon source, gateway) failed or answered badly.
    #[error("{detail}")]
    Upstream { code: Code, detail: String },
    /// A concurrent request with the same idempotency key committed first; the caller replays.
    #[error("a concurrent request with this Idempotency-Key finished first")]
    RaceLost,
    /// The database failed; the cause is logged, never shown.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// An invariant broke inside the service; the cause is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

/// Why a rule refused: its code, a sentence, and every failed rule when several failed at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Refusal {
    pub code: Code,
    pub detail: String,
    pub failures: Vec<Failure>,
}

/// One failed rule inside a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub detail: String,
}

impl Error {
    pub fn refused(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::Refused(Refusal {
            code: code.into(),
            detail: detail.into(),
            failures: Vec::new(),
        })
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Error {
        Error::NotFound {
            code: "not_found".into(),
            detail: format!("{what} {id} does not exist"),
        }
    }

    pub fn conflict(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::Conflict {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn invalid(field: impl Into<Code>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn rejected(
        field: impl Into<Code>,
        code: impl Into<Code>,
        detail: impl Into<String>,
    ) -> Error {
        Error::Rejected {
            field: field.into(),
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn unauthorized(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::Unauthorized {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn too_large(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::TooLarge {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn bad_request(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::BadRequest {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn forbidden(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::Forbidden {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn upstream(code: impl Into<Code>, detail: impl Into<String>) -> Error {
        Error::Upstream {
            code: code.into(),
            detail: detail.into(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Error {
        Error::Internal(cause.to_string())
    }

    /// The stable code a caller (or a job's issue row) sees.
    pub fn code(&self) -> &str {
        match self {
            Error::Refused(r) => &r.code,
            Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::BadRequest { code, .. }
            | Error::Forbidden { code, .. }
            | Error::TooLarge { code, .. }
            | Error::Upstream { code, .. }
            | Error::Unauthorized { code, .. }
            | Error::Rejected { code, .. } => code,
            Error::Invalid { .. } => "validation_failed",
            Error::RaceLost => "idempotency_race_lost",
            Error::Db(e) if is_unavailable(e) => "database_unavailable",
            Error::Db(_) | Error::Internal(_) => "internal_error",
        }
    }

    /// A sentence safe to show a caller: never database or internal text.
    pub fn public_detail(&self) -> String {
        match self {
            Error::Db(e) if is_unavailable(e) => "the database is unavailable; retry later".into(),
            Error::Db(_) | Error::Internal(_) => {
                "the service failed to complete the request; it has been logged".into()
            }
            Error::Invalid { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } | Error::Rejected { field, .. } => Some(field),
            _ => None,
        }
    }

    /// True for the caller's own mistakes and rule refusals, false for faults of the service
    /// or its dependencies.
    pub fn is_caller_error(&self) -> bool {
        !matches!(
            self,
            Error::Db(_) | Error::Internal(_) | Error::Upstream { .. } | Error::RaceLost
        )
    }
}

/// The database cannot be reached (as opposed to a statement that failed): no connection to
/// be had, or the one in use was lost (server shut down, restarted or gone from the network)
/// under a statement.
pub fn is_unavailable(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => {
            connection_lost(err)
        }
        _ => false,
    }
}

fn connection_lost(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    match err {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        // Class 08: connection exception; 57P01-57P03: admin or crash shutdown, starting up.
        E::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl From<crate::domain::Invalid> for Error {
    fn from(e: crate::domain::Invalid) -> Error {
        Error::invalid(e.field, e.reason)
    }
}

impl From<crate::domain::pattern::PatternError> for Error {
    fn from(e: crate::domain::pattern::PatternError) -> Error {
        Error::rejected(e.field, e.code, e.message)
    }
}

impl From<crate::domain::issuance::Refusal> for Error {
    fn from(r: crate::domain::issuance::Refusal) -> Error {
        Error::refused(r.code.as_str(), r.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_never_reach_the_caller() {
        let e = Error::Db(DbErr::Custom("relation \"coupons\" does not exist".into()));
        assert_eq!(e.code(), "internal_error");
        assert!(!e.public_detail().contains("coupons"));
        assert!(!e.is_caller_error());
    }

    #[test]
    fn refusals_keep_their_rule_code() {
        let e = Error::refused("customer_limit", "the customer holds the maximum");
        assert_eq!(e.code(), "customer_limit");
        assert!(e.is_caller_error());
        assert_eq!(
            Error::invalid("value", "must be positive").code(),
            "validation_failed"
        );
    }
}
