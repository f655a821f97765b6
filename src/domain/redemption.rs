//! Redemption rules: who may redeem a code, how often, where, when and on what basket, and what it
//! takes off. `evaluate` is pure; the store reads the facts (counts, holder, balance) inside the
//! transaction that records the redemption, so the limits cannot be overshot under concurrency.
//!
//! Limits follow Capillary's three levels (seed table "code-level / customer-level / series-level"):
//! - code level (`max_per_code`): redemptions of one code by anyone;
//! - customer level: redemptions of one code by one customer. A customer redeems a code once
//!   unless `redeem_more_than_once` is set, which lifts the limit to `max_per_customer`
//!   (unset: no limit), like Capillary's "Allow a coupon to be redeemed more than once";
//! - series level (`max_total`): redemptions of all codes of the pool.
//!
//! When only the holder may redeem (no `allow_anyone`, not a common code) the code-level limit, if
//! not set, equals the customer-level limit (seed rows 6, 13 and 14), which makes an unconfigured
//! unique code single-use and keeps a transferred code from starting its count again. When anyone
//! may redeem, an unset code-level limit means none (rows 5, 7 and 12).

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use poem_openapi::{Enum, Object};
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

use super::discount::{
    self, Basket, Discount, DiscountType, GiftCard, GiftCardRefusal, ItemFilter,
};
use super::{Invalid, coupon::CouponStatus, currency::ExchangeRate};

/// A day of the week, by its three-letter English abbreviation.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DayOfWeek {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl From<chrono::Weekday> for DayOfWeek {
    fn from(day: chrono::Weekday) -> DayOfWeek {
        match day {
            chrono::Weekday::Mon => DayOfWeek::Mon,
            chrono::Weekday::Tue => DayOfWeek::Tue,
            chrono::Weekday::Wed => DayOfWeek::Wed,
            chrono::Weekday::Thu => DayOfWeek::Thu,
            chrono::Weekday::Fri => DayOfWeek::Fri,
            chrono::Weekday::Sat => DayOfWeek::Sat,
            chrono::Weekday::Sun => DayOfWeek::Sun,
        }
    }
}

/// What a store scope entry names.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StoreScopeKind {
    /// One store.
    Store,
    /// A zone (region) of stores.
    Zone,
    /// A concept (brand or store format).
    Concept,
    /// One till (checkout counter).
    Till,
}

/// A store, zone, concept or till where the pool's codes may be redeemed.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StoreScope {
    /// What `id` names.
    pub kind: StoreScopeKind,
    /// The caller's identifier of the store, zone, concept or till.
    pub id: String,
}

impl StoreScope {
    /// Matches when the request's store facts carry this id in this kind.
    fn matches(&self, store: &StoreFacts) -> bool {
        let fact = match self.kind {
            StoreScopeKind::Store => &store.id,
            StoreScopeKind::Zone => &store.zone,
            StoreScopeKind::Concept => &store.concept,
            StoreScopeKind::Till => &store.till,
        };
        fact.as_deref() == Some(self.id.as_str())
    }
}

/// Restricts redemption to new customers (Capillary's "Restrict to new customer").
#[derive(Object, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[oai(default)]
#[serde(default)]
pub struct NewCustomerRule {
    /// Earliest registration date allowed (inclusive, in the org's time zone).
    pub registered_from: Option<NaiveDate>,
    /// Latest registration date allowed (inclusive, in the org's time zone).
    pub registered_to: Option<NaiveDate>,
    /// Most transactions the customer may already have made; 0 = first purchase only.
    pub max_transactions: Option<u32>,
}

/// A pool's redemption settings.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, FromJsonQueryResult)]
#[oai(default)]
#[serde(default)]
pub struct RedemptionRules {
    /// Whether anyone with the code may redeem it (friends and family, codes not yet issued);
    /// otherwise only the customer it was issued to. Common codes may always be redeemed by anyone.
    pub allow_anyone: bool,
    /// Whether a customer may redeem the same code more than once, up to `max_per_customer`.
    /// Off: each customer redeems a code once.
    pub redeem_more_than_once: bool,
    /// Code-level limit: redemptions of one code, all customers together. Unset: no limit when
    /// anyone may redeem, otherwise the customer-level limit.
    pub max_per_code: Option<u32>,
    /// Customer-level limit: redemptions of one code by one customer when `redeem_more_than_once`
    /// is on. Unset: no limit. Over 1 needs `redeem_more_than_once`.
    pub max_per_customer: Option<u32>,
    /// Series-level limit: redemptions of all codes of the pool. Unset: no limit.
    pub max_total: Option<u64>,
    /// Minimum calendar days (org time zone) between two redemptions by one customer in this pool.
    pub min_days_between: Option<u32>,
    /// Stores, zones, concepts and tills where codes may be redeemed; empty = anywhere.
    pub stores: Vec<StoreScope>,
    /// Smallest bill (basket total, minor units) a code may be redeemed on.
    pub min_bill: Option<i64>,
    /// Largest bill (basket total, minor units) a code may be redeemed on.
    pub max_bill: Option<i64>,
    /// Days of the week (org time zone) when codes may be redeemed; empty = any day.
    pub days_of_week: Vec<DayOfWeek>,
    /// Days of the month, 1 to 31 (org time zone), when codes may be redeemed; empty = any day.
    pub days_of_month: Vec<u8>,
    /// Hours of the day, 0 to 23 (org time zone), when codes may be redeemed; empty = any hour.
    pub hours: Vec<u8>,
    /// Product ids the discount applies to; empty = any product.
    pub products: Vec<String>,
    /// Product categories the discount applies to; empty = any category.
    pub categories: Vec<String>,
    /// Whether items already on sale get the discount.
    pub include_sale_items: bool,
    /// Restricts redemption to new customers.
    pub new_customers: Option<NewCustomerRule>,
}

impl Default for RedemptionRules {
    fn default() -> Self {
        RedemptionRules {
            allow_anyone: false,
            redeem_more_than_once: false,
            max_per_code: None,
            max_per_customer: None,
            max_total: None,
            min_days_between: None,
            stores: Vec::new(),
            min_bill: None,
            max_bill: None,
            days_of_week: Vec::new(),
            days_of_month: Vec::new(),
            hours: Vec::new(),
            products: Vec::new(),
            categories: Vec::new(),
            include_sale_items: true,
            new_customers: None,
        }
    }
}

impl RedemptionRules {
    pub fn validate(&self) -> Result<(), Invalid> {
        let err = |field, reason: &str| {
            Err(Invalid {
                field,
                reason: reason.to_string(),
            })
        };
        // A limit of 0 would make every code unredeemable; unset is how "no limit" is said.
        let at_least_one = "must be at least 1; leave it out for no limit";
        if self.max_per_code == Some(0) {
            return err("redemption.max_per_code", at_least_one);
        }
        if self.max_per_customer == Some(0) {
            return err("redemption.max_per_customer", at_least_one);
        }
        if self.max_per_customer.is_some_and(|n| n > 1) && !self.redeem_more_than_once {
            return err(
                "redemption.max_per_customer",
                "a limit over 1 needs redeem_more_than_once",
            );
        }
        if self.max_total == Some(0) {
            return err("redemption.max_total", at_least_one);
        }
        if self.min_days_between == Some(0) {
            return err(
                "redemption.min_days_between",
                "must be at least 1; leave it out for no gap",
            );
        }
        // Capillary: the gap "is not applicable if the coupon is restricted to redeemed only
        // once"; refused rather than silently ignored.
        if self.min_days_between.is_some() && !self.redeem_more_than_once {
            return err(
                "redemption.min_days_between",
                "a gap between redemptions needs redeem_more_than_once",
            );
        }
        if self.stores.iter().any(|s| s.id.trim().is_empty()) {
            return err("redemption.stores", "ids must not be empty");
        }
        if self.min_bill.is_some_and(|v| v < 0) {
            return err("redemption.min_bill", "must not be negative");
        }
        if self.max_bill.is_some_and(|v| v < 0) {
            return err("redemption.max_bill", "must not be negative");
        }
        if let (Some(min), Some(max)) = (self.min_bill, self.max_bill)
            && min > max
        {
            return err("redemption.max_bill", "must not be less than min_bill");
        }
        if let Some(day) = self.days_of_month.iter().find(|d| !(1..=31).contains(*d)) {
            return Err(Invalid {
                field: "redemption.days_of_month",
                reason: format!("{day} is not a day of the month (1 to 31)"),
            });
        }
        if let Some(hour) = self.hours.iter().find(|h| **h > 23) {
            return Err(Invalid {
                field: "redemption.hours",
                reason: format!("{hour} is not an hour of the day (0 to 23)"),
            });
        }
        if self.products.iter().any(|p| p.trim().is_empty()) {
            return err("redemption.products", "product ids must not be empty");
        }
        if self.categories.iter().any(|c| c.trim().is_empty()) {
            return err("redemption.categories", "categories must not be empty");
        }
        if let Some(rule) = &self.new_customers
            && let (Some(from), Some(to)) = (rule.registered_from, rule.registered_to)
            && from > to
        {
            return err(
                "redemption.new_customers.registered_to",
                "must not be before registered_from",
            );
        }
        Ok(())
    }

