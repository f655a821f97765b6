//! Creating and editing pools: settings are checked against each other and the org before
//! anything is written, and a pool's row and its common code go in together.

mod access;
mod settings;

use crate::store::entity::pools;
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, IntoActiveModel, TransactionTrait,
};

/// What a pool listing keeps; the store filters by it.
pub use crate::store::pools::ListFilter;
pub use access::{reachable, reaches};
pub use settings::{CodeOptions, CreatePool, PoolStats, RemoteSource, StoredRemote, UpdatePool};

use crate::{
    domain::{
        access::PoolAccess,
        coupon::CouponStatus,
        discount::DiscountType,
        generator::Generator,
        issuance::IssuanceRules,
        pattern::{self, Pattern, PatternSpec},
        pool::{self, PoolSource, PoolState, Reminders},
        signature,
    },
    service::{Error, Result, cache::Caches},
    store,
};

pub async fn create(
    db: &DatabaseConnection,
    org_id: i64,
    access: &PoolAccess,
    input: CreatePool,
) -> Result<pools::Model> {
    let org = store::orgs::get(db, org_id)
        .await?
        .ok_or_else(|| Error::not_found("org", org_id))?;
    validate_settings(&input)?;
    super::groups::check_pool_group(db, org_id, access, input.group_id).await?;
    check_excluded_pools(db, (org_id, access), &input.issuance).await?;
    let mut codes = input.codes.clone();
    codes.prefix = pattern::resolve_affix(
        "prefix",
        codes.prefix_enabled,
        codes.prefix.as_deref(),
        codes.use_org_prefix,
        org.code_prefix.as_deref(),
    )?;
    codes.suffix = pattern::resolve_affix(
        "suffix",
        codes.suffix_enabled,
        codes.suffix.as_deref(),
        codes.use_org_suffix,
        org.code_suffix.as_deref(),
    )?;
    let pattern_text = pattern_for(&input)?;
    let parsed = pattern_text
        .as_deref()
        .map(|p| parse_pattern(p, &codes))
        .transpose()?;
    check_source(input.source, parsed.as_ref())?;
    let remote = match (input.source, &input.remote) {
        (PoolSource::Remote, Some(r)) => Some(stored_remote(r)?),
        (PoolSource::Remote, None) => {
            return Err(Error::invalid(
                "remote",
                "a remote pool needs its source: remote.url",
            ));
        }
        (_, Some(_)) => {
            return Err(Error::invalid(
                "remote",
                "only pools with source `remote` have a remote source",
            ));
        }
        (_, None) => None,
    };
    if let Some(r) = &remote {
        super::outbound::check_destination(&r.url)
            .await
            .map_err(|why| Error::invalid("remote.url", why))?;
    }
    let row = pools::ActiveModel {
        org_id: Set(org_id),
        name: Set(input.name.trim().to_string()),
        source: Set(input.source),
        pattern: Set(pattern_text),
        discount_type: Set(input.discount_type),
        value: Set(input.value),
        currency: Set(input.currency.clone()),
        gift_card_min_value: Set(input.gift_card_min_value),
        gift_card_min_redemption: Set(input.gift_card_min_redemption),
        purchase_min: Set(input.purchase_min),
        starts_at: Set(input.starts_at),
        ends_at: Set(input.ends_at),
        state: Set(input.state.unwrap_or_default()),
        group_id: Set(input.group_id),
        code_options: Set(codes),
        issuance: Set(input.issuance),
        redemption: Set(input.redemption),
        expiry: Set(input.expiry),
        reminders: Set(Reminders(input.reminders)),
        remote: Set(remote),
        claimed: Set(false),
        generation_key: Set(parsed
            .as_ref()
            .filter(|p| !p.is_common())
            .map(|_| Generator::new_key())),
        generated_count: Set(0),
        ..Default::default()
    };
    let txn = db.begin().await?;
    if let Some(parsed) = &parsed {
        check_shape_free(&txn, org_id, None, parsed, input.source).await?;
    }
    let pool = store::pools::insert(&txn, row).await.map_err(|e| {
        if store::is_unique_violation(&e) {
            Error::conflict(
                "pattern_taken",
                "another pool of this org already uses this pattern",
            )
        } else {
            e.into()
        }
    })?;
    if let Some(code) = parsed.as_ref().and_then(Pattern::common_code) {
        let inserted = store::coupons::insert_available(
            &txn,
            super::codes::new_codes(&pool),
            std::slice::from_ref(&code),
        )
        .await?;
        if inserted.is_empty() {
            return Err(Error::conflict(
                "code_taken",
                format!("the code {code} already exists in this org"),
            ));
        }
    }
    txn.commit().await?;
    Ok(pool)
}

