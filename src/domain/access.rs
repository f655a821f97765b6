//! Access groups (Antavo's "User group"): which pools an admin key may manage. A key bound to
//! groups reaches the pools of those groups only; an unbound key reaches every pool of its org.

use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Deserializer, Serialize};

/// The groups a bound key is limited to, as its row holds them (a JSON list of ids). A stored
/// value that is not a list binds the key to no group at all, never to every pool.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult)]
#[serde(transparent)]
pub struct GroupIds(pub Vec<i64>);

impl<'de> Deserialize<'de> for GroupIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GroupIds, D::Error> {
        super::lenient_list(deserializer, serde_json::Value::as_i64).map(GroupIds)
    }
}

/// The pools a caller reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PoolAccess {
    /// Every pool of the org: keys not bound to any group.
    #[default]
    All,
    /// Only pools of these groups; ungrouped pools are out of reach.
    Groups(Vec<i64>),
}

impl PoolAccess {
    /// The access of a key bound to `groups`, or of an unbound key (none).
    pub fn of(groups: Option<Vec<i64>>) -> PoolAccess {
        groups.map_or(PoolAccess::All, PoolAccess::Groups)
    }

    /// Whether a pool in group `group_id` (none for an ungrouped pool) is within reach.
    pub fn reaches(&self, group_id: Option<i64>) -> bool {
        match self {
            PoolAccess::All => true,
            PoolAccess::Groups(ids) => group_id.is_some_and(|id| ids.contains(&id)),
        }
    }

    /// The groups the key is bound to, if it is.
    pub fn groups(&self) -> Option<&[i64]> {
        match self {
            PoolAccess::All => None,
            PoolAccess::Groups(ids) => Some(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbound_key_reaches_every_pool() {
        let access = PoolAccess::of(None);
        assert_eq!(access, PoolAccess::All);
        assert!(access.reaches(None));
        assert!(access.reaches(Some(7)));
        assert_eq!(access.groups(), None);
    }

    #[test]
    fn a_bound_key_reaches_only_the_pools_of_its_groups() {
        let access = PoolAccess::of(Some(vec![1, 3]));
        assert!(access.reaches(Some(1)));
        assert!(access.reaches(Some(3)));
        assert!(!access.reaches(Some(2)));
        assert!(!access.reaches(None), "ungrouped pools are out of reach");
        assert_eq!(access.groups(), Some(&[1, 3][..]));
        assert!(!PoolAccess::of(Some(Vec::new())).reaches(Some(1)));
    }
}