    /// The rules as they apply to a pool of `discount_type`. A gift card is spent by its
    /// balance (Antavo: "at multiple checkouts until the entire monetary value is spent"), so
    /// unless the pool limits it, it is redeemable more than once.
    pub fn for_type(mut self, discount_type: DiscountType) -> RedemptionRules {
        if discount_type == DiscountType::GiftCard {
            self.redeem_more_than_once = true;
        }
        self
    }

    /// How many times one customer may redeem one code; `None` = no limit.
    pub fn customer_limit(&self) -> Option<u32> {
        if self.redeem_more_than_once {
            self.max_per_customer
        } else {
            Some(1)
        }
    }

    /// How many times a code may be redeemed by everyone together; `None` = no limit. The store
    /// marks a code `redeemed` when a redemption reaches this.
    pub fn code_limit(&self, is_common: bool) -> Option<u64> {
        match self.max_per_code {
            Some(n) => Some(u64::from(n)),
            None if self.holder_only(is_common) => self.customer_limit().map(u64::from),
            None => None,
        }
    }

    fn holder_only(&self, is_common: bool) -> bool {
        !self.allow_anyone && !is_common
    }

    pub fn item_filter(&self) -> ItemFilter<'_> {
        ItemFilter {
            products: &self.products,
            categories: &self.categories,
            include_sale_items: self.include_sale_items,
        }
    }
}

/// Where the basket is being paid (the request's `store`).
#[derive(Object, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[oai(default)]
#[serde(default)]
pub struct StoreFacts {
    /// The store's id.
    pub id: Option<String>,
    /// The zone the store belongs to.
    pub zone: Option<String>,
    /// The store's concept.
    pub concept: Option<String>,
    /// The till the basket is paid at.
    pub till: Option<String>,
}

/// Facts about the coupon and the people involved, read by the store inside the redeeming
/// transaction. Counts include active reservations (holds).
#[derive(Debug, Clone)]
pub struct RedemptionContext {
    /// The purchase time (`at`, bounded by [`check_purchase_time`]): days, hours and the gap
    /// between redemptions are counted at it.
    pub now: DateTime<Utc>,
    /// The server's time: expiry and the redemption start are judged at it, never at the
    /// till's clock.
    pub clock: DateTime<Utc>,
    /// The org's time zone: days, dates and hours are counted in it.
    pub tz: Tz,
    /// The coupon's stored status.
    pub coupon_status: CouponStatus,
    /// Last instant the coupon may be redeemed.
    pub expires_at: Option<DateTime<Utc>>,
    /// First instant the coupon may be redeemed.
    pub redeemable_from: Option<DateTime<Utc>>,
    /// The customer the code was issued to.
    pub holder: Option<i64>,
    /// The customer redeeming; `None` for an anonymous checkout.
    pub redeemer: Option<i64>,
    /// Active redemptions of this code, all customers.
    pub code_redemptions: u64,
    /// Active redemptions of this code by the redeemer.
    pub customer_code_redemptions: u64,
    /// Active redemptions of all codes in the pool.
    pub pool_redemptions: u64,
    /// The redeemer's last active redemption in this pool.
    pub customer_last_redemption_at: Option<DateTime<Utc>>,
    /// When the redeemer registered, for the new-customer rule.
    pub customer_registered_at: Option<DateTime<Utc>>,
    /// How many transactions the redeemer has made, for the new-customer rule.
    pub customer_transactions: Option<u32>,
    /// A common code: one code for everyone, so it has no single holder.
    pub is_common: bool,
    /// The pool's discount type.
    pub discount_type: DiscountType,
    /// Minor units (amount, gift card initial balance) or basis points (percentage).
    pub value: Option<i64>,
    /// The pool's currency; `None` for percentage or free-shipping pools valid in any currency.
    pub currency: Option<String>,
    /// The org's rate from the pool's currency to the basket's, in force at the server's
    /// clock, when the basket is in another currency and the pool has amounts to convert.
    pub exchange: Option<ExchangeRate>,
    /// Smallest basket total the coupon applies to (Antavo's "purchase minimum").
    pub purchase_min: Option<i64>,
    /// What is left on the gift card; `None` if never spent (the pool's `value`).
    pub gift_card_balance: Option<i64>,
    /// A balance left under this voids the card (Antavo's "minimum value").
    pub gift_card_min_value: Option<i64>,
    /// Each redemption must spend at least this (Antavo's "minimum redemption value").
    pub gift_card_min_redemption: Option<i64>,
    /// Gift cards: how much to spend; `None` = as much as the card and the basket allow.
    pub requested_amount: Option<i64>,
}

/// A rule the redemption broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Stable machine-readable reason, e.g. `customer_limit`.
    pub code: &'static str,
    /// A sentence for the cashier or the log.
    pub detail: String,
}

fn failure(code: &'static str, detail: String) -> Failure {
    Failure { code, detail }
}

/// Checks every rule and returns the discount, or every rule that failed (not only the first),
/// in a stable order. The basket must have passed [`Basket::validate`].
///
/// An `available` (unissued) code may be redeemed only when anyone may redeem it (Antavo lets
/// uploaded codes be redeemed before they are claimed; the store then assigns the code to the
/// redeemer); a code restricted to its holder must be issued first.
pub fn evaluate(
    rules: &RedemptionRules,
    ctx: &RedemptionContext,
    basket: &Basket,
    store: &StoreFacts,
) -> Result<Discount, Vec<Failure>> {
    let mut failures = Vec::new();
    check_status(rules, ctx, &mut failures);
    check_customer(rules, ctx, &mut failures);
    check_limits(rules, ctx, &mut failures);
    check_new_customer(rules, ctx, &mut failures);
    if !rules.stores.is_empty() && !rules.stores.iter().any(|s| s.matches(store)) {
        failures.push(failure(
            "store_not_allowed",
            "The coupon cannot be redeemed at this store.".into(),
        ));
    }
    check_calendar(rules, ctx, &mut failures);
    let exchange = exchange_for(rules, ctx, basket);
    // Without a rate amounts in another currency cannot be compared with the pool's, so the
    // checks on them would only add noise to the refusal.
    match &exchange {
        Ok(exchange) => check_bill(rules, ctx, basket, *exchange, &mut failures),
        Err(f) => failures.push(f.clone()),
    }
    let filter = rules.item_filter();
    let eligible = discount::eligible(basket, &filter);
    if filter.restricts() && eligible.lines.is_empty() {
        failures.push(failure(
            "no_eligible_items",
            "No item in the basket is eligible for this coupon.".into(),
        ));
    } else if let Ok(exchange) = exchange {
        match compute_discount(ctx, &eligible, exchange) {
            Ok(discount) if discount.amount == 0 && !discount.free_shipping => {
                failures.push(failure(
                    "nothing_to_discount",
                    "The basket leaves nothing for the coupon to take off.".into(),
                ));
            }
            Ok(discount) if failures.is_empty() => return Ok(discount),
            Ok(_) => {}
            Err(f) => failures.push(f),
        }
    }
    Err(failures)
}

/// Whether a pool has amounts in its currency that a basket in another currency needs
/// converted: its value (amount and gift card pools) or a bill limit. A percentage applies in
/// any currency.
pub fn converts(
    rules: &RedemptionRules,
    discount_type: DiscountType,
    purchase_min: Option<i64>,
) -> bool {
    matches!(discount_type, DiscountType::Amount | DiscountType::GiftCard)
        || rules.min_bill.is_some()
        || rules.max_bill.is_some()
        || purchase_min.is_some()
}

