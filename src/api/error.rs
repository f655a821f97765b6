//! The one error type of the API, rendered as RFC 9457 `application/problem+json` with a stable
//! machine-readable `code`.

use poem::http::StatusCode;
use poem_openapi::{ApiResponse, Object, payload::Json};
use sea_orm::DbErr;

/// A problem document.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct Problem {
    /// URI naming the problem kind: `urn:coupond:problem:<code>`.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the status.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, in a sentence.
    pub detail: String,
    /// Stable machine-readable reason, e.g. `not_found`, `validation_failed`, `customer_limit`.
    pub code: String,
    /// The request field at fault, when there is one.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
    /// Every individual failure, when several rules or rows failed at once.
    #[oai(skip_serializing_if_is_empty, default)]
    pub errors: Vec<ProblemItem>,
}

/// One failed rule or field inside a problem.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct ProblemItem {
    pub code: String,
    pub detail: String,
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request could not be read (malformed JSON, wrong type, missing parameter).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Box<Problem>>),
    /// No API key, or an unknown or revoked one.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Box<Problem>>),
    /// The API key lacks the scope this operation needs.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Box<Problem>>),
    /// No such resource in the caller's org.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Box<Problem>>),
    /// The request conflicts with the current state (duplicate, wrong status, idempotency key reuse).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Box<Problem>>),
    /// The body, file or list is over its size limit.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Box<Problem>>),
    /// The request was read but a field or business rule refused it.
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Box<Problem>>),
    /// Too many requests for this key, customer or address; wait `Retry-After` seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Box<Problem>>),
    /// Something failed inside the service; the cause is logged, not returned.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Box<Problem>>),
    /// A remote coupon source did not answer, or answered without a usable code.
    #[oai(status = 502, content_type = "application/problem+json")]
    BadGateway(Json<Box<Problem>>),
    /// A dependency (the database) is unavailable; retry later.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Box<Problem>>),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::from_problem(problem(status, code, detail.into()))
    }

    pub fn from_problem(p: Problem) -> ApiError {
        let json = Json(Box::new(p));
        match json.0.status {
            400 => ApiError::BadRequest(json),
            401 => ApiError::Unauthorized(json),
            403 => ApiError::Forbidden(json),
            404 => ApiError::NotFound(json),
            409 => ApiError::Conflict(json),
            413 => ApiError::PayloadTooLarge(json),
            429 => ApiError::TooManyRequests(json),
            422 => ApiError::Unprocessable(json),
            502 => ApiError::BadGateway(json),
            503 => ApiError::Unavailable(json),
            _ => ApiError::Internal(json),
        }
    }

    pub fn problem(&self) -> &Problem {
        match self {
            ApiError::BadRequest(p)
            | ApiError::Unauthorized(p)
            | ApiError::Forbidden(p)
            | ApiError::NotFound(p)
            | ApiError::Conflict(p)
            | ApiError::PayloadTooLarge(p)
            | ApiError::TooManyRequests(p)
            | ApiError::Unprocessable(p)
            | ApiError::Internal(p)
            | ApiError::BadGateway(p)
            | ApiError::Unavailable(p) => &p.0,
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: send `Authorization: Bearer <key>`",
        )
    }

    pub fn forbidden(scope: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!("this API key lacks the `{scope}` scope"),
        )
    }

    /// 403 for an org-wide operation asked by a key bound to access groups. The code is the
    /// one every scope refusal has.
    pub fn bound_to_groups() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            "this API key is bound to access groups: it manages the pools of its groups only",
        )
    }

    /// 404 for a resource the caller cannot see: it does not exist or belongs to another org.
    pub fn not_found(what: &str, id: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} {id} does not exist"),
        )
    }

    pub fn conflict(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, detail)
    }

    /// 422 naming the offending field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
        let mut p = problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail.into(),
        );
        p.field = Some(field.to_string());
        ApiError::from_problem(p)
    }

    /// 422 for a business rule that said no, with the rule's own code.
    pub fn refused(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 500 whose cause goes to the log, never to the client.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the service failed to complete the request; it has been logged",
        )
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> ApiError {
        crate::service::Error::Db(err).into()
    }
}

