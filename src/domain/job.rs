//! Background jobs as their rows (`imports`) record them: what a job does and where it stands.

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

/// What a job does.
// Stored as its name in `imports.kind`: never rename a `string_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum JobKind {
    /// Codes uploaded into a pool, worked while the upload streams.
    #[sea_orm(string_value = "codes")]
    Codes,
    /// Codes made from a pool's pattern.
    #[sea_orm(string_value = "generate")]
    Generate,
    /// A customer list, issued a coupon each.
    #[sea_orm(string_value = "issue_batch")]
    IssueBatch,
    /// A customer list whose coupons of a pool are revoked.
    #[sea_orm(string_value = "revocation")]
    Revocation,
    /// A customer list added to a pool's allow list.
    #[sea_orm(string_value = "allow_list")]
    AllowList,
}

impl JobKind {
    /// The stored name, as the API and metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Codes => "codes",
            JobKind::Generate => "generate",
            JobKind::IssueBatch => "issue_batch",
            JobKind::Revocation => "revocation",
            JobKind::AllowList => "allow_list",
        }
    }
}

/// Where a job stands. A `running` job whose lease lapsed is claimed again.
// Stored as its name in `imports.state`: never rename a `string_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum JobState {
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl JobState {
    /// The stored name, as the API and metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    #[test]
    fn kinds_keep_their_stored_names() {
        let names = [
            "codes",
            "generate",
            "issue_batch",
            "revocation",
            "allow_list",
        ];
        let kinds: Vec<JobKind> = JobKind::iter().collect();
        assert_eq!(kinds.len(), names.len());
        for (kind, name) in kinds.into_iter().zip(names) {
            assert_eq!((kind.to_value(), kind.as_str()), (name.to_string(), name));
            assert_eq!(JobKind::try_from_value(&name.to_string()).unwrap(), kind);
        }
        assert!(JobKind::try_from_value(&"customers".to_string()).is_err());
    }

    #[test]
    fn states_keep_their_stored_names() {
        let names = ["running", "done", "failed"];
        let states: Vec<JobState> = JobState::iter().collect();
        assert_eq!(states.len(), names.len());
        for (state, name) in states.into_iter().zip(names) {
            assert_eq!((state.to_value(), state.as_str()), (name.to_string(), name));
            assert_eq!(JobState::try_from_value(&name.to_string()).unwrap(), state);
        }
        assert!(JobState::try_from_value(&"queued".to_string()).is_err());
    }
}
