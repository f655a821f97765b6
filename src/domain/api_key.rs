//! API keys: the secret handed out once, its stored SHA-256 hash, and the scopes it carries.

use poem_openapi::Enum;
use rand::{Rng, distr::Alphanumeric};
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Every key starts with this, so a leaked key is recognisable in logs and secret scanners.
const KEY_PREFIX: &str = "cpd_";
const KEY_RANDOM_LEN: usize = 40;
const HINT_LEN: usize = 8;

/// What a key may do. `admin` may do everything.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
pub enum Scope {
    Admin,
    Pos,
    Workflow,
    Market,
    Remote,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Pos => "pos",
            Scope::Workflow => "workflow",
            Scope::Market => "market",
            Scope::Remote => "remote",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        [
            Scope::Admin,
            Scope::Pos,
            Scope::Workflow,
            Scope::Market,
            Scope::Remote,
        ]
        .into_iter()
        .find(|scope| scope.as_str() == s)
    }

    /// Whether a key holding `held` scopes may issue from pools not claimed for workflows: a
    /// key that issues only as a workflow reaches claimed pools alone, on every path.
    pub fn reaches_unclaimed_pools(held: &[Scope]) -> bool {
        Scope::granted(held, Scope::Market)
    }

    /// Whether a key holding `held` scopes may act with `needed`.
    pub fn granted(held: &[Scope], needed: Scope) -> bool {
        held.contains(&needed) || held.contains(&Scope::Admin)
    }
}

/// The scopes a key carries, as its row holds them (a JSON list of names). Names this version
/// does not know (written by a newer one) are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult)]
pub struct Scopes(pub Vec<Scope>);

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|s| s.as_str()))
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scopes, D::Error> {
        super::lenient_list(deserializer, |v| v.as_str().and_then(Scope::parse)).map(Scopes)
    }
}

/// A freshly minted key: the secret (shown once) and what is stored of it.
pub struct NewKey {
    pub secret: String,
    pub hash: String,
    pub hint: String,
}

impl NewKey {
    pub fn generate() -> NewKey {
        let random: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(KEY_RANDOM_LEN)
            .map(char::from)
            .collect();
        let secret = format!("{KEY_PREFIX}{random}");
        NewKey {
            hash: hash_secret(&secret),
            hint: secret[..HINT_LEN].to_string(),
            secret,
        }
    }
}

/// The stored form of a key: lowercase hex SHA-256. Keys are long and random, so no salt or
/// slow hash is needed; the hash only keeps a database dump from being a key list.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored`, compared in constant time so the time an answer takes
/// says nothing about how much of a stored hash a guess matched.
pub fn hash_matches(secret: &str, stored: &str) -> bool {
    let computed = hash_secret(secret);
    computed.len() == stored.len()
        && computed
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_key_reaches_only_claimed_pools() {
        assert!(!Scope::reaches_unclaimed_pools(&[Scope::Workflow]));
        assert!(!Scope::reaches_unclaimed_pools(&[
            Scope::Workflow,
            Scope::Pos
        ]));
        assert!(Scope::reaches_unclaimed_pools(&[
            Scope::Workflow,
            Scope::Market
        ]));
        assert!(Scope::reaches_unclaimed_pools(&[Scope::Admin]));
    }

    #[test]
    fn generated_keys_are_prefixed_unique_and_hash_to_their_stored_form() {
        let a = NewKey::generate();
        let b = NewKey::generate();
        assert!(a.secret.starts_with("cpd_"));
        assert_eq!(a.secret.len(), 44);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash_secret(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(a.secret.starts_with(&a.hint));
    }

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_match_only_their_own_secret() {
        let key = NewKey::generate();
        assert!(hash_matches(&key.secret, &key.hash));
        assert!(!hash_matches("cpd_wrong", &key.hash));
        assert!(!hash_matches(&key.secret, &key.hash[..63]));
    }

    #[test]
    fn admin_is_granted_every_scope_and_others_only_their_own() {
        assert!(Scope::granted(&[Scope::Admin], Scope::Remote));
        assert!(Scope::granted(&[Scope::Pos], Scope::Pos));
        assert!(!Scope::granted(&[Scope::Pos], Scope::Admin));
        assert!(!Scope::granted(&[], Scope::Pos));
    }

    #[test]
    fn scopes_round_trip_through_their_names() {
        for s in ["admin", "pos", "workflow", "market", "remote"] {
            assert_eq!(Scope::parse(s).map(Scope::as_str), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
    }
}