/// The rate the pool's amounts are converted with: none when the basket is in the pool's
/// currency (a basket naming none is) or nothing needs converting.
fn exchange_for<'a>(
    rules: &RedemptionRules,
    ctx: &'a RedemptionContext,
    basket: &Basket,
) -> Result<Option<&'a ExchangeRate>, Failure> {
    let Some(currency) = ctx.currency.as_deref() else {
        return Ok(None);
    };
    let basket_currency = basket.currency.as_deref().unwrap_or(currency);
    if basket_currency == currency || !converts(rules, ctx.discount_type, ctx.purchase_min) {
        return Ok(None);
    }
    ctx.exchange.as_ref().map(Some).ok_or_else(|| {
        failure(
            "no_exchange_rate",
            format!("No rate from {currency} to {basket_currency} is in force."),
        )
    })
}

fn check_status(rules: &RedemptionRules, ctx: &RedemptionContext, out: &mut Vec<Failure>) {
    match ctx.coupon_status {
        CouponStatus::Available if rules.holder_only(ctx.is_common) => out.push(failure(
            "not_issued",
            "The coupon has not been issued to anyone yet.".into(),
        )),
        CouponStatus::Available | CouponStatus::Issued => {}
        CouponStatus::Redeemed => out.push(failure(
            "already_redeemed",
            "The coupon has no redemptions left.".into(),
        )),
        CouponStatus::Expired => out.push(failure("expired", "The coupon has expired.".into())),
        CouponStatus::Invalidated => out.push(failure(
            "invalidated",
            "The coupon has been invalidated.".into(),
        )),
        CouponStatus::Revoked => {
            out.push(failure("revoked", "The coupon has been revoked.".into()))
        }
    }
    // The expiry job may not have run yet; the date is what counts.
    if let Some(expires_at) = ctx.expires_at
        && ctx.clock > expires_at
        && ctx.coupon_status != CouponStatus::Expired
    {
        out.push(failure(
            "expired",
            format!("The coupon expired at {}.", local(expires_at, ctx.tz)),
        ));
    }
    if let Some(from) = ctx.redeemable_from
        && ctx.clock < from
    {
        out.push(failure(
            "not_yet_redeemable",
            format!("The coupon can be redeemed from {}.", local(from, ctx.tz)),
        ));
    }
}

fn check_customer(rules: &RedemptionRules, ctx: &RedemptionContext, out: &mut Vec<Failure>) {
    let holder_only = rules.holder_only(ctx.is_common);
    match (ctx.redeemer, ctx.holder) {
        (None, _) => {
            // Per-customer rules cannot be counted or checked without knowing the customer.
            let needs_customer = holder_only
                || rules.customer_limit().is_some()
                || rules.min_days_between.is_some()
                || rules.new_customers.is_some();
            if needs_customer {
                out.push(failure(
                    "customer_required",
                    "This coupon can only be redeemed by an identified customer.".into(),
                ));
            }
        }
        (Some(redeemer), Some(holder)) if holder_only && redeemer != holder => out.push(failure(
            "not_holder",
            "Only the customer the coupon was issued to can redeem it.".into(),
        )),
        _ => {}
    }
}

fn check_limits(rules: &RedemptionRules, ctx: &RedemptionContext, out: &mut Vec<Failure>) {
    let customer_limit = rules.customer_limit().map(u64::from);
    let customer_reached = ctx.redeemer.is_some()
        && customer_limit.is_some_and(|max| ctx.customer_code_redemptions >= max);
    if customer_reached {
        out.push(failure(
            "customer_limit",
            format!(
                "The customer has redeemed this coupon {} time(s), the most allowed.",
                ctx.customer_code_redemptions
            ),
        ));
    }
    // A `redeemed` status already says the code limit was reached. A code limit derived from the
    // customer limit counts the same redemptions, so it is only news when others made them.
    let derived = rules.max_per_code.is_none();
    if let Some(max) = rules.code_limit(ctx.is_common)
        && ctx.code_redemptions >= max
        && ctx.coupon_status != CouponStatus::Redeemed
        && !(derived && customer_reached)
    {
        out.push(failure(
            "code_limit",
            format!("The coupon has been redeemed {max} time(s), the most allowed."),
        ));
    }
    if let Some(max) = rules.max_total
        && ctx.pool_redemptions >= max
    {
        out.push(failure(
            "series_limit",
            format!("The offer has reached its limit of {max} redemptions."),
        ));
    }
    if let (Some(days), Some(last)) = (rules.min_days_between, ctx.customer_last_redemption_at) {
        let last_day = last.with_timezone(&ctx.tz).date_naive();
        let today = ctx.now.with_timezone(&ctx.tz).date_naive();
        let next = last_day + chrono::Days::new(u64::from(days));
        if today < next {
            out.push(failure(
                "min_gap",
                format!(
                    "The customer last redeemed from this offer on {last_day}; the next \
                     redemption is possible from {next}."
                ),
            ));
        }
    }
}

fn check_new_customer(rules: &RedemptionRules, ctx: &RedemptionContext, out: &mut Vec<Failure>) {
    let Some(rule) = &rules.new_customers else {
        return;
    };
    // Without a customer `customer_required` has already been reported.
    if ctx.redeemer.is_none() {
        return;
    }
    let mut reasons = Vec::new();
    if rule.registered_from.is_some() || rule.registered_to.is_some() {
        match ctx.customer_registered_at {
            None => reasons.push("the customer's registration date is unknown".to_string()),
            Some(at) => {
                let day = at.with_timezone(&ctx.tz).date_naive();
                if rule.registered_from.is_some_and(|from| day < from)
                    || rule.registered_to.is_some_and(|to| day > to)
                {
                    reasons.push(format!(
                        "the customer registered on {day}, outside the allowed dates"
                    ));
                }
            }
        }
    }
    if let Some(max) = rule.max_transactions {
        match ctx.customer_transactions {
            None => reasons.push("the customer's transaction count is unknown".to_string()),
            Some(n) if n > max => reasons.push(format!(
                "the customer has made {n} transactions, more than {max}"
            )),
            Some(_) => {}
        }
    }
    if !reasons.is_empty() {
        out.push(failure(
            "not_new_customer",
            format!(
                "The coupon is for new customers only: {}.",
                reasons.join("; ")
            ),
        ));
    }
}

fn check_calendar(rules: &RedemptionRules, ctx: &RedemptionContext, out: &mut Vec<Failure>) {
    let now = ctx.now.with_timezone(&ctx.tz);
    let weekday = DayOfWeek::from(now.weekday());
    if !rules.days_of_week.is_empty() && !rules.days_of_week.contains(&weekday) {
        out.push(failure(
            "wrong_day_of_week",
            format!("The coupon cannot be redeemed on {}.", now.format("%A")),
        ));
    }
    // Both are small: day 1..=31, hour 0..=23.
    let (day, hour) = (now.day() as u8, now.hour() as u8);
    if !rules.days_of_month.is_empty() && !rules.days_of_month.contains(&day) {
        out.push(failure(
            "wrong_day_of_month",
            format!("The coupon cannot be redeemed on day {day} of the month."),
        ));
    }
    if !rules.hours.is_empty() && !rules.hours.contains(&hour) {
        out.push(failure(
            "wrong_hour",
            format!("The coupon cannot be redeemed between {hour}:00 and {hour}:59."),
        ));
    }
}

/// The bill limits are in the pool's currency: with `exchange` they are converted to the
/// basket's (half-even; a limit too large to convert is larger than any basket).
fn check_bill(
    rules: &RedemptionRules,
    ctx: &RedemptionContext,
    basket: &Basket,
    exchange: Option<&ExchangeRate>,
    out: &mut Vec<Failure>,
) {
    let total = basket.total;
    let limit = |v: Option<i64>| {
        v.map(|v| match exchange {
            Some(rate) => rate.convert(v).unwrap_or(i64::MAX),
            None => v,
        })
    };
    if let Some(min) = limit(rules.min_bill)
        && total < min
    {
        out.push(failure(
            "below_min_bill",
            format!("The bill of {total} is under the minimum of {min} (minor units)."),
        ));
    }
    if let Some(max) = limit(rules.max_bill)
        && total > max
    {
        out.push(failure(
            "above_max_bill",
            format!("The bill of {total} is over the maximum of {max} (minor units)."),
        ));
    }
    if let Some(min) = limit(ctx.purchase_min)
        && total < min
    {
        out.push(failure(
            "below_purchase_min",
            format!("The basket of {total} is under the purchase minimum of {min} (minor units)."),
        ));
    }
}

