//! Discount arithmetic at checkout: which basket lines a coupon applies to and how much it takes
//! off. Amounts are integer minor units, percentages basis points (10000 = 100%); no floats.

use poem_openapi::{Enum, Object};
use sea_orm::{DeriveActiveEnum, EnumIter, FromJsonQueryResult, sea_query::StringLen};
use serde::{Deserialize, Serialize};

use super::{
    Invalid,
    currency::{Conversion, Currency, ExchangeRate},
};

/// 100% in basis points.
const FULL_BPS: i64 = 10_000;

/// What a coupon gives.
// Stored as its name in `pools.discount_type`: never rename a `string_value`.
#[derive(
    Enum,
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum DiscountType {
    /// A fixed amount off, in minor units of the pool's currency.
    #[sea_orm(string_value = "amount")]
    Amount,
    /// A percentage off the eligible items, in basis points (10000 = 100%).
    #[sea_orm(string_value = "percentage")]
    Percentage,
    /// Free shipping; no amount comes off the basket.
    #[sea_orm(string_value = "free_shipping")]
    FreeShipping,
    /// A stored balance spent over one or more checkouts.
    #[sea_orm(string_value = "gift_card")]
    GiftCard,
}

impl DiscountType {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscountType::Amount => "amount",
            DiscountType::Percentage => "percentage",
            DiscountType::FreeShipping => "free_shipping",
            DiscountType::GiftCard => "gift_card",
        }
    }
}

/// One product line of the basket being paid.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BasketLine {
    /// The product's identifier in the caller's catalogue.
    pub product_id: String,
    /// The product's category, matched against the pool's `categories`.
    #[oai(default)]
    #[serde(default)]
    pub category: Option<String>,
    /// Unit price in minor units of the basket currency.
    pub price: i64,
    /// Number of units; the line is worth `price * quantity`.
    pub quantity: u32,
    /// Whether the product is already on sale (excluded when the pool does not include sale items).
    #[oai(default)]
    #[serde(default)]
    pub on_sale: bool,
    /// The caller's id for the line, echoed in the line discounts so two lines of one product
    /// can be told apart.
    #[oai(default)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_id: Option<String>,
}

impl BasketLine {
    /// `price * quantity`. Saturates instead of wrapping: a basket that passed
    /// [`Basket::validate`] never gets near the limit.
    pub fn total(&self) -> i64 {
        self.price.saturating_mul(i64::from(self.quantity))
    }
}

/// The basket a coupon is validated or redeemed against.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Basket {
    /// The bill amount in minor units, including anything not itemised (shipping, fees).
    pub total: i64,
    /// ISO 4217 currency code of every amount in the basket, e.g. `EUR`. Default: the currency
    /// of the store named in the request's `store.id` (`PUT /v1/stores/{id}`). A coupon in
    /// another currency has its value converted at the org's rate in force.
    #[oai(default)]
    #[serde(default)]
    pub currency: Option<String>,
    /// The product lines; needed when the pool is limited to products, categories or non-sale items.
    #[oai(default)]
    #[serde(default)]
    pub lines: Vec<BasketLine>,
}

impl Basket {
    /// Refuses a basket whose amounts cannot be trusted for arithmetic: negative or overflowing
    /// amounts, empty lines, or lines that add up to more than the total.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.total < 0 {
            return Err(invalid("basket.total", "must not be negative".into()));
        }
        if let Some(currency) = &self.currency {
            Currency::parse(currency, "basket.currency")?;
        }
        let mut sum: i64 = 0;
        for (i, line) in self.lines.iter().enumerate() {
            if line.product_id.trim().is_empty() {
                return Err(invalid(
                    "basket.lines",
                    format!("line {i} has an empty product_id"),
                ));
            }
            if line.price < 0 {
                return Err(invalid(
                    "basket.lines",
                    format!("line {i} has a negative price"),
                ));
            }
            if line.quantity == 0 {
                return Err(invalid(
                    "basket.lines",
                    format!("line {i} has a quantity of 0"),
                ));
            }
            sum = line
                .price
                .checked_mul(i64::from(line.quantity))
                .and_then(|t| sum.checked_add(t))
                .ok_or_else(|| {
                    invalid(
                        "basket.lines",
                        format!("line {i} overflows the amount range"),
                    )
                })?;
        }
        if sum > self.total {
            return Err(invalid(
                "basket.lines",
                format!(
                    "the lines add up to {sum}, more than the total {}",
                    self.total
                ),
            ));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: String) -> Invalid {
    Invalid { field, reason }
}