fn validate_settings(input: &CreatePool) -> Result<()> {
    pool::validate_value(input.discount_type, input.value, input.currency.as_deref())?;
    pool::validate_window(input.starts_at, input.ends_at)?;
    pool::validate_reminders(&input.reminders)?;
    pool::validate_reminders_reach(&input.reminders, input.expiry.coupons_expire(input.ends_at))?;
    input.issuance.validate()?;
    input.redemption.validate()?;
    input.expiry.validate_with_offer_end(input.ends_at)?;
    pool::validate_redemption_for_source(input.source, &input.redemption)?;
    let gift_card = input.discount_type == DiscountType::GiftCard;
    if gift_card {
        pool::validate_gift_card(
            input.value,
            input.gift_card_min_value,
            input.gift_card_min_redemption,
        )?;
    }
    if !gift_card
        && (input.gift_card_min_value.is_some() || input.gift_card_min_redemption.is_some())
    {
        return Err(Error::invalid(
            "gift_card_min_value",
            "only gift card pools have gift card minimums",
        ));
    }
    Ok(())
}

/// `exclude_if_issued_from` names pools of the caller's org that it reaches; another org's or
/// another group's pool is as absent as a missing one.
async fn check_excluded_pools<C: sea_orm::ConnectionTrait>(
    db: &C,
    (org_id, access): (i64, &PoolAccess),
    rules: &IssuanceRules,
) -> Result<()> {
    for &id in &rules.exclude_if_issued_from {
        let pool = store::pools::get(db, org_id, id).await?;
        if !pool.is_some_and(|p| access.reaches(p.group_id)) {
            return Err(Error::invalid(
                "issuance.exclude_if_issued_from",
                format!("pool {id} does not exist"),
            ));
        }
    }
    Ok(())
}

/// Refuses a pattern whose codes could be another live pool's: the whole code shape (prefix,
/// pattern, check character, suffix) is compared, so `ZZ` + `#` meets `ZZ#`. Randomized common
/// codes also keep their fixed part to themselves (Capillary). The org's row lock makes two
/// concurrent creates take turns.
async fn check_shape_free(
    txn: &DatabaseTransaction,
    org_id: i64,
    except: Option<i64>,
    parsed: &Pattern,
    source: PoolSource,
) -> Result<()> {
    store::orgs::lock(txn, org_id).await?;
    for other in store::pools::with_pattern(txn, org_id).await? {
        if Some(other.id) == except {
            continue;
        }
        let Some(theirs) = other.pattern.as_deref() else {
            continue;
        };
        let theirs = parse_pattern(theirs, &other.code_options)?;
        let same_fixed_part = source == PoolSource::RandomizedCommon
            && other.source == PoolSource::RandomizedCommon
            && parsed.fixed_start() == theirs.fixed_start();
        if same_fixed_part || parsed.overlaps(&theirs) {
            return Err(Error::conflict(
                "pattern_taken",
                format!(
                    "pool {} ({}) can make codes of this shape; a code must belong to one pool",
                    other.id, other.name
                ),
            ));
        }
    }
    Ok(())
}

