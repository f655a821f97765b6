//! What a pool is made of as the caller writes it (settings, code options, a remote source),
//! and its coupon counts.

use chrono::{DateTime, Utc};
use poem_openapi::{Object, types::MaybeUndefined};
use serde::{Deserialize, Serialize};

use crate::domain::{
    discount::DiscountType,
    expiry::ExpiryRules,
    issuance::IssuanceRules,
    pool::{PoolSource, PoolState, Reminder, UpdateCriterion},
    redemption::RedemptionRules,
};

/// How a pool's codes are made and matched (flat in the pool's JSON).
#[derive(Object, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct CodeOptions {
    /// Characters never used at placeholder positions, e.g. ["O", "0", "I", "1"]. List lower-
    /// and upper-case letters separately.
    #[oai(default)]
    pub exclude_chars: Vec<String>,
    /// Phrases that never appear anywhere in a code (case-insensitive).
    #[oai(default)]
    pub exclude_phrases: Vec<String>,
    /// Whether codes carry a prefix. `false` wins over every other prefix setting.
    pub prefix_enabled: Option<bool>,
    /// Custom prefix (at most 10 of A-Z a-z 0-9 _ -, case-sensitive). Shown resolved.
    pub prefix: Option<String>,
    /// Use the org's default prefix instead of a custom one (422 if the org has none).
    #[oai(default)]
    pub use_org_prefix: bool,
    /// Whether codes carry a suffix. `false` wins over every other suffix setting.
    pub suffix_enabled: Option<bool>,
    /// Custom suffix (same rules as the prefix). Shown resolved.
    pub suffix: Option<String>,
    /// Use the org's default suffix.
    #[oai(default)]
    pub use_org_suffix: bool,
    /// Append a check character so a mistyped code is refused as mistyped (422
    /// `invalid_check_character`) instead of being looked for any further.
    #[oai(default)]
    pub check_char: bool,
    /// Forgiving entry: match codes ignoring case and separators (`abcd-1234` finds `ABCD1234`).
    #[oai(default)]
    pub case_insensitive: bool,
    /// randomized_common: a 5 to 10 character sample the pattern is derived from; its first
    /// half is kept, the rest randomised.
    pub sample_code: Option<String>,
}

/// What is stored of a remote source (the secret stays server-side).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StoredRemote {
    pub url: String,
    pub secret: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    pub timeout_ms: u32,
    pub retries: u32,
}

/// Where a `remote` pool fetches codes from at issue time.
#[derive(Object, Clone)]
pub struct RemoteSource {
    /// The URL coupond POSTs the Antavo-shaped request to.
    pub url: String,
    /// Shared secret to sign the request with (Standard Webhooks); write-only.
    #[oai(write_only)]
    pub secret: Option<String>,
    /// The key the source gave you, sent as the body's `api_key`; write-only. Without one,
    /// `api_key` is `pool-<id>` and the signature is the credential.
    #[oai(write_only, validator(max_length = 256))]
    pub api_key: Option<String>,
    /// Per-attempt timeout in milliseconds (default 2000).
    pub timeout_ms: Option<u32>,
    /// Further attempts after a failure (default 2).
    pub retries: Option<u32>,
}

/// A new pool. Money is in minor units, percentages in basis points.
#[derive(Object)]
pub struct CreatePool {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    pub source: PoolSource,
    /// Code pattern for generated, bulk and common pools: `#` digit, `@` a-z, `^` A-Z,
    /// `*` alphanumeric, `$` A-Z0-9, `\` escapes; anything else is literal. A pattern without
    /// placeholders is a common code. Unique in the org.
    pub pattern: Option<String>,
    pub discount_type: DiscountType,
    /// Minor units (amount, gift card) or basis points (percentage); none for free shipping.
    pub value: Option<i64>,
    /// ISO 4217 currency of `value`.
    pub currency: Option<String>,
    /// Gift cards: a balance left under this voids the card.
    pub gift_card_min_value: Option<i64>,
    /// Gift cards: the least that may be spent in one redemption.
    pub gift_card_min_redemption: Option<i64>,
    /// The least basket total the coupon may be used on.
    pub purchase_min: Option<i64>,
    /// Validity window; no end means "along with the campaign".
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Defaults to active.
    pub state: Option<PoolState>,
    #[oai(flatten)]
    pub codes: CodeOptions,
    #[oai(default)]
    pub issuance: IssuanceRules,
    #[oai(default)]
    pub redemption: RedemptionRules,
    #[oai(default)]
    pub expiry: ExpiryRules,
    #[oai(default)]
    pub reminders: Vec<Reminder>,
    /// Required for source `remote`.
    pub remote: Option<RemoteSource>,
    /// The access group the pool belongs to. A key bound to groups must name one of its own.
    pub group_id: Option<i64>,
}

/// Changes to a pool; absent fields stay as they are.
#[derive(Object)]
pub struct UpdatePool {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<String>,
    pub state: Option<PoolState>,
    /// Refused once the pool has codes.
    pub source: Option<PoolSource>,
    /// Refused once the pool has codes.
    pub pattern: Option<String>,
    pub value: Option<i64>,
    pub currency: Option<String>,
    pub gift_card_min_value: Option<i64>,
    pub gift_card_min_redemption: Option<i64>,
    pub purchase_min: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub issuance: Option<IssuanceRules>,
    pub redemption: Option<RedemptionRules>,
    pub expiry: Option<ExpiryRules>,
    pub reminders: Option<Vec<Reminder>>,
    /// Moves the pool to another access group, or out of every group with null (not for a
    /// key bound to groups, which may only move it among its own).
    pub group_id: MaybeUndefined<i64>,
    /// Which existing coupons take a new `value`: none (only future ones), unassigned,
    /// not_redeemed or all.
    #[oai(default)]
    pub update_criterion: UpdateCriterion,
    /// Only coupons whose value still equals the old one follow the change.
    #[oai(default)]
    pub match_value: bool,
}

/// Coupon counts of a pool.
#[derive(Object)]
pub struct PoolStats {
    /// Every coupon row of the pool.
    pub total: i64,
    pub available: i64,
    pub issued: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub invalidated: i64,
    pub revoked: i64,
    /// Codes that can still be issued: available ones, plus what the pattern can still mint
    /// for pools that mint on demand (capped by the issual limit when one is set); 0 once the
    /// pool has ended or is archived; null when unknown (remote pools) or unlimited (a common
    /// code without an issual limit).
    pub remaining: Option<i64>,
}