/// The part of the discount that falls on one basket line.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LineDiscount {
    /// The line's position in the basket's `lines`, from 0.
    #[serde(default)]
    pub line: u32,
    /// The caller's `line_id` for the line, when it gave one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_id: Option<String>,
    /// The line's product.
    pub product_id: String,
    /// Minor units taken off this line.
    pub amount: i64,
}

/// What a coupon takes off a basket.
#[derive(
    Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult,
)]
pub struct Discount {
    /// Minor units taken off the basket (for a gift card: the amount paid with it).
    pub amount: i64,
    /// Whether shipping is free.
    pub free_shipping: bool,
    /// How `amount` splits over the eligible lines; the amounts add up to `amount` exactly.
    /// Empty when the pool applies to the whole basket.
    pub lines: Vec<LineDiscount>,
    /// Gift cards: the balance left after this redemption.
    pub gift_card_balance_after: Option<i64>,
    /// Gift cards: whether the balance left is under the card's minimum value, so the card is void.
    pub gift_card_voided: bool,
    /// When the coupon is in another currency than the basket: the rate used and the amounts
    /// on both sides. `gift_card_balance_after` stays in the card's currency.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
}

/// Which basket items a pool applies to.
#[derive(Debug, Clone, Copy)]
pub struct ItemFilter<'a> {
    /// Product ids the pool applies to; empty = any product.
    pub products: &'a [String],
    /// Categories the pool applies to; empty = any category.
    pub categories: &'a [String],
    /// Whether items already on sale count.
    pub include_sale_items: bool,
}

impl ItemFilter<'_> {
    /// Whether only some lines are eligible, so the discount is worked out per line.
    pub fn restricts(&self) -> bool {
        !self.products.is_empty() || !self.categories.is_empty() || !self.include_sale_items
    }

    /// A line is eligible when it is one of the products or in one of the categories (either
    /// list matching is enough when both are set) and is not an excluded sale item.
    fn admits(&self, line: &BasketLine) -> bool {
        let listed = (self.products.is_empty() && self.categories.is_empty())
            || self.products.contains(&line.product_id)
            || line
                .category
                .as_ref()
                .is_some_and(|c| self.categories.contains(c));
        listed && (self.include_sale_items || !line.on_sale)
    }
}

/// The amount a coupon may take off and the lines it falls on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible<'a> {
    /// Minor units the discount applies to.
    pub total: i64,
    /// The eligible lines; empty when the whole basket is eligible.
    pub lines: Vec<&'a BasketLine>,
    /// Each eligible line's position in the basket.
    pub positions: Vec<usize>,
}

/// The eligible part of the basket. Without a restriction the whole total is eligible, including
/// what is not itemised; with one, only the admitted lines count (a basket without lines then has
/// nothing eligible, since we cannot tell what it holds).
pub fn eligible<'a>(basket: &'a Basket, filter: &ItemFilter) -> Eligible<'a> {
    if !filter.restricts() {
        return Eligible {
            total: basket.total,
            lines: Vec::new(),
            positions: Vec::new(),
        };
    }
    let (positions, lines): (Vec<usize>, Vec<&BasketLine>) = basket
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| filter.admits(l))
        .unzip();
    Eligible {
        positions,
        total: lines
            .iter()
            .fold(0i64, |sum, l| sum.saturating_add(l.total())),
        lines,
    }
}

/// A fixed amount off, never more than the eligible total.
pub fn fixed_amount(value: i64, eligible: &Eligible) -> Discount {
    with_amount(value.clamp(0, eligible.total), eligible)
}