/// The one mapping from the service's answer to HTTP.
impl From<crate::service::Error> for ApiError {
    fn from(err: crate::service::Error) -> ApiError {
        use crate::service::Error as E;
        let status = match &err {
            E::Refused(_) | E::Invalid { .. } | E::Rejected { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            E::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::Conflict { .. } | E::RaceLost => StatusCode::CONFLICT,
            E::BadRequest { .. } => StatusCode::BAD_REQUEST,
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::Upstream { .. } => StatusCode::BAD_GATEWAY,
            E::Db(e) if crate::service::error::is_unavailable(e) => {
                tracing::error!(cause = %e, "database unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::Db(_) | E::Internal(_) => {
                tracing::error!(cause = %err, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut p = problem(status, err.code(), err.public_detail());
        p.field = err.field().map(str::to_string);
        if let E::Refused(r) = err {
            p.errors = r
                .failures
                .into_iter()
                .map(|f| ProblemItem {
                    code: f.code.into_owned(),
                    detail: f.detail,
                    field: None,
                })
                .collect();
        }
        ApiError::from_problem(p)
    }
}

impl From<crate::domain::pattern::PatternError> for ApiError {
    fn from(err: crate::domain::pattern::PatternError) -> ApiError {
        crate::service::Error::from(err).into()
    }
}

impl From<crate::domain::Invalid> for ApiError {
    fn from(err: crate::domain::Invalid) -> ApiError {
        ApiError::invalid(err.field, err.reason)
    }
}

pub fn problem(status: StatusCode, code: &str, detail: String) -> Problem {
    Problem {
        kind: format!("urn:coupond:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        code: code.to_string(),
        field: None,
        errors: Vec::new(),
    }
}

/// Turns errors raised outside our handlers (request parsing, unknown routes, missing
/// credentials) into problem documents, so every error a client sees has the same shape.
pub fn problem_from_poem_error(err: &poem::Error) -> Problem {
    let status = err.status();
    let message = err.to_string();
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::BAD_REQUEST if message.contains("payload") => "malformed_body",
        StatusCode::BAD_REQUEST if message.contains("parameter") => "invalid_parameter",
        StatusCode::BAD_REQUEST => "bad_request",
        s if s.is_server_error() => "internal_error",
        _ => "request_failed",
    };
    let mut p = problem(status, code, message.clone());
    if status == StatusCode::UNAUTHORIZED {
        p.detail = ApiError::unauthorized().problem().detail.clone();
    }
    p.field = offending_field(&message);
    p
}

/// poem-openapi names the failing field or parameter in its messages as `[field]` or
/// `parameter `name``; surface it as `field`.
fn offending_field(message: &str) -> Option<String> {
    let between = |open: &str, close: char| {
        let start = message.find(open)? + open.len();
        let len = message[start..].find(close)?;
        Some(message[start..start + len].to_string())
    };
    between("parameter `", '`')
        .or_else(|| between("[", ']'))
        .filter(|f| !f.is_empty() && !f.contains(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_field_in_parse_messages() {
        assert_eq!(
            offending_field("failed to parse \"CreateApiKey\": [scopes] expected array"),
            Some("scopes".into())
        );
        assert_eq!(
            offending_field("failed to parse parameter `id`: invalid digit"),
            Some("id".into())
        );
        assert_eq!(offending_field("expected value at line 1"), None);
    }

    #[test]
    fn statuses_map_to_their_variants() {
        for status in [400, 401, 403, 404, 409, 422, 500, 502, 503] {
            let err = ApiError::new(StatusCode::from_u16(status).unwrap(), "x", "y");
            assert_eq!(err.problem().status, status);
            assert_eq!(err.problem().kind, "urn:coupond:problem:x");
        }
    }
}