fn compute_discount(
    ctx: &RedemptionContext,
    eligible: &discount::Eligible,
    exchange: Option<&ExchangeRate>,
) -> Result<Discount, Failure> {
    // Pools are validated on save to carry a value for these types; a missing one discounts
    // nothing rather than failing the checkout.
    let value = ctx.value.unwrap_or(0);
    match ctx.discount_type {
        DiscountType::Amount => match exchange {
            None => Ok(discount::fixed_amount(value, eligible)),
            Some(rate) => {
                let converted = rate.convert(value).ok_or_else(out_of_range)?;
                Ok(Discount {
                    conversion: Some(rate.record(value, converted)),
                    ..discount::fixed_amount(converted, eligible)
                })
            }
        },
        DiscountType::Percentage => Ok(discount::percentage(value, eligible)),
        DiscountType::FreeShipping => Ok(discount::free_shipping()),
        DiscountType::GiftCard => {
            let card = GiftCard {
                balance: ctx.gift_card_balance.unwrap_or(value),
                min_value: ctx.gift_card_min_value,
                min_redemption: ctx.gift_card_min_redemption,
            };
            discount::gift_card(&card, ctx.requested_amount, eligible, exchange)
                .map_err(|refusal| gift_card_failure(refusal, &card))
        }
    }
}

fn gift_card_failure(refusal: GiftCardRefusal, card: &GiftCard) -> Failure {
    match refusal {
        GiftCardRefusal::Empty => failure("gift_card_empty", "The gift card is empty.".into()),
        GiftCardRefusal::NotPositive => failure(
            "nothing_to_pay",
            "The amount to pay with the gift card must be more than 0.".into(),
        ),
        GiftCardRefusal::AboveBalance => failure(
            "above_balance",
            format!(
                "The gift card holds {}, less than the amount requested.",
                card.balance
            ),
        ),
        GiftCardRefusal::AboveBasket => failure(
            "above_basket",
            "The amount requested is more than the eligible basket.".into(),
        ),
        GiftCardRefusal::BelowMinRedemption => failure(
            "below_min_redemption",
            format!(
                "At least {} must be paid with the gift card each time.",
                card.min_redemption.unwrap_or(0)
            ),
        ),
        GiftCardRefusal::OutOfRange => out_of_range(),
    }
}

fn out_of_range() -> Failure {
    failure(
        "amount_out_of_range",
        "The coupon's value does not fit an amount once converted.".into(),
    )
}

/// Where a redemption stands. A two-step redemption starts `reserved` (a hold that counts
/// against every limit) and ends `confirmed`, `released` or `expired`; a confirmed one may be
/// `reversed`.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RedemptionState {
    /// Held until `reserved_until`; not yet a redemption.
    Reserved,
    /// Redeemed.
    Confirmed,
    /// A hold given back before it ran out.
    Released,
    /// A hold that ran out.
    Expired,
    /// A redemption undone; the coupon was reinstated.
    Reversed,
}

/// The state a redemption row is in at `now`. Holds keep `reserved_until` for good (confirming
/// clears it), so a closed row with it set was a hold, released if closed before it ran out.
pub fn state(
    active: bool,
    reserved_until: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> RedemptionState {
    match (active, reserved_until) {
        (true, None) => RedemptionState::Confirmed,
        (false, None) => RedemptionState::Reversed,
        (true, Some(until)) if until > now => RedemptionState::Reserved,
        (true, Some(_)) => RedemptionState::Expired,
        (false, Some(until)) if closed_at.is_some_and(|at| at < until) => RedemptionState::Released,
        (false, Some(_)) => RedemptionState::Expired,
    }
}

/// Confirmed redemptions (holds left out) once the one being recorded is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// Of the code, by everyone.
    pub code: u64,
    /// Of a customer's copy of a common code, by that customer; `None` for any other row.
    pub copy: Option<u64>,
}

/// Whether the coupon row a redemption was recorded on has no redemptions left: the code limit
/// is reached, or, for a customer's copy of a common code, that customer's limit. Holds do not
/// use a coupon up: a released hold must find it as it was.
pub fn limit_reached(rules: &RedemptionRules, is_common: bool, confirmed: Confirmed) -> bool {
    let code = rules
        .code_limit(is_common)
        .is_some_and(|max| confirmed.code >= max);
    let copy = match (confirmed.copy, rules.customer_limit()) {
        (Some(n), Some(max)) => n >= u64::from(max),
        _ => false,
    };
    code || copy
}

/// A gift card is used up when nothing is left, or less than its minimum value or its minimum
/// redemption (the rest can never be spent, so it is forfeited: Antavo's voided card).
pub fn card_used_up(balance: i64, min_value: Option<i64>, min_redemption: Option<i64>) -> bool {
    let card = GiftCard {
        balance,
        min_value,
        min_redemption,
    };
    balance <= 0 || card.leaves_void(balance)
}

/// How far ahead of the server's clock a till's `at` may be: clocks drift, purchases are not
/// made in the future.
pub const MAX_CLOCK_AHEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Bounds the till's purchase time `at` around the server's `clock`: an offline till syncing
/// later may place it up to `max_offline` in the past, never further ahead than a drifting clock.
pub fn check_purchase_time(
    at: DateTime<Utc>,
    clock: DateTime<Utc>,
    max_offline: chrono::TimeDelta,
) -> Result<(), Invalid> {
    if at > clock + MAX_CLOCK_AHEAD {
        return Err(Invalid {
            field: "at",
            reason: format!("{at} is in the future; a purchase is placed at or before now"),
        });
    }
    if at < clock - max_offline {
        return Err(Invalid {
            field: "at",
            reason: format!(
                "{at} is more than {} seconds in the past",
                max_offline.num_seconds()
            ),
        });
    }
    Ok(())
}