/// `bps` basis points of the eligible total, rounded half-even to the minor unit. Each line's
/// exact share is `line total * bps / 10000`; see [`allocate`] for how they add up exactly.
pub fn percentage(bps: i64, eligible: &Eligible) -> Discount {
    // Pools over 100% are refused when saved; the clamp keeps a bad row from paying out more
    // than the basket.
    let bps = i128::from(bps.clamp(0, FULL_BPS));
    let amount = to_i64(round_half_even(
        i128::from(eligible.total) * bps,
        i128::from(FULL_BPS),
    ));
    let shares: Vec<i128> = eligible
        .lines
        .iter()
        .map(|l| i128::from(l.total()) * bps)
        .collect();
    Discount {
        amount,
        lines: line_discounts(eligible, &allocate(amount, &shares, i128::from(FULL_BPS))),
        ..Discount::default()
    }
}

/// Free shipping: nothing off the basket, the flag set.
pub fn free_shipping() -> Discount {
    Discount {
        free_shipping: true,
        ..Discount::default()
    }
}

/// A gift card's state and restrictions (Antavo: "minimum value", "minimum redemption value").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftCard {
    /// What is left on the card.
    pub balance: i64,
    /// A balance left under this voids the card.
    pub min_value: Option<i64>,
    /// Each redemption must spend at least this much.
    pub min_redemption: Option<i64>,
}

impl GiftCard {
    /// Whether a balance left could never be spent: under the minimum value, or under the
    /// minimum redemption (every payment must be at least that).
    pub fn leaves_void(&self, balance: i64) -> bool {
        self.min_value.is_some_and(|min| balance < min)
            || self.min_redemption.is_some_and(|min| balance < min)
    }
}

/// Why a gift card cannot pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftCardRefusal {
    /// Nothing is left on the card.
    Empty,
    /// Nothing would be paid: a request of zero or less, or an empty eligible basket.
    NotPositive,
    /// More was requested than the card holds.
    AboveBalance,
    /// More was requested than the eligible part of the basket.
    AboveBasket,
    /// Less than the card's minimum redemption value would be spent.
    BelowMinRedemption,
    /// The balance or the payment does not fit an amount once converted.
    OutOfRange,
}

/// Spends `requested` from the card (default: as much as the card and the basket allow).
/// An explicit request that the card or basket cannot cover is refused rather than trimmed, so
/// the till never charges a different amount than it asked for.
///
/// With `exchange` (the card's currency to the basket's) the card pays in the basket's
/// currency: it can pay its balance converted and rounded down, and a payment costs it the
/// payment converted back and rounded up, so the balance never goes below zero. The balance
/// and the card's minimums stay in the card's currency.
pub fn gift_card(
    card: &GiftCard,
    requested: Option<i64>,
    eligible: &Eligible,
    exchange: Option<&ExchangeRate>,
) -> Result<Discount, GiftCardRefusal> {
    if card.balance <= 0 {
        return Err(GiftCardRefusal::Empty);
    }
    let in_basket = |amount: i64| match exchange {
        Some(rate) => rate.convert_down(amount).ok_or(GiftCardRefusal::OutOfRange),
        None => Ok(amount),
    };
    let available = in_basket(card.balance)?;
    let spend = requested.unwrap_or_else(|| available.min(eligible.total));
    if spend <= 0 {
        return Err(GiftCardRefusal::NotPositive);
    }
    if spend > available {
        return Err(GiftCardRefusal::AboveBalance);
    }
    if spend > eligible.total {
        return Err(GiftCardRefusal::AboveBasket);
    }
    let cost = match exchange {
        Some(rate) => rate.cost_of(spend).ok_or(GiftCardRefusal::OutOfRange)?,
        None => spend,
    };
    if card.min_redemption.is_some_and(|min| cost < min) {
        return Err(GiftCardRefusal::BelowMinRedemption);
    }
    let balance_after = card.balance - cost;
    Ok(Discount {
        gift_card_balance_after: Some(balance_after),
        gift_card_voided: card.leaves_void(balance_after),
        conversion: exchange.map(|rate| rate.record(cost, spend)),
        ..with_amount(spend, eligible)
    })
}