/// The pattern a pool will use: given, derived from a sample, or none.
fn pattern_for(input: &CreatePool) -> Result<Option<String>> {
    match (input.source, &input.pattern, &input.codes.sample_code) {
        (PoolSource::RandomizedCommon, None, Some(sample)) => {
            Ok(Some(pattern::randomized_common_pattern(sample)?))
        }
        (PoolSource::RandomizedCommon, _, _) => Err(Error::invalid(
            "sample_code",
            "a randomized_common pool takes a sample_code (5 to 10 characters) and no pattern",
        )),
        (PoolSource::Uploaded | PoolSource::Remote, Some(_), _) => Err(Error::invalid(
            "pattern",
            "uploaded and remote pools have no pattern",
        )),
        (PoolSource::Uploaded | PoolSource::Remote, None, _) => Ok(None),
        (_, None, _) => Err(Error::invalid("pattern", "this source needs a pattern")),
        (_, Some(p), _) => Ok(Some(p.clone())),
    }
}

pub fn parse_pattern(text: &str, codes: &CodeOptions) -> Result<Pattern> {
    let mut exclude = Vec::with_capacity(codes.exclude_chars.len());
    for s in &codes.exclude_chars {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => exclude.push(c),
            _ => {
                return Err(Error::invalid(
                    "exclude_chars",
                    format!("`{s}` is not a single character"),
                ));
            }
        }
    }
    Ok(Pattern::parse(&PatternSpec {
        pattern: text,
        exclude_chars: &exclude,
        exclude_phrases: &codes.exclude_phrases,
        prefix: codes.prefix.as_deref(),
        suffix: codes.suffix.as_deref(),
        check_char: codes.check_char,
        case_insensitive: codes.case_insensitive,
    })?)
}

/// After a change of source or pattern, the pair as creation would accept it: uploaded and
/// remote pools keep no pattern (a pattern left from the old source is dropped, a new one is
/// refused); every other source needs one that suits it.
fn settle_pattern(row: &mut pools::ActiveModel) -> Result<()> {
    let source = *row.source.as_ref();
    let pattern = row.pattern.as_ref().clone();
    if matches!(source, PoolSource::Uploaded | PoolSource::Remote) {
        if row.pattern.is_set() && pattern.is_some() {
            return Err(Error::invalid(
                "pattern",
                "uploaded and remote pools have no pattern",
            ));
        }
        row.pattern = Set(None);
        return Ok(());
    }
    let text = pattern.ok_or_else(|| Error::invalid("pattern", "this source needs a pattern"))?;
    let parsed = parse_pattern(&text, row.code_options.as_ref())?;
    check_source(source, Some(&parsed))
}

fn check_source(source: PoolSource, parsed: Option<&Pattern>) -> Result<()> {
    let Some(p) = parsed else { return Ok(()) };
    match source {
        PoolSource::Common if !p.is_common() => Err(Error::invalid(
            "pattern",
            "a common pool's pattern is the code itself: no placeholders",
        )),
        PoolSource::Generated | PoolSource::Bulk | PoolSource::RandomizedCommon
            if p.is_common() =>
        {
            Err(Error::invalid(
                "pattern",
                "this pattern has no placeholders: use source `common`",
            ))
        }
        PoolSource::Bulk if p.placeholders() < 4 => Err(Error::refused(
            "too_few_placeholders",
            format!(
                "a bulk pattern needs at least 4 placeholders; this one has {}",
                p.placeholders()
            ),
        )),
        _ => Ok(()),
    }
}

fn stored_remote(r: &RemoteSource) -> Result<StoredRemote> {
    if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
        return Err(Error::invalid("remote.url", "an http:// or https:// URL"));
    }
    if let Some(secret) = &r.secret {
        signature::secret_key(secret)
            .map_err(|e| Error::invalid("remote.secret", e.to_string()))?;
    }
    Ok(StoredRemote {
        url: r.url.clone(),
        secret: r.secret.clone(),
        api_key: r.api_key.clone(),
        timeout_ms: r.timeout_ms.unwrap_or(2_000).clamp(100, 30_000),
        retries: r.retries.unwrap_or(2).min(5),
    })
}