/// An instant as the org's local date and time, for messages.
fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::discount::BasketLine;
    use chrono::TimeZone;

    const HOLDER: i64 = 1;
    const FRIEND: i64 = 2;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// A €5 coupon issued to customer 1, redeemed by them on Wednesday 2024-06-12 at 16:30 in
    /// Madrid (14:30 UTC).
    fn ctx() -> RedemptionContext {
        RedemptionContext {
            now: at(2024, 6, 12, 14, 30),
            clock: at(2024, 6, 12, 14, 30),
            tz: chrono_tz::Europe::Madrid,
            coupon_status: CouponStatus::Issued,
            expires_at: None,
            redeemable_from: None,
            holder: Some(HOLDER),
            redeemer: Some(HOLDER),
            code_redemptions: 0,
            customer_code_redemptions: 0,
            pool_redemptions: 0,
            customer_last_redemption_at: None,
            customer_registered_at: None,
            customer_transactions: None,
            is_common: false,
            discount_type: DiscountType::Amount,
            value: Some(500),
            currency: Some("EUR".into()),
            exchange: None,
            purchase_min: None,
            gift_card_balance: None,
            gift_card_min_value: None,
            gift_card_min_redemption: None,
            requested_amount: None,
        }
    }

    fn basket(total: i64) -> Basket {
        Basket {
            total,
            currency: Some("EUR".into()),
            lines: vec![],
        }
    }

    fn codes_for(
        rules: &RedemptionRules,
        ctx: &RedemptionContext,
        b: &Basket,
    ) -> Vec<&'static str> {
        match evaluate(rules, ctx, b, &StoreFacts::default()) {
            Ok(_) => vec![],
            Err(failures) => failures.iter().map(|f| f.code).collect(),
        }
    }

    /// The failure codes of redeeming with `ctx` on a €20 basket; empty = accepted.
    fn codes(rules: &RedemptionRules, ctx: &RedemptionContext) -> Vec<&'static str> {
        codes_for(rules, ctx, &basket(2000))
    }

    /// `ctx` after `code` redemptions of the code, `mine` of them by the redeemer, `pool` in the
    /// pool, redeemed by `who`.
    fn after(who: i64, code: u64, mine: u64, pool: u64) -> RedemptionContext {
        RedemptionContext {
            redeemer: Some(who),
            code_redemptions: code,
            customer_code_redemptions: mine,
            pool_redemptions: pool,
            ..ctx()
        }
    }

    fn rules(
        allow_anyone: bool,
        code: Option<u32>,
        customer: Option<u32>,
        series: Option<u64>,
    ) -> RedemptionRules {
        RedemptionRules {
            allow_anyone,
            // The table's "no customer-level limit" is a customer redeeming without limit.
            redeem_more_than_once: customer != Some(1),
            max_per_code: code,
            max_per_customer: customer,
            max_total: series,
            ..RedemptionRules::default()
        }
    }

    const NONE: Vec<&str> = Vec::new();

    // The 14 rows of Capillary's redemption limit table (seed 004). Series type (generated,
    // uploaded, third party) only matters through `is_common` and issuance, so rows sharing
    // limits exercise the same checks with that row's numbers.

    #[test]
    fn row_01_generated_anyone_code_10_customer_1() {
        let r = rules(true, Some(10), Some(1), None);
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(codes(&r, &after(FRIEND, 9, 0, 9)), NONE, "10th redemption");
        assert_eq!(codes(&r, &after(FRIEND, 10, 0, 10)), ["code_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 3, 1, 3)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(HOLDER, 1, 1, 1)), ["customer_limit"]);
        assert_eq!(
            codes(&r, &after(FRIEND, 0, 0, 1_000_000)),
            NONE,
            "no series limit"
        );
    }

    #[test]
    fn row_02_generated_anyone_code_5_series_10k() {
        let r = rules(true, Some(5), None, Some(10_000));
        assert_eq!(r.validate(), Ok(()));
        // One customer may take all 5 redemptions of the code.
        assert_eq!(codes(&r, &after(FRIEND, 4, 4, 9_999)), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 5, 5, 9_000)), ["code_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 0, 0, 10_000)), ["series_limit"]);
    }

    #[test]
    fn row_03_generated_anyone_code_5_customer_1_series_10k() {
        let r = rules(true, Some(5), Some(1), Some(10_000));
        assert_eq!(codes(&r, &after(FRIEND, 4, 0, 9_999)), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 5, 0, 100)), ["code_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 2, 1, 100)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 2, 0, 10_000)), ["series_limit"]);
        assert_eq!(
            codes(&r, &after(FRIEND, 5, 1, 10_000)),
            ["customer_limit", "code_limit", "series_limit"]
        );
    }

    #[test]
    fn row_04_generated_anyone_code_5() {
        let r = rules(true, Some(5), None, None);
        assert_eq!(codes(&r, &after(FRIEND, 4, 4, 1_000_000)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 5, 1, 5)), ["code_limit"]);
    }

    #[test]
    fn row_05_generated_anyone_customer_1_series_10k() {
        let r = rules(true, None, Some(1), Some(10_000));
        assert_eq!(r.code_limit(false), None);
        // No code-level limit: thousands of customers may share the code, once each.
        assert_eq!(codes(&r, &after(FRIEND, 5_000, 0, 5_000)), NONE);
        assert_eq!(
            codes(&r, &after(FRIEND, 5_000, 1, 5_000)),
            ["customer_limit"]
        );
        assert_eq!(
            codes(&r, &after(FRIEND, 5_000, 0, 10_000)),
            ["series_limit"]
        );
    }

    #[test]
    fn row_06_generated_holder_only_customer_1_series_5k() {
        let r = rules(false, None, Some(1), Some(5_000));
        // Code-level limit = customer-level limit when only the holder may redeem.
        assert_eq!(r.code_limit(false), Some(1));
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 4_999)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 1, 1, 1)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 0, 0, 1)), ["not_holder"]);
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 5_000)), ["series_limit"]);
        // Transferred after its previous holder redeemed it: the code is used up.
        let transferred = RedemptionContext {
            holder: Some(FRIEND),
            ..after(FRIEND, 1, 0, 1)
        };
        assert_eq!(codes(&r, &transferred), ["code_limit"]);
    }

    #[test]
    fn row_07_common_code_customer_2_series_1000() {
        let r = rules(true, None, Some(2), Some(1_000));
        assert_eq!(r.validate(), Ok(()));
        let common = |code, mine, pool| RedemptionContext {
            is_common: true,
            holder: None,
            coupon_status: CouponStatus::Available,
            ..after(7, code, mine, pool)
        };
        assert_eq!(codes(&r, &common(998, 1, 998)), NONE);
        assert_eq!(codes(&r, &common(998, 2, 998)), ["customer_limit"]);
        assert_eq!(codes(&r, &common(1_000, 0, 1_000)), ["series_limit"]);
        let anonymous = RedemptionContext {
            redeemer: None,
            ..common(1, 0, 1)
        };
        assert_eq!(codes(&r, &anonymous), ["customer_required"]);
        // A common code is everyone's even when the pool does not say "allow anyone".
        let r = rules(false, None, Some(2), Some(1_000));
        assert_eq!(r.code_limit(true), None);
        assert_eq!(codes(&r, &common(998, 1, 998)), NONE);
    }

    #[test]
    fn row_08_uploaded_anyone_code_5_customer_1_series_50k() {
        let r = rules(true, Some(5), Some(1), Some(50_000));
        // An uploaded code nobody has claimed yet may be redeemed by anyone (Antavo).
        let unclaimed = RedemptionContext {
            coupon_status: CouponStatus::Available,
            holder: None,
            ..after(FRIEND, 0, 0, 49_999)
        };
        assert_eq!(codes(&r, &unclaimed), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 5, 0, 10)), ["code_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 3, 1, 10)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 3, 0, 50_000)), ["series_limit"]);
    }

    #[test]
    fn row_09_uploaded_anyone_code_5_customer_1() {
        let r = rules(true, Some(5), Some(1), None);
        assert_eq!(codes(&r, &after(FRIEND, 4, 0, 4_000_000)), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 5, 0, 5)), ["code_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 1, 1, 5)), ["customer_limit"]);
    }

    #[test]
    fn row_10_uploaded_anyone_code_5_series_25k() {
        let r = rules(true, Some(5), None, Some(25_000));
        assert_eq!(codes(&r, &after(FRIEND, 4, 3, 24_999)), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 5, 3, 20)), ["code_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 0, 0, 25_000)), ["series_limit"]);
    }

    #[test]
    fn row_11_uploaded_anyone_code_5() {
        let r = rules(true, Some(5), None, None);
        assert_eq!(codes(&r, &after(FRIEND, 4, 0, 9_999_999)), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 5, 0, 5)), ["code_limit"]);
    }

    #[test]
    fn row_12_uploaded_anyone_customer_5_series_5000() {
        let r = rules(true, None, Some(5), Some(5_000));
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(codes(&r, &after(FRIEND, 40, 4, 4_999)), NONE);
        assert_eq!(codes(&r, &after(FRIEND, 40, 5, 100)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 40, 0, 5_000)), ["series_limit"]);
    }

    #[test]
    fn row_13_uploaded_holder_only_customer_1_series_5k() {
        let r = rules(false, None, Some(1), Some(5_000));
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 4_999)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 1, 1, 1)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(FRIEND, 0, 0, 1)), ["not_holder"]);
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 5_000)), ["series_limit"]);
        // Only the holder may redeem, so an unclaimed uploaded code must be issued first.
        let unclaimed = RedemptionContext {
            coupon_status: CouponStatus::Available,
            holder: None,
            ..ctx()
        };
        assert_eq!(codes(&r, &unclaimed), ["not_issued"]);
    }

    #[test]
    fn row_14_third_party_holder_only_code_limit_equals_customer_limit() {
        let r = rules(false, None, Some(1), Some(5_000));
        assert_eq!(r.code_limit(false), r.customer_limit().map(u64::from));
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 0)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 1, 1, 1)), ["customer_limit"]);
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 5_000)), ["series_limit"]);
        let r = rules(false, None, Some(3), Some(5_000));
        assert_eq!(r.code_limit(false), Some(3));
        assert_eq!(codes(&r, &after(HOLDER, 2, 2, 2)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 3, 3, 3)), ["customer_limit"]);
    }

    #[test]
    fn an_unconfigured_unique_code_is_single_use_and_a_common_code_once_per_customer() {
        let r = RedemptionRules::default();
        assert_eq!(
            (r.customer_limit(), r.code_limit(false)),
            (Some(1), Some(1))
        );
        assert_eq!(r.code_limit(true), None);
        assert_eq!(codes(&r, &after(HOLDER, 0, 0, 0)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 1, 1, 1)), ["customer_limit"]);
        let used = RedemptionContext {
            coupon_status: CouponStatus::Redeemed,
            ..after(HOLDER, 1, 1, 1)
        };
        assert_eq!(codes(&r, &used), ["already_redeemed", "customer_limit"]);
    }

    #[test]
    fn redeem_more_than_once_up_to_a_per_customer_maximum() {
        let r = RedemptionRules {
            redeem_more_than_once: true,
            max_per_customer: Some(3),
            ..RedemptionRules::default()
        };
        assert_eq!(codes(&r, &after(HOLDER, 2, 2, 2)), NONE);
        assert_eq!(codes(&r, &after(HOLDER, 3, 3, 3)), ["customer_limit"]);
        let unlimited = RedemptionRules {
            max_per_customer: None,
            ..r
        };
        assert_eq!(unlimited.code_limit(false), None);
        assert_eq!(codes(&unlimited, &after(HOLDER, 100, 100, 100)), NONE);
        // Without a per-customer rule an anonymous checkout is fine for a shareable code.
        let anonymous = RedemptionContext {
            redeemer: None,
            ..ctx()
        };
        let shared = RedemptionRules {
            allow_anyone: true,
            ..unlimited
        };
        assert_eq!(codes(&shared, &anonymous), NONE);
        assert_eq!(
            codes(&RedemptionRules::default(), &anonymous),
            ["customer_required"]
        );
    }

    #[test]
    fn statuses_other_than_issued_refuse() {
        let r = RedemptionRules::default();
        for (status, code) in [
            (CouponStatus::Redeemed, "already_redeemed"),
            (CouponStatus::Expired, "expired"),
            (CouponStatus::Invalidated, "invalidated"),
            (CouponStatus::Revoked, "revoked"),
        ] {
            let c = RedemptionContext {
                coupon_status: status,
                ..ctx()
            };
            assert_eq!(codes(&r, &c), [code]);
        }
    }

    #[test]
    fn expiry_and_redemption_start_are_instants() {
        let r = RedemptionRules::default();
        let c = |expires_at, redeemable_from| RedemptionContext {
            expires_at: Some(expires_at),
            redeemable_from: Some(redeemable_from),
            ..ctx()
        };
        let now = ctx().now;
        let minute = chrono::Duration::minutes(1);
        assert_eq!(codes(&r, &c(now, now)), NONE);
        assert_eq!(codes(&r, &c(now - minute, now)), ["expired"]);
        assert_eq!(
            codes(&r, &c(now + minute, now + minute)),
            ["not_yet_redeemable"]
        );
        // An expired status and a past date are one failure.
        let both = RedemptionContext {
            coupon_status: CouponStatus::Expired,
            ..c(now - minute, now)
        };
        assert_eq!(codes(&r, &both), ["expired"]);
    }

    #[test]
    fn min_days_between_counts_calendar_days_in_the_org_zone() {
        let r = RedemptionRules {
            allow_anyone: true,
            redeem_more_than_once: true,
            min_days_between: Some(1),
            ..RedemptionRules::default()
        };
        // Last redemption 23:50 Madrid on the 11th, now 00:10 Madrid on the 12th: the next day.
        let c = |last, now| RedemptionContext {
            customer_last_redemption_at: Some(last),
            now,
            ..ctx()
        };
        let last = at(2024, 6, 11, 21, 50);
        assert_eq!(codes(&r, &c(last, at(2024, 6, 11, 22, 10))), NONE);
        // Different UTC dates (00:05 and 23:00 Madrid, both on the 12th) are the same org day.
        assert_eq!(
            codes(&r, &c(at(2024, 6, 11, 22, 5), at(2024, 6, 12, 21, 0))),
            ["min_gap"]
        );
        let weekly = RedemptionRules {
            min_days_between: Some(7),
            ..r
        };
        assert_eq!(
            codes(&weekly, &c(last, at(2024, 6, 17, 21, 0))),
            ["min_gap"]
        );
        assert_eq!(codes(&weekly, &c(last, at(2024, 6, 17, 22, 0))), NONE);
        assert!(
            evaluate(
                &weekly,
                &c(last, at(2024, 6, 17, 21, 0)),
                &basket(2000),
                &StoreFacts::default()
            )
            .unwrap_err()[0]
                .detail
                .contains("2024-06-18")
        );
    }

    #[test]
    fn store_scope_matches_a_store_zone_concept_or_till() {
        let r = RedemptionRules {
            stores: vec![
                StoreScope {
                    kind: StoreScopeKind::Store,
                    id: "s1".into(),
                },
                StoreScope {
                    kind: StoreScopeKind::Zone,
                    id: "north".into(),
                },
                StoreScope {
                    kind: StoreScopeKind::Till,
                    id: "t9".into(),
                },
            ],
            ..RedemptionRules::default()
        };
        let at_store = |store: StoreFacts| evaluate(&r, &ctx(), &basket(2000), &store);
        let facts = |id: &str, zone: &str, concept: &str, till: &str| StoreFacts {
            id: Some(id.into()),
            zone: Some(zone.into()),
            concept: Some(concept.into()),
            till: Some(till.into()),
        };
        assert!(at_store(facts("s1", "south", "c", "t1")).is_ok());
        assert!(at_store(facts("s2", "north", "c", "t1")).is_ok());
        assert!(at_store(facts("s2", "south", "c", "t9")).is_ok());
        // "north" as a concept is not the zone "north".
        let refused = at_store(facts("s2", "south", "north", "t1")).unwrap_err();
        assert_eq!(refused[0].code, "store_not_allowed");
        assert!(at_store(StoreFacts::default()).is_err());
        let anywhere = RedemptionRules::default();
        assert!(evaluate(&anywhere, &ctx(), &basket(2000), &StoreFacts::default()).is_ok());
    }

    #[test]
    fn bill_limits_and_purchase_minimum_use_the_basket_total() {
        let r = RedemptionRules {
            min_bill: Some(1000),
            max_bill: Some(5000),
            ..RedemptionRules::default()
        };
        assert_eq!(codes_for(&r, &ctx(), &basket(1000)), NONE);
        assert_eq!(codes_for(&r, &ctx(), &basket(5000)), NONE);
        assert_eq!(codes_for(&r, &ctx(), &basket(999)), ["below_min_bill"]);
        assert_eq!(codes_for(&r, &ctx(), &basket(5001)), ["above_max_bill"]);
        let c = RedemptionContext {
            purchase_min: Some(3000),
            ..ctx()
        };
        assert_eq!(codes_for(&r, &c, &basket(2999)), ["below_purchase_min"]);
        assert_eq!(codes_for(&r, &c, &basket(3000)), NONE);
    }

    #[test]
    fn day_and_hour_windows_are_in_the_org_zone() {
        // 23:30 UTC on Wednesday the 12th is 01:30 on Thursday the 13th in Madrid.
        let c = RedemptionContext {
            now: at(2024, 6, 12, 23, 30),
            ..ctx()
        };
        let with = |days_of_week: Vec<DayOfWeek>, days_of_month: Vec<u8>, hours: Vec<u8>| {
            RedemptionRules {
                days_of_week,
                days_of_month,
                hours,
                ..RedemptionRules::default()
            }
        };
        assert_eq!(
            codes(&with(vec![DayOfWeek::Thu], vec![13], vec![1]), &c),
            NONE
        );
        assert_eq!(
            codes(&with(vec![DayOfWeek::Wed], vec![12], vec![23]), &c),
            ["wrong_day_of_week", "wrong_day_of_month", "wrong_hour"]
        );
        assert_eq!(
            codes(
                &with(vec![DayOfWeek::Sat, DayOfWeek::Sun], vec![], vec![]),
                &c
            ),
            ["wrong_day_of_week"]
        );
    }

    fn line(product: &str, category: &str, price: i64, on_sale: bool) -> BasketLine {
        BasketLine {
            product_id: product.into(),
            category: Some(category.into()),
            price,
            quantity: 1,
            on_sale,
            line_id: None,
        }
    }

    #[test]
    fn products_and_categories_need_an_eligible_line() {
        let b = Basket {
            total: 3500,
            currency: Some("EUR".into()),
            lines: vec![
                line("shoe", "shoes", 2000, false),
                line("sock", "socks", 1000, true),
            ],
        };
        let hats = RedemptionRules {
            categories: vec!["hats".into()],
            ..RedemptionRules::default()
        };
        assert_eq!(codes_for(&hats, &ctx(), &b), ["no_eligible_items"]);
        let socks = RedemptionRules {
            products: vec!["sock".into()],
            ..RedemptionRules::default()
        };
        let d = evaluate(&socks, &ctx(), &b, &StoreFacts::default()).unwrap();
        assert_eq!(d.amount, 500);
        assert_eq!(d.lines.len(), 1);
        let socks_not_on_sale = RedemptionRules {
            include_sale_items: false,
            ..socks
        };
        assert_eq!(
            codes_for(&socks_not_on_sale, &ctx(), &b),
            ["no_eligible_items"]
        );
        // A €30 amount coupon on the €20 shoe takes €20.
        let shoes = RedemptionRules {
            categories: vec!["shoes".into()],
            ..RedemptionRules::default()
        };
        let big = RedemptionContext {
            value: Some(3000),
            ..ctx()
        };
        let d = evaluate(&shoes, &big, &b, &StoreFacts::default()).unwrap();
        assert_eq!(d.amount, 2000);
    }

    #[test]
    fn new_customers_by_registration_window_and_transactions() {
        let r = RedemptionRules {
            new_customers: Some(NewCustomerRule {
                registered_from: NaiveDate::from_ymd_opt(2024, 6, 1),
                registered_to: NaiveDate::from_ymd_opt(2024, 6, 10),
                max_transactions: Some(0),
            }),
            ..RedemptionRules::default()
        };
        let c = |registered_at, transactions| RedemptionContext {
            customer_registered_at: registered_at,
            customer_transactions: transactions,
            ..ctx()
        };
        // 22:30 UTC on the 10th is already the 11th in Madrid.
        assert_eq!(codes(&r, &c(Some(at(2024, 6, 10, 21, 30)), Some(0))), NONE);
        assert_eq!(
            codes(&r, &c(Some(at(2024, 6, 10, 22, 30)), Some(0))),
            ["not_new_customer"]
        );
        assert_eq!(
            codes(&r, &c(Some(at(2024, 5, 31, 21, 59)), Some(0))),
            ["not_new_customer"]
        );
        assert_eq!(
            codes(&r, &c(Some(at(2024, 6, 5, 12, 0)), Some(1))),
            ["not_new_customer"]
        );
        let unknown = evaluate(&r, &c(None, None), &basket(2000), &StoreFacts::default());
        let detail = &unknown.unwrap_err()[0].detail;
        assert!(detail.contains("registration date is unknown"), "{detail}");
        assert!(detail.contains("transaction count is unknown"), "{detail}");
    }

    #[test]
    fn a_basket_in_another_currency_needs_a_rate() {
        let r = RedemptionRules {
            min_bill: Some(5000),
            ..RedemptionRules::default()
        };
        let usd = Basket {
            currency: Some("USD".into()),
            ..basket(100)
        };
        // The bill is not compared across currencies.
        assert_eq!(codes_for(&r, &ctx(), &usd), ["no_exchange_rate"]);
        // A percentage pool without a currency applies in any.
        let pct = RedemptionContext {
            discount_type: DiscountType::Percentage,
            value: Some(1250),
            currency: None,
            ..ctx()
        };
        let d = evaluate(
            &RedemptionRules::default(),
            &pct,
            &usd,
            &StoreFacts::default(),
        )
        .unwrap();
        assert_eq!(d.amount, 12);
    }

    fn eur_to(to: &str, rate: &str) -> Option<ExchangeRate> {
        use crate::domain::currency::{Currency, Rate};
        Some(ExchangeRate {
            from: Currency::parse("EUR", "currency").unwrap(),
            to: Currency::parse(to, "currency").unwrap(),
            rate: Rate::parse(rate).unwrap(),
            effective_at: DateTime::UNIX_EPOCH,
        })
    }

    fn in_currency(currency: &str, total: i64) -> Basket {
        Basket {
            currency: Some(currency.into()),
            ..basket(total)
        }
    }

    #[test]
    fn an_amount_coupon_is_converted_half_even_and_the_rate_recorded() {
        // €5.00 at 1.085 = 542.5 cents -> 542 and at 1.083 = 541.5 -> 542 (ties to even);
        // at 1.0851 = 542.55 -> 543.
        let at = |rate| RedemptionContext {
            exchange: eur_to("USD", rate),
            ..ctx()
        };
        let r = RedemptionRules::default();
        let usd = in_currency("USD", 2000);
        let d = evaluate(&r, &at("1.085"), &usd, &StoreFacts::default()).unwrap();
        assert_eq!(d.amount, 542);
        let conversion = d.conversion.unwrap();
        assert_eq!(
            (conversion.from.as_str(), conversion.to.as_str()),
            ("EUR", "USD")
        );
        assert_eq!(
            (
                conversion.rate.as_str(),
                conversion.value,
                conversion.converted
            ),
            ("1.085", 500, 542)
        );
        for (rate, amount) in [("1.083", 542), ("1.0851", 543)] {
            let d = evaluate(&r, &at(rate), &usd, &StoreFacts::default()).unwrap();
            assert_eq!(d.amount, amount, "at {rate}");
        }
        // Into yen (no minor unit) and capped at the basket like any amount.
        let yen = RedemptionContext {
            exchange: eur_to("JPY", "162.37"),
            ..ctx()
        };
        let d = evaluate(
            &r,
            &yen,
            &in_currency("JPY", 10_000),
            &StoreFacts::default(),
        )
        .unwrap();
        assert_eq!(d.amount, 812); // 811.85
        let d = evaluate(&r, &yen, &in_currency("JPY", 300), &StoreFacts::default()).unwrap();
        assert_eq!((d.amount, d.conversion.unwrap().converted), (300, 812));
        // The basket in the pool's own currency is not converted even with a rate at hand.
        let d = evaluate(&r, &at("1.085"), &basket(2000), &StoreFacts::default()).unwrap();
        assert_eq!((d.amount, d.conversion), (500, None));
    }

    #[test]
    fn bill_limits_are_converted_to_the_basket_currency() {
        let r = RedemptionRules {
            min_bill: Some(5000),
            ..RedemptionRules::default()
        };
        let kwd = RedemptionContext {
            exchange: eur_to("KWD", "0.3325"),
            ..ctx()
        };
        // €50 = 16.625 KWD = 16625 fils.
        assert_eq!(
            codes_for(&r, &kwd, &in_currency("KWD", 16_624)),
            ["below_min_bill"]
        );
        assert_eq!(
            codes_for(&r, &kwd, &in_currency("KWD", 16_625)),
            Vec::<&str>::new()
        );
        // A percentage pool with a currency and no bill limit needs no rate.
        let pct = RedemptionContext {
            discount_type: DiscountType::Percentage,
            value: Some(1000),
            ..ctx()
        };
        let d = evaluate(
            &RedemptionRules::default(),
            &pct,
            &in_currency("USD", 990),
            &StoreFacts::default(),
        );
        assert_eq!(d.unwrap().amount, 99);
        assert_eq!(
            codes_for(&r, &pct, &in_currency("USD", 9900)),
            ["no_exchange_rate"]
        );
    }

    #[test]
    fn a_gift_card_pays_in_another_currency_from_its_own_balance() {
        let r = RedemptionRules::default().for_type(DiscountType::GiftCard);
        let card = |balance, requested| RedemptionContext {
            discount_type: DiscountType::GiftCard,
            value: Some(10_000),
            gift_card_balance: Some(balance),
            requested_amount: requested,
            exchange: eur_to("USD", "1.0837"),
            ..ctx()
        };
        // €10.00 can pay $10.83 (10.837 rounded down), which costs the whole card.
        let d = evaluate(
            &r,
            &card(1000, None),
            &in_currency("USD", 5000),
            &StoreFacts::default(),
        )
        .unwrap();
        assert_eq!((d.amount, d.gift_card_balance_after), (1083, Some(0)));
        let conversion = d.conversion.unwrap();
        assert_eq!((conversion.value, conversion.converted), (1000, 1083));
        // $5.00 costs 461.382... cents, rounded up: 462.
        let d = evaluate(
            &r,
            &card(1000, Some(500)),
            &in_currency("USD", 5000),
            &StoreFacts::default(),
        )
        .unwrap();
        assert_eq!((d.amount, d.gift_card_balance_after), (500, Some(538)));
        // More than the card can pay in dollars is refused, not trimmed.
        let refused = evaluate(
            &r,
            &card(1000, Some(1084)),
            &in_currency("USD", 5000),
            &StoreFacts::default(),
        );
        assert_eq!(refused.unwrap_err()[0].code, "above_balance");
    }

    #[test]
    fn percentage_and_free_shipping_through_evaluate() {
        let pct = RedemptionContext {
            discount_type: DiscountType::Percentage,
            value: Some(1250),
            ..ctx()
        };
        let r = RedemptionRules::default();
        let d = evaluate(&r, &pct, &basket(1005), &StoreFacts::default()).unwrap();
        assert_eq!(d.amount, 126);
        let d = evaluate(&r, &pct, &basket(996), &StoreFacts::default()).unwrap();
        assert_eq!(d.amount, 124);
        let ship = RedemptionContext {
            discount_type: DiscountType::FreeShipping,
            value: None,
            ..ctx()
        };
        let d = evaluate(&r, &ship, &basket(1005), &StoreFacts::default()).unwrap();
        assert_eq!((d.amount, d.free_shipping), (0, true));
    }

    fn gift(balance: Option<i64>, requested: Option<i64>) -> RedemptionContext {
        RedemptionContext {
            discount_type: DiscountType::GiftCard,
            value: Some(10_000),
            currency: Some("USD".into()),
            gift_card_balance: balance,
            gift_card_min_value: Some(100),
            gift_card_min_redemption: Some(1500),
            requested_amount: requested,
            ..ctx()
        }
    }

    #[test]
    fn gift_card_antavo_examples() {
        let r = RedemptionRules {
            redeem_more_than_once: true,
            ..RedemptionRules::default()
        };
        let usd = |total| Basket {
            currency: Some("USD".into()),
            ..basket(total)
        };
        // $100 card (never spent: the pool's value), pay $99.50: $0.50 left, under $1, voided.
        let d = evaluate(&r, &gift(None, None), &usd(9950), &StoreFacts::default()).unwrap();
        assert_eq!(d.amount, 9950);
        assert_eq!(d.gift_card_balance_after, Some(50));
        assert!(d.gift_card_voided);
        // Redeeming $10 with a $15 minimum redemption value fails.
        let refused = evaluate(
            &r,
            &gift(Some(10_000), Some(1000)),
            &usd(5000),
            &StoreFacts::default(),
        )
        .unwrap_err();
        assert_eq!(refused[0].code, "below_min_redemption");
        assert!(refused[0].detail.contains("1500"));
        // Partial payment keeps the card.
        let d = evaluate(
            &r,
            &gift(Some(10_000), Some(2000)),
            &usd(5000),
            &StoreFacts::default(),
        )
        .unwrap();
        assert_eq!(
            (d.gift_card_balance_after, d.gift_card_voided),
            (Some(8000), false)
        );
        let codes_of = |c: &RedemptionContext, total| codes_for(&r, c, &usd(total));
        assert_eq!(codes_of(&gift(Some(0), None), 5000), ["gift_card_empty"]);
        assert_eq!(
            codes_of(&gift(Some(2000), Some(3000)), 5000),
            ["above_balance"]
        );
        assert_eq!(
            codes_of(&gift(Some(9000), Some(6000)), 5000),
            ["above_basket"]
        );
        assert_eq!(
            codes_of(&gift(Some(9000), Some(-5)), 5000),
            ["nothing_to_pay"]
        );
    }

    #[test]
    fn every_failed_rule_is_reported() {
        let r = RedemptionRules {
            max_total: Some(10),
            min_bill: Some(5000),
            hours: vec![3],
            stores: vec![StoreScope {
                kind: StoreScopeKind::Concept,
                id: "outlet".into(),
            }],
            ..RedemptionRules::default()
        };
        let c = RedemptionContext {
            coupon_status: CouponStatus::Revoked,
            redeemer: Some(FRIEND),
            pool_redemptions: 10,
            purchase_min: Some(4000),
            ..ctx()
        };
        let failures = evaluate(&r, &c, &basket(2000), &StoreFacts::default()).unwrap_err();
        let codes: Vec<&str> = failures.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            [
                "revoked",
                "not_holder",
                "series_limit",
                "store_not_allowed",
                "wrong_hour",
                "below_min_bill",
                "below_purchase_min"
            ]
        );
        assert!(failures.iter().all(|f| f.detail.ends_with('.')));
    }

    #[test]
    fn validation_names_the_field() {
        let field = |r: RedemptionRules| r.validate().unwrap_err().field;
        let d = RedemptionRules::default;
        assert_eq!(d().validate(), Ok(()));
        assert_eq!(
            field(RedemptionRules {
                hours: vec![0, 24],
                ..d()
            }),
            "redemption.hours"
        );
        assert_eq!(
            field(RedemptionRules {
                days_of_month: vec![0],
                ..d()
            }),
            "redemption.days_of_month"
        );
        assert_eq!(
            field(RedemptionRules {
                days_of_month: vec![32],
                ..d()
            }),
            "redemption.days_of_month"
        );
        assert_eq!(
            field(RedemptionRules {
                max_per_code: Some(0),
                ..d()
            }),
            "redemption.max_per_code"
        );
        assert_eq!(
            field(RedemptionRules {
                max_per_customer: Some(2),
                ..d()
            }),
            "redemption.max_per_customer"
        );
        assert_eq!(
            field(RedemptionRules {
                max_total: Some(0),
                ..d()
            }),
            "redemption.max_total"
        );
        assert_eq!(
            field(RedemptionRules {
                min_days_between: Some(0),
                ..d()
            }),
            "redemption.min_days_between"
        );
        assert_eq!(
            field(RedemptionRules {
                min_bill: Some(500),
                max_bill: Some(400),
                ..d()
            }),
            "redemption.max_bill"
        );
        assert_eq!(
            field(RedemptionRules {
                min_bill: Some(-1),
                ..d()
            }),
            "redemption.min_bill"
        );
        assert_eq!(
            field(RedemptionRules {
                stores: vec![StoreScope {
                    kind: StoreScopeKind::Store,
                    id: " ".into()
                }],
                ..d()
            }),
            "redemption.stores"
        );
        assert_eq!(
            field(RedemptionRules {
                products: vec!["".into()],
                ..d()
            }),
            "redemption.products"
        );
        assert_eq!(
            field(RedemptionRules {
                new_customers: Some(NewCustomerRule {
                    registered_from: NaiveDate::from_ymd_opt(2024, 2, 1),
                    registered_to: NaiveDate::from_ymd_opt(2024, 1, 1),
                    max_transactions: None,
                }),
                ..d()
            }),
            "redemption.new_customers.registered_to"
        );
    }

    #[test]
    fn rules_json_defaults_and_names() {
        use poem_openapi::types::ParseFromJSON;
        let empty: RedemptionRules = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, RedemptionRules::default());
        assert!(empty.include_sale_items);
        let parsed = RedemptionRules::parse_from_json(Some(serde_json::json!({}))).unwrap();
        assert_eq!(parsed, RedemptionRules::default());
        let json = serde_json::json!({
            "days_of_week": ["mon", "sun"],
            "stores": [{"kind": "till", "id": "t1"}],
            "include_sale_items": false,
            "new_customers": {"max_transactions": 0}
        });
        let via_serde: RedemptionRules = serde_json::from_value(json.clone()).unwrap();
        let via_oai = RedemptionRules::parse_from_json(Some(json)).unwrap();
        assert_eq!(via_serde, via_oai);
        assert_eq!(via_serde.days_of_week, [DayOfWeek::Mon, DayOfWeek::Sun]);
        assert_eq!(via_serde.stores[0].kind, StoreScopeKind::Till);
        let back = serde_json::to_value(&via_serde).unwrap();
        assert_eq!(back["days_of_week"], serde_json::json!(["mon", "sun"]));
    }

    #[test]
    fn redemption_states_follow_the_row() {
        let now = at(2024, 6, 12, 12, 0);
        let later = now + chrono::Duration::minutes(15);
        let earlier = now - chrono::Duration::minutes(15);
        use RedemptionState::*;
        assert_eq!(state(true, None, None, now), Confirmed);
        assert_eq!(state(false, None, Some(now), now), Reversed);
        assert_eq!(state(true, Some(later), None, now), Reserved);
        assert_eq!(state(true, Some(earlier), None, now), Expired);
        assert_eq!(state(false, Some(later), Some(now), now), Released);
        assert_eq!(state(false, Some(earlier), Some(now), now), Expired);
    }

    #[test]
    fn a_row_is_used_up_at_its_code_limit_or_its_copys_customer_limit() {
        let c = |code, copy| Confirmed { code, copy };
        // Unconfigured unique code: single use.
        let single = RedemptionRules::default();
        assert!(limit_reached(&single, false, c(1, None)));
        // Row 1: ten redemptions of the code, once per customer.
        let r1 = rules(true, Some(10), Some(1), None);
        assert!(!limit_reached(&r1, false, c(9, None)));
        assert!(limit_reached(&r1, false, c(10, None)));
        // Row 7: a common code twice per customer, no code limit.
        let r7 = rules(true, None, Some(2), Some(1_000));
        assert!(!limit_reached(&r7, true, c(500, None)), "the code row");
        assert!(!limit_reached(&r7, true, c(500, Some(1))));
        assert!(limit_reached(&r7, true, c(500, Some(2))));
        // Redeem more than once without limits: never used up.
        let open = rules(true, None, None, None);
        assert!(!limit_reached(&open, false, c(1_000, None)));
    }

    #[test]
    fn gift_cards_are_used_up_when_spent_or_under_their_minimum() {
        assert!(card_used_up(0, None, None));
        assert!(!card_used_up(1, None, None));
        assert!(card_used_up(50, Some(100), None));
        assert!(!card_used_up(100, Some(100), None));
        assert!(card_used_up(1000, None, Some(1500)));
        assert!(!card_used_up(1500, None, Some(1500)));
    }
}