/// The basket left to pay once `discount` (worked out with `filter`) is taken off, for the next
/// coupon of the same checkout. The amount comes off the total and each line's share off its
/// line; a discounted line becomes one unit priced at what is left of it, since a share need not
/// divide by the quantity. A discount on the whole basket has no line shares: the lines are cut
/// (largest remainder, in proportion) only as far as they would add up to more than the total.
pub fn remaining(basket: &Basket, filter: &ItemFilter, discount: &Discount) -> Basket {
    let mut left: Vec<i64> = basket.lines.iter().map(BasketLine::total).collect();
    if !discount.lines.is_empty() {
        let eligible = eligible(basket, filter);
        for (line, cut) in eligible.lines.iter().zip(&discount.lines) {
            if let Some(i) = basket.lines.iter().position(|l| std::ptr::eq(l, *line)) {
                left[i] -= cut.amount;
            }
        }
    }
    let total = (basket.total - discount.amount).max(0);
    let itemised: i64 = left.iter().sum();
    let excess = itemised - total;
    if excess > 0 {
        let shares: Vec<i128> = left
            .iter()
            .map(|&t| i128::from(t) * i128::from(excess))
            .collect();
        let cuts = allocate(excess, &shares, i128::from(itemised));
        left.iter_mut().zip(cuts).for_each(|(l, cut)| *l -= cut);
    }
    Basket {
        total,
        currency: basket.currency.clone(),
        lines: basket
            .lines
            .iter()
            .zip(left)
            .map(|(line, left)| repriced(line, left))
            .collect(),
    }
}

fn repriced(line: &BasketLine, left: i64) -> BasketLine {
    if left == line.total() {
        return line.clone();
    }
    BasketLine {
        price: left,
        quantity: 1,
        ..line.clone()
    }
}

/// `amount` (at most the eligible total) spread over the eligible lines in proportion to their
/// totals.
fn with_amount(amount: i64, eligible: &Eligible) -> Discount {
    let shares: Vec<i128> = eligible
        .lines
        .iter()
        .map(|l| i128::from(l.total()) * i128::from(amount))
        .collect();
    Discount {
        amount,
        lines: line_discounts(
            eligible,
            &allocate(amount, &shares, i128::from(eligible.total.max(1))),
        ),
        ..Discount::default()
    }
}

fn line_discounts(eligible: &Eligible, amounts: &[i64]) -> Vec<LineDiscount> {
    eligible
        .lines
        .iter()
        .zip(&eligible.positions)
        .zip(amounts)
        .map(|((line, &position), &amount)| LineDiscount {
            line: u32::try_from(position).unwrap_or(u32::MAX),
            line_id: line.line_id.clone(),
            product_id: line.product_id.clone(),
            amount,
        })
        .collect()
}

/// Splits `target` over lines whose exact shares are `shares[i] / denominator` (largest
/// remainder, Hamilton's method): every line gets its share rounded down, then the units still
/// missing from `target` go one each to the lines with the largest remainders, earlier lines
/// first on ties. Lines get their exact share rounded down or up, never further off, and the
/// result adds up to `target` exactly. `target` must lie between the sum of the rounded-down
/// shares and that sum plus the number of lines with a remainder, which holds when it is the sum
/// of the exact shares rounded either way.
fn allocate(target: i64, shares: &[i128], denominator: i128) -> Vec<i64> {
    let mut amounts: Vec<i64> = shares.iter().map(|s| to_i64(s / denominator)).collect();
    let missing = target - amounts.iter().sum::<i64>();
    let mut by_remainder: Vec<usize> = (0..shares.len()).collect();
    // Stable sort: equal remainders keep line order.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(shares[i] % denominator));
    for &i in by_remainder
        .iter()
        .take(usize::try_from(missing).unwrap_or(0))
    {
        amounts[i] += 1;
    }
    amounts
}