pub async fn update(
    db: &DatabaseConnection,
    access: &PoolAccess,
    pool: pools::Model,
    input: UpdatePool,
) -> Result<pools::Model> {
    if !input.group_id.is_undefined() {
        let group_id = input.group_id.value().copied();
        super::groups::check_pool_group(db, pool.org_id, access, group_id).await?;
    }
    let txn = db.begin().await?;
    let freezes = input.source.is_some() || input.pattern.is_some();
    if freezes && store::pools::has_codes(&txn, pool.id).await? {
        return Err(Error::conflict(
            "codes_exist",
            "source and pattern cannot change once the pool has codes",
        ));
    }
    let old_value = pool.value;
    let org_id = pool.org_id;
    let discount_type = pool.discount_type;
    let mut row = pool.into_active_model();
    if let Some(v) = input.name {
        row.name = Set(v.trim().to_string());
    }
    if let Some(v) = input.state {
        row.state = Set(v);
    }
    if !input.group_id.is_undefined() {
        row.group_id = Set(input.group_id.value().copied());
    }
    if let Some(v) = input.source {
        row.source = Set(v);
    }
    if let Some(v) = input.pattern {
        let source = *row.source.as_ref();
        let parsed = parse_pattern(&v, row.code_options.as_ref())?;
        check_source(source, Some(&parsed))?;
        check_shape_free(
            &txn,
            org_id,
            row.id.clone().unwrap().into(),
            &parsed,
            source,
        )
        .await?;
        row.pattern = Set(Some(v));
    }
    if freezes {
        settle_pattern(&mut row)?;
    }
    let new_value = input.value.or(old_value);
    pool::validate_update_criterion(
        input.update_criterion,
        input.match_value,
        new_value != old_value,
    )?;
    let currency = input.currency.clone().or(row.currency.clone().unwrap());
    pool::validate_value(discount_type, new_value, currency.as_deref())?;
    row.value = Set(new_value);
    row.currency = Set(currency);
    if input.gift_card_min_value.is_some() {
        row.gift_card_min_value = Set(input.gift_card_min_value);
    }
    if input.gift_card_min_redemption.is_some() {
        row.gift_card_min_redemption = Set(input.gift_card_min_redemption);
    }
    if discount_type == DiscountType::GiftCard {
        pool::validate_gift_card(
            new_value,
            row.gift_card_min_value.clone().unwrap(),
            row.gift_card_min_redemption.clone().unwrap(),
        )?;
    }
    if input.purchase_min.is_some() {
        row.purchase_min = Set(input.purchase_min);
    }
    if input.starts_at.is_some() {
        row.starts_at = Set(input.starts_at);
    }
    if input.ends_at.is_some() {
        row.ends_at = Set(input.ends_at);
    }
    pool::validate_window(row.starts_at.clone().unwrap(), row.ends_at.clone().unwrap())?;
    let mut recount = false;
    if let Some(v) = input.issuance {
        v.validate()?;
        check_excluded_pools(&txn, (org_id, access), &v).await?;
        // The series counter is kept only while a total limit exists; a new limit starts from
        // what was really issued.
        recount = v.max_total.is_some() && row.issuance.as_ref().max_total.is_none();
        row.issuance = Set(v);
    }
    let series_limited = input
        .redemption
        .as_ref()
        .is_some_and(|r| r.max_total.is_some());
    if let Some(v) = input.redemption {
        v.validate()?;
        pool::validate_redemption_for_source(*row.source.as_ref(), &v)?;
        row.redemption = Set(v);
    }
    if let Some(v) = input.expiry {
        v.validate_with_offer_end(row.ends_at.clone().unwrap())?;
        row.expiry = Set(v);
    }
    if let Some(v) = input.reminders {
        pool::validate_reminders(&v)?;
        row.reminders = Set(Reminders(v));
    }
    pool::validate_reminders_reach(
        row.reminders.as_ref(),
        row.expiry
            .as_ref()
            .coupons_expire(row.ends_at.clone().unwrap()),
    )?;
    let saved = store::pools::save(&txn, row).await?;
    if recount {
        store::pools::recount_issued(&txn, saved.id).await?;
    }
    // The redemption series counter is kept only while the pool has a series limit, so a new
    // limit starts from the rows. Saving took the pool row's lock, which redemptions of a
    // limited pool take first; a redemption that began before the limit existed does not take
    // it, and may be missed by this count if it commits while the edit runs.
    if series_limited {
        store::redemptions::recount(&txn, saved.id).await?;
    }
    if new_value != old_value {
        let match_old = input.match_value.then_some(old_value);
        let gift_card = discount_type == DiscountType::GiftCard;
        store::pools::apply_value(
            &txn,
            saved.id,
            new_value,
            input.update_criterion,
            match_old,
            gift_card,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(saved)
}

/// One page of the org's pools, newest first, and the total matching.
pub async fn list(
    db: &DatabaseConnection,
    org_id: i64,
    filter: &ListFilter,
    page: u64,
    per_page: u64,
) -> Result<(Vec<pools::Model>, u64)> {
    Ok(store::pools::list(db, org_id, filter, page, per_page).await?)
}

/// Up to `limit` of the pools claimed for workflows, newest first.
pub async fn claimed(
    db: &DatabaseConnection,
    org_id: i64,
    limit: u64,
) -> Result<Vec<pools::Model>> {
    let filter = ListFilter {
        claimed: Some(true),
        ..Default::default()
    };
    Ok(store::pools::list(db, org_id, &filter, 1, limit).await?.0)
}

/// Claims the pool for workflows or withdraws it; the cached pool is dropped so issues see it.
pub async fn set_claimed(
    db: &DatabaseConnection,
    caches: &Caches,
    pool: pools::Model,
    claimed: bool,
) -> Result<pools::Model> {
    let pool = store::pools::set_claimed(db, pool, claimed).await?;
    caches.forget_pool(pool.org_id, pool.id);
    Ok(pool)
}

/// Refuses uploads into pools whose codes come from elsewhere.
pub fn check_uploadable(pool: &pools::Model) -> Result<()> {
    if pool.source != PoolSource::Uploaded {
        return Err(Error::conflict(
            "wrong_source",
            format!(
                "codes can be uploaded only into `uploaded` pools; this one is `{}`",
                pool.source.as_str()
            ),
        ));
    }
    if pool.state == PoolState::Archived {
        return Err(Error::conflict("pool_archived", "the pool is archived"));
    }
    Ok(())
}

pub async fn stats(db: &DatabaseConnection, pool: &pools::Model) -> Result<PoolStats> {
    let counts = store::coupons::count_by_status(db, pool.id).await?;
    let count = |s: CouponStatus| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    let mut stats = PoolStats {
        total: counts.iter().map(|(_, n)| n).sum(),
        available: count(CouponStatus::Available),
        issued: count(CouponStatus::Issued),
        redeemed: count(CouponStatus::Redeemed),
        expired: count(CouponStatus::Expired),
        invalidated: count(CouponStatus::Invalidated),
        revoked: count(CouponStatus::Revoked),
        remaining: None,
    };
    let source = pool.source;
    let mut mintable = 0;
    if source.mints_on_issue()
        && let Some(p) = pool.pattern.as_deref()
    {
        let space = parse_pattern(p, &pool.code_options)?.combinations();
        mintable = space.saturating_sub(pool.generated_count as u128);
    }
    stats.remaining = pool::remaining(&pool::Stock {
        source,
        ended: pool.state == PoolState::Archived
            || pool.ends_at.is_some_and(|end| end <= chrono::Utc::now()),
        available: stats.available,
        mintable,
        max_total: pool.issuance.max_total,
        issued_ever: stats.issued + stats.redeemed + stats.expired,
    });
    Ok(stats)
}