/// `n / d` rounded to the nearest integer, ties to the even one (banker's rounding), so ties do
/// not all round the same way. `n >= 0`, `d > 0`.
pub(super) fn round_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// Results are at most the eligible total, itself an `i64`.
fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: &str, category: Option<&str>, price: i64, qty: u32, sale: bool) -> BasketLine {
        BasketLine {
            product_id: product.into(),
            category: category.map(Into::into),
            price,
            quantity: qty,
            on_sale: sale,
            line_id: None,
        }
    }

    fn basket(total: i64, lines: Vec<BasketLine>) -> Basket {
        Basket {
            total,
            currency: Some("EUR".into()),
            lines,
        }
    }

    const ANY: ItemFilter<'static> = ItemFilter {
        products: &[],
        categories: &[],
        include_sale_items: true,
    };

    fn sum(d: &Discount) -> i64 {
        d.lines.iter().map(|l| l.amount).sum()
    }

    #[test]
    fn discount_types_round_trip_through_their_names() {
        use sea_orm::{ActiveEnum, Iterable};
        // The names rows hold (`pools.discount_type`), the API's and the serialized ones alike.
        let names = ["amount", "percentage", "free_shipping", "gift_card"];
        let types: Vec<DiscountType> = DiscountType::iter().collect();
        assert_eq!(types.len(), names.len());
        for (kind, name) in types.into_iter().zip(names) {
            assert_eq!((kind.to_value(), kind.as_str()), (name.to_string(), name));
            assert_eq!(
                DiscountType::try_from_value(&name.to_string()).unwrap(),
                kind
            );
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        assert!(DiscountType::try_from_value(&"bogo".to_string()).is_err());
    }

    #[test]
    fn half_even_rounds_ties_to_the_even_unit() {
        assert_eq!(round_half_even(1_256_250, 10_000), 126); // 125.625
        assert_eq!(round_half_even(1_255_000, 10_000), 126); // 125.5
        assert_eq!(round_half_even(1_245_000, 10_000), 124); // 124.5
        assert_eq!(round_half_even(1_244_999, 10_000), 124);
        assert_eq!(round_half_even(1_245_001, 10_000), 125);
        assert_eq!(round_half_even(5_000, 10_000), 0); // 0.5
        assert_eq!(round_half_even(15_000, 10_000), 2); // 1.5
    }

    #[test]
    fn percentage_of_an_unrestricted_basket_rounds_half_even() {
        let cases = [(1005, 126), (1004, 126), (996, 124), (1000, 125)];
        for (total, expected) in cases {
            let b = basket(total, vec![]);
            let d = percentage(1250, &eligible(&b, &ANY));
            assert_eq!(d.amount, expected, "12.5% of {total}");
            assert!(d.lines.is_empty());
            assert!(!d.free_shipping);
        }
    }

    #[test]
    fn percentage_line_amounts_add_up_to_the_rounded_total() {
        // Three lines of 333 at 10%: exact shares 33.3 each, total 99.9 -> 100. The missing unit
        // goes to the first line (equal remainders keep line order).
        let b = basket(
            999,
            vec![
                line("a", Some("x"), 333, 1, false),
                line("b", Some("x"), 333, 1, false),
                line("c", Some("x"), 333, 1, false),
            ],
        );
        let cats = ["x".to_string()];
        let filter = ItemFilter {
            categories: &cats,
            ..ANY
        };
        let d = percentage(1000, &eligible(&b, &filter));
        assert_eq!(d.amount, 100);
        let amounts: Vec<i64> = d.lines.iter().map(|l| l.amount).collect();
        assert_eq!(amounts, vec![34, 33, 33]);
    }

    #[test]
    fn the_largest_remainder_gets_the_missing_unit() {
        // 15% of 7 = 1.05, of 13 = 1.95, of 3 = 0.45: total 3.45 -> 3; floors 1+1+0 = 2, the
        // missing unit goes to the 13 line (remainder .95).
        let b = basket(
            23,
            vec![
                line("a", None, 7, 1, false),
                line("b", None, 13, 1, false),
                line("c", None, 3, 1, false),
            ],
        );
        let filter = ItemFilter {
            include_sale_items: false,
            ..ANY
        };
        let d = percentage(1500, &eligible(&b, &filter));
        assert_eq!(d.amount, 3);
        let amounts: Vec<i64> = d.lines.iter().map(|l| l.amount).collect();
        assert_eq!(amounts, vec![1, 2, 0]);
    }

    #[test]
    fn line_amounts_always_add_up_exactly() {
        let prices = [1, 7, 19, 333, 999, 1005, 12_345, 99_999];
        for bps in [1, 333, 1250, 3333, 5000, 6667, 9999, 10_000] {
            for n in 1..prices.len() {
                let lines: Vec<BasketLine> = prices[..n]
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| line(&format!("p{i}"), None, p, (i as u32 % 3) + 1, false))
                    .collect();
                let total = lines.iter().map(BasketLine::total).sum();
                let b = basket(total, lines);
                let filter = ItemFilter {
                    include_sale_items: false,
                    ..ANY
                };
                let e = eligible(&b, &filter);
                let d = percentage(bps, &e);
                assert_eq!(sum(&d), d.amount, "{bps} bps over {n} lines");
                for (l, ld) in e.lines.iter().zip(&d.lines) {
                    let exact = l.total() as i128 * bps as i128;
                    let floor = (exact / 10_000) as i64;
                    assert!(ld.amount == floor || ld.amount == floor + 1);
                }
                let fixed = fixed_amount(total / 3 + 1, &e);
                assert_eq!(sum(&fixed), fixed.amount);
            }
        }
    }

    #[test]
    fn percentage_is_never_more_than_the_eligible_total() {
        let b = basket(500, vec![]);
        assert_eq!(percentage(10_000, &eligible(&b, &ANY)).amount, 500);
        assert_eq!(percentage(25_000, &eligible(&b, &ANY)).amount, 500);
    }

    #[test]
    fn fixed_amount_is_capped_at_the_eligible_total() {
        let b = basket(
            3000,
            vec![
                line("shoe", Some("shoes"), 1000, 1, false),
                line("sock", Some("socks"), 500, 2, false),
                line("hat", Some("hats"), 1000, 1, false),
            ],
        );
        let products = ["shoe".to_string()];
        let filter = ItemFilter {
            products: &products,
            ..ANY
        };
        let d = fixed_amount(1500, &eligible(&b, &filter));
        assert_eq!(d.amount, 1000);
        assert_eq!(
            d.lines,
            vec![LineDiscount {
                line: 0,
                line_id: None,
                product_id: "shoe".into(),
                amount: 1000
            }]
        );
        // Unrestricted: the whole basket, no lines.
        let d = fixed_amount(5000, &eligible(&b, &ANY));
        assert_eq!((d.amount, d.lines.len()), (3000, 0));
        let d = fixed_amount(700, &eligible(&b, &ANY));
        assert_eq!(d.amount, 700);
    }

    #[test]
    fn fixed_amount_splits_over_lines_in_proportion() {
        let b = basket(
            3000,
            vec![
                line("a", None, 1000, 1, false),
                line("b", None, 500, 4, false),
            ],
        );
        let filter = ItemFilter {
            include_sale_items: false,
            ..ANY
        };
        let d = fixed_amount(1000, &eligible(&b, &filter));
        let amounts: Vec<i64> = d.lines.iter().map(|l| l.amount).collect();
        assert_eq!(amounts, vec![333, 667]);
    }

    #[test]
    fn eligibility_follows_products_categories_and_sale_items() {
        let b = basket(
            10_000,
            vec![
                line("shoe", Some("shoes"), 1000, 1, false),
                line("boot", Some("shoes"), 2000, 1, true),
                line("sock", Some("socks"), 300, 3, false),
                line("hat", None, 700, 1, false),
            ],
        );
        let ids = |e: &Eligible| -> Vec<String> {
            e.lines.iter().map(|l| l.product_id.clone()).collect()
        };
        let shoes = ["shoes".to_string()];
        let sock = ["sock".to_string()];

        let e = eligible(&b, &ANY);
        assert_eq!((e.total, e.lines.len()), (10_000, 0));

        let by_cat = ItemFilter {
            categories: &shoes,
            ..ANY
        };
        let e = eligible(&b, &by_cat);
        assert_eq!(
            (ids(&e), e.total),
            (vec!["shoe".into(), "boot".into()], 3000)
        );

        let no_sale = ItemFilter {
            include_sale_items: false,
            ..by_cat
        };
        let e = eligible(&b, &no_sale);
        assert_eq!((ids(&e), e.total), (vec!["shoe".into()], 1000));

        let both = ItemFilter {
            products: &sock,
            ..by_cat
        };
        let e = eligible(&b, &both);
        assert_eq!(
            (ids(&e), e.total),
            (vec!["shoe".into(), "boot".into(), "sock".into()], 3900)
        );

        // Only the sale exclusion: every non-sale line.
        let e = eligible(
            &b,
            &ItemFilter {
                include_sale_items: false,
                ..ANY
            },
        );
        assert_eq!(e.total, 2600);

        let none = ["gloves".to_string()];
        let e = eligible(
            &b,
            &ItemFilter {
                products: &none,
                ..ANY
            },
        );
        assert_eq!((e.total, e.lines.len()), (0, 0));
        // A restricted pool cannot find items in a basket without lines.
        assert!(eligible(&basket(500, vec![]), &by_cat).lines.is_empty());
    }

    #[test]
    fn free_shipping_takes_nothing_off_and_sets_the_flag() {
        let d = free_shipping();
        assert_eq!((d.amount, d.free_shipping), (0, true));
    }

    fn card(balance: i64, min_value: Option<i64>, min_redemption: Option<i64>) -> GiftCard {
        GiftCard {
            balance,
            min_value,
            min_redemption,
        }
    }

    #[test]
    fn gift_card_left_under_its_minimum_value_is_voided() {
        // Antavo: a $100 card with a $1 minimum value pays $99.50; $0.50 is left, under $1.
        let b = basket(9950, vec![]);
        let d = gift_card(
            &card(10_000, Some(100), None),
            None,
            &eligible(&b, &ANY),
            None,
        )
        .unwrap();
        assert_eq!(d.amount, 9950);
        assert_eq!(d.gift_card_balance_after, Some(50));
        assert!(d.gift_card_voided);
        // Paying $99 leaves exactly $1: still valid.
        let b = basket(9900, vec![]);
        let d = gift_card(
            &card(10_000, Some(100), None),
            None,
            &eligible(&b, &ANY),
            None,
        )
        .unwrap();
        assert_eq!(
            (d.gift_card_balance_after, d.gift_card_voided),
            (Some(100), false)
        );
    }

    #[test]
    fn gift_card_below_its_minimum_redemption_is_refused() {
        // Antavo: redeeming $10 of a $100 card whose minimum redemption value is $15 fails.
        let b = basket(5000, vec![]);
        let e = eligible(&b, &ANY);
        let c = card(10_000, None, Some(1500));
        assert_eq!(
            gift_card(&c, Some(1000), &e, None),
            Err(GiftCardRefusal::BelowMinRedemption)
        );
        let d = gift_card(&c, Some(1500), &e, None).unwrap();
        assert_eq!((d.amount, d.gift_card_balance_after), (1500, Some(8500)));
        // By default the whole basket is paid when the card covers it.
        assert_eq!(gift_card(&c, None, &e, None).unwrap().amount, 5000);
        // A small basket cannot reach the minimum redemption.
        let small = basket(1000, vec![]);
        assert_eq!(
            gift_card(&c, None, &eligible(&small, &ANY), None),
            Err(GiftCardRefusal::BelowMinRedemption)
        );
    }

    #[test]
    fn gift_card_spends_at_most_its_balance_and_the_basket() {
        let b = basket(5000, vec![]);
        let e = eligible(&b, &ANY);
        let c = card(3000, None, None);
        let d = gift_card(&c, None, &e, None).unwrap();
        assert_eq!((d.amount, d.gift_card_balance_after), (3000, Some(0)));
        assert!(!d.gift_card_voided);
        assert_eq!(
            gift_card(&c, Some(3001), &e, None),
            Err(GiftCardRefusal::AboveBalance)
        );
        let big = card(9000, None, None);
        assert_eq!(
            gift_card(&big, Some(6000), &e, None),
            Err(GiftCardRefusal::AboveBasket)
        );
        assert_eq!(
            gift_card(&big, Some(0), &e, None),
            Err(GiftCardRefusal::NotPositive)
        );
        assert_eq!(
            gift_card(&card(0, None, None), None, &e, None),
            Err(GiftCardRefusal::Empty)
        );
    }

    #[test]
    fn basket_validation_names_the_bad_field() {
        let ok = basket(1000, vec![line("a", None, 300, 2, false)]);
        assert_eq!(ok.validate(), Ok(()));
        let field = |b: Basket| b.validate().unwrap_err().field;
        assert_eq!(field(basket(-1, vec![])), "basket.total");
        let without_currency = Basket {
            currency: None,
            ..ok.clone()
        };
        assert_eq!(without_currency.validate(), Ok(()));
        assert_eq!(
            field(Basket {
                currency: Some("XYZ".into()),
                ..ok.clone()
            }),
            "basket.currency"
        );
        assert_eq!(
            field(Basket {
                currency: Some("eur".into()),
                ..ok.clone()
            }),
            "basket.currency"
        );
        assert_eq!(
            field(basket(1000, vec![line("a", None, -1, 1, false)])),
            "basket.lines"
        );
        assert_eq!(
            field(basket(1000, vec![line("a", None, 1, 0, false)])),
            "basket.lines"
        );
        assert_eq!(
            field(basket(1000, vec![line(" ", None, 1, 1, false)])),
            "basket.lines"
        );
        assert_eq!(
            field(basket(500, vec![line("a", None, 300, 2, false)])),
            "basket.lines"
        );
        assert_eq!(
            field(basket(i64::MAX, vec![line("a", None, i64::MAX, 2, false)])),
            "basket.lines"
        );
    }

    #[test]
    fn the_basket_left_loses_line_shares_from_their_lines() {
        let b = basket(
            5_000,
            vec![
                line("shoe", Some("shoes"), 1_000, 3, false),
                line("hat", Some("hats"), 1_500, 1, false),
            ],
        );
        let shoes = ItemFilter {
            categories: &["shoes".to_string()],
            ..ANY
        };
        let d = percentage(1_000, &eligible(&b, &shoes));
        assert_eq!(d.amount, 300);
        let left = remaining(&b, &shoes, &d);
        assert_eq!(left.total, 4_700);
        assert_eq!((left.lines[0].price, left.lines[0].quantity), (2_700, 1));
        assert_eq!(left.lines[1], b.lines[1]);
        assert_eq!(left.validate(), Ok(()));
        // A second 10% on shoes works on what is left of them.
        assert_eq!(percentage(1_000, &eligible(&left, &shoes)).amount, 270);
    }

    #[test]
    fn a_whole_basket_discount_trims_the_lines_only_past_the_total() {
        let b = basket(
            5_000,
            vec![
                line("a", None, 3_000, 1, false),
                line("b", None, 1_000, 1, false),
            ],
        );
        // €10 off a €50 bill whose lines hold €40: the €10 of shipping absorbs it.
        let left = remaining(&b, &ANY, &fixed_amount(1_000, &eligible(&b, &ANY)));
        assert_eq!(left.total, 4_000);
        assert_eq!(left.lines, b.lines);
        // €20 off: the lines lose the €10 they exceed the total by, 3 to 1.
        let left = remaining(&b, &ANY, &fixed_amount(2_000, &eligible(&b, &ANY)));
        assert_eq!(left.total, 3_000);
        let prices: Vec<i64> = left.lines.iter().map(|l| l.total()).collect();
        assert_eq!(prices, [2_250, 750]);
        assert_eq!(left.validate(), Ok(()));
        // Free shipping leaves the basket as it was.
        assert_eq!(remaining(&b, &ANY, &free_shipping()), b);
    }
}
