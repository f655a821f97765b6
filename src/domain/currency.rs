//! Currencies, exchange rates and converting amounts between currencies (Capillary: "the coupon
//! value will be converted to the store default currency at the time of transaction").
//!
//! Amounts are integer minor units of their currency; a rate is an exact decimal (parsed from a
//! string, never a float) saying how many major units of `to` one major unit of `from` buys.
//! Conversions are exact rational arithmetic on 128-bit integers, rounded once at the end:
//! half-even for a coupon's value and for bill limits, and, for gift cards, down for what a
//! card can pay and up for what a payment costs the card, so a card never pays out more than
//! its balance and cannot be drained in payments too small to cost anything. Only the rate the
//! org gave for a direction is used: a missing A->B rate is never made up from 1/(B->A), since
//! the two directions of a real rate table differ by the spread.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, Utc};
use poem_openapi::{
    NewType, Object,
    types::{ParseError, ParseFromJSON, ParseResult},
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Invalid, discount::round_half_even};

/// ISO 4217 codes the service accepts, with the decimals of their minor unit. Funds, precious
/// metals and testing codes are left out: no price is quoted in them.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// An ISO 4217 currency from the closed list and its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    pub code: &'static str,
    /// Decimals of the minor unit: 2 for EUR (cents), 0 for JPY, 3 for KWD (fils).
    pub decimals: u32,
}

impl Currency {
    /// The currency `code` names (upper case, as ISO writes it); `field` is named when it is
    /// not one the service knows.
    pub fn parse(code: &str, field: &'static str) -> Result<Currency, Invalid> {
        CURRENCIES
            .binary_search_by(|(c, _)| c.cmp(&code))
            .map(|i| Currency {
                code: CURRENCIES[i].0,
                decimals: CURRENCIES[i].1,
            })
            .map_err(|_| Invalid {
                field,
                reason: format!(
                    "`{}` is not an ISO 4217 currency code such as EUR",
                    code.escape_default()
                ),
            })
    }
}

/// The largest rate accepted: a million units of one currency for one of another covers the
/// widest real pair (a dinar in rials) with room; more is a typo.
const MAX_RATE: i64 = 1_000_000;
/// Decimal places a rate may carry; more is noise no till price can show.
const MAX_RATE_DECIMALS: u32 = 12;
/// The longest rate text read: enough for every accepted rate with some leading zeros.
const MAX_RATE_CHARS: usize = 40;

/// How many major units of one currency one major unit of another buys: an exact decimal,
/// positive, at most [`MAX_RATE`], with at most [`MAX_RATE_DECIMALS`] decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(Decimal);

impl Rate {
    /// A rate from its decimal string, e.g. `1.0837`. Signs, exponents and grouping are refused.
    pub fn parse(s: &str) -> Result<Rate, Invalid> {
        let refuse = |reason: String| Invalid {
            field: "rate",
            reason,
        };
        let plain = !s.is_empty()
            && s.len() <= MAX_RATE_CHARS
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().filter(|&b| b == b'.').count() <= 1
            && !s.starts_with('.')
            && !s.ends_with('.');
        let decimal = plain
            .then(|| Decimal::from_str_exact(s).ok())
            .flatten()
            .ok_or_else(|| {
                refuse(format!(
                    "`{}` is not a decimal number such as 1.0837",
                    s.escape_default()
                ))
            })?
            .normalize();
        if decimal.is_zero() {
            return Err(refuse("must be more than 0".into()));
        }
        if decimal > Decimal::from(MAX_RATE) {
            return Err(refuse(format!("must be at most {MAX_RATE}")));
        }
        if decimal.scale() > MAX_RATE_DECIMALS {
            return Err(refuse(format!(
                "at most {MAX_RATE_DECIMALS} decimal places"
            )));
        }
        Ok(Rate(decimal))
    }

    /// The rate as a decimal string without trailing zeros.
    pub fn as_string(&self) -> String {
        self.0.to_string()
    }
}

/// The rate in force for one pair of currencies from `effective_at` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeRate {
    pub from: Currency,
    pub to: Currency,
    pub rate: Rate,
    pub effective_at: DateTime<Utc>,
}

/// How a coupon's value, in its own currency, became an amount in the basket's: recorded on
/// the redemption, so a later rate never changes it.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The coupon's currency.
    pub from: String,
    /// The basket's currency.
    pub to: String,
    /// Units of `to` one unit of `from` bought: the org's rate in force at the transaction.
    pub rate: String,
    /// When that rate took effect.
    pub effective_at: DateTime<Utc>,
    /// Minor units of `from`: an amount coupon's value, or what a gift card paid off its balance.
    pub value: i64,
    /// Minor units of `to`: the value converted (half-even), or what the gift card paid.
    pub converted: i64,
}

/// A decimal number written as a JSON string, e.g. `"1.0837"`. A JSON number is refused: it
/// would be read through a float, which may not hold the digits that were sent.
#[derive(NewType, Debug, Clone, PartialEq, Eq)]
#[oai(from_json = false, from_parameter = false, from_multipart = false)]
pub struct DecimalText(pub String);

impl ParseFromJSON for DecimalText {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => Ok(DecimalText(s)),
            _ => Err(ParseError::custom(
                "a decimal number written as a string, such as \"1.0837\"",
            )),
        }
    }
}

/// A rate as an org gives it.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
pub struct RateInput {
    /// The currency converted from (ISO 4217, e.g. `EUR`).
    #[oai(validator(max_length = 16))]
    pub from: String,
    /// The currency converted to.
    #[oai(validator(max_length = 16))]
    pub to: String,
    /// Units of `to` one unit of `from` buys, as a decimal string such as `"1.0837"` (a string,
    /// never a JSON number: no floats for money); more than 0, at most 1000000, at most 12
    /// decimals.
    pub rate: DecimalText,
    /// When the rate takes effect (default: now); it stays in force until a later one does.
    pub effective_at: Option<DateTime<Utc>>,
}

impl RateInput {
    /// The rate, refusing unknown currencies, a pair of one currency, a rate out of range and a
    /// date outside the years 1970 to 9999; `now` is the default effective time.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<ExchangeRate, Invalid> {
        let from = Currency::parse(&self.from, "from")?;
        let to = Currency::parse(&self.to, "to")?;
        if from == to {
            return Err(Invalid {
                field: "to",
                reason: "must differ from `from`".into(),
            });
        }
        let rate = Rate::parse(&self.rate.0)?;
        let effective_at = self.effective_at.unwrap_or(now);
        if !(1970..=9999).contains(&effective_at.year()) {
            return Err(Invalid {
                field: "effective_at",
                reason: "must be between the years 1970 and 9999".into(),
            });
        }
        Ok(ExchangeRate {
            from,
            to,
            rate,
            effective_at,
        })
    }
}

/// Which way a conversion rounds the last minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounding {
    HalfEven,
    Down,
    Up,
}

impl ExchangeRate {
    /// `amount` minor units of `from` in minor units of `to`, rounded half-even. `None` when
    /// the result does not fit an amount.
    pub fn convert(&self, amount: i64) -> Option<i64> {
        let (n, d) = self.forward();
        apply(amount, n, d, Rounding::HalfEven)
    }

    /// [`ExchangeRate::convert`] rounded down: what a gift card of `amount` can pay in `to`.
    pub fn convert_down(&self, amount: i64) -> Option<i64> {
        let (n, d) = self.forward();
        apply(amount, n, d, Rounding::Down)
    }

    /// `amount` minor units of `to` back in minor units of `from`, rounded up: what paying
    /// `amount` costs a gift card. A payment of at most [`ExchangeRate::convert_down`] of a
    /// balance never costs more than the balance.
    pub fn cost_of(&self, amount: i64) -> Option<i64> {
        let (n, d) = self.forward();
        apply(amount, d, n, Rounding::Up)
    }

    /// The record of converting `value` (in `from`) to `converted` (in `to`) at this rate.
    pub fn record(&self, value: i64, converted: i64) -> Conversion {
        Conversion {
            from: self.from.code.to_string(),
            to: self.to.code.to_string(),
            rate: self.rate.as_string(),
            effective_at: self.effective_at,
            value,
            converted,
        }
    }

    /// Minor units of `to` per minor unit of `from`, as a fraction: the rate's mantissa over
    /// its power of ten, shifted by the difference in decimals.
    fn forward(&self) -> (i128, i128) {
        let shift = |decimals: u32| 10i128.pow(decimals);
        let mantissa = self.rate.0.mantissa();
        let scale = shift(self.rate.0.scale());
        match self.to.decimals.cmp(&self.from.decimals) {
            Ordering::Greater => (
                mantissa * shift(self.to.decimals - self.from.decimals),
                scale,
            ),
            Ordering::Less => (
                mantissa,
                scale * shift(self.from.decimals - self.to.decimals),
            ),
            Ordering::Equal => (mantissa, scale),
        }
    }
}

/// `amount * n / d`, exactly, then rounded. Amounts are never negative.
fn apply(amount: i64, n: i128, d: i128, rounding: Rounding) -> Option<i64> {
    let product = i128::from(amount.max(0)).checked_mul(n)?;
    let rounded = match rounding {
        Rounding::HalfEven => round_half_even(product, d),
        Rounding::Down => product / d,
        Rounding::Up => product / d + i128::from(product % d != 0),
    };
    i64::try_from(rounded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code, "currency").unwrap()
    }

    fn rate(from: &str, to: &str, r: &str) -> ExchangeRate {
        ExchangeRate {
            from: currency(from),
            to: currency(to),
            rate: Rate::parse(r).unwrap(),
            effective_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_list_is_sorted_so_lookups_find_every_code() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        for (code, decimals) in CURRENCIES {
            assert_eq!(currency(code).decimals, *decimals);
        }
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(currency("EUR").decimals, 2);
        assert_eq!(currency("JPY").decimals, 0);
        assert_eq!(currency("KWD").decimals, 3);
        assert_eq!(currency("BHD").decimals, 3);
        for bad in ["eur", "EURO", "XXX", "", "E\0R"] {
            assert_eq!(
                Currency::parse(bad, "basket.currency").unwrap_err().field,
                "basket.currency"
            );
        }
    }

    #[test]
    fn rates_are_exact_positive_decimals_in_range() {
        assert_eq!(Rate::parse("1.0837").unwrap().as_string(), "1.0837");
        assert_eq!(Rate::parse("1.50000").unwrap().as_string(), "1.5");
        assert_eq!(Rate::parse("162").unwrap().as_string(), "162");
        assert_eq!(
            Rate::parse("0.000000000001").unwrap().as_string(),
            "0.000000000001"
        );
        assert_eq!(Rate::parse("1000000").unwrap().as_string(), "1000000");
        for bad in [
            "0",
            "0.000",
            "-1.2",
            "+1.2",
            "1e3",
            "1,5",
            ".5",
            "5.",
            "1.2.3",
            "",
            " 1",
            "abc",
            "1000000.01",
            "0.0000000000001",
            "99999999999999999999999999999999999",
        ] {
            assert_eq!(Rate::parse(bad).unwrap_err().field, "rate", "{bad}");
        }
    }

    #[test]
    fn rate_inputs_name_the_field_at_fault() {
        let now = DateTime::UNIX_EPOCH + chrono::Days::new(20_000);
        let input = |from: &str, to: &str, rate: &str| RateInput {
            from: from.into(),
            to: to.into(),
            rate: DecimalText(rate.into()),
            effective_at: None,
        };
        let ok = input("EUR", "USD", "1.0837").validate(now).unwrap();
        assert_eq!(
            (ok.from.code, ok.to.code, ok.effective_at),
            ("EUR", "USD", now)
        );
        assert_eq!(ok.rate.as_string(), "1.0837");
        let field = |i: RateInput| i.validate(now).unwrap_err().field;
        assert_eq!(field(input("EUR", "EUR", "1")), "to");
        assert_eq!(field(input("XXX", "EUR", "1")), "from");
        assert_eq!(field(input("EUR", "usd", "1")), "to");
        assert_eq!(field(input("EUR", "USD", "-1")), "rate");
        assert_eq!(field(input("EUR", "USD", "0")), "rate");
        let ancient = RateInput {
            effective_at: Some(DateTime::UNIX_EPOCH - chrono::Days::new(1)),
            ..input("EUR", "USD", "1")
        };
        assert_eq!(field(ancient), "effective_at");
    }

    #[test]
    fn conversion_rounds_half_even_to_the_minor_unit() {
        let eur_usd = rate("EUR", "USD", "1.085");
        assert_eq!(eur_usd.convert(1000), Some(1085));
        assert_eq!(eur_usd.convert(10), Some(11)); // 10.85
        assert_eq!(eur_usd.convert(100), Some(108)); // 108.5, tie to even
        assert_eq!(eur_usd.convert(300), Some(326)); // 325.5, tie to even
        assert_eq!(eur_usd.convert(0), Some(0));
        let half = rate("EUR", "GBP", "0.5");
        assert_eq!(half.convert(1), Some(0)); // 0.5
        assert_eq!(half.convert(3), Some(2)); // 1.5
        assert_eq!(half.convert(5), Some(2)); // 2.5
    }

    #[test]
    fn conversion_respects_each_currencys_decimals() {
        // 10.00 EUR at 162.5 JPY a euro: 1625 yen, no minor unit below the yen.
        assert_eq!(rate("EUR", "JPY", "162.5").convert(1000), Some(1625));
        // 0.01 EUR = 1.625 yen -> 2.
        assert_eq!(rate("EUR", "JPY", "162.5").convert(1), Some(2));
        // 1000 yen at 0.00615 EUR a yen: 6.15 EUR = 615 cents.
        assert_eq!(rate("JPY", "EUR", "0.00615").convert(1000), Some(615));
        // 10.00 EUR at 0.3325 KWD: 3.325 KWD = 3325 fils.
        assert_eq!(rate("EUR", "KWD", "0.3325").convert(1000), Some(3325));
        // 1.234 KWD at 3.01 EUR: 3.71434 EUR -> 371 cents.
        assert_eq!(rate("KWD", "EUR", "3.01").convert(1234), Some(371));
        // 1000 yen at 0.00205 KWD: 2.05 KWD = 2050 fils.
        assert_eq!(rate("JPY", "KWD", "0.00205").convert(1000), Some(2050));
        // Ties between two 3-decimal currencies: 0.5 fils -> 0 (even), 1.5 fils -> 2.
        assert_eq!(rate("BHD", "KWD", "0.1").convert(5), Some(0));
        assert_eq!(rate("BHD", "KWD", "0.1").convert(15), Some(2));
    }

    #[test]
    fn gift_card_payments_never_cost_more_than_the_balance() {
        // A yen card paying in euros: 1001 yen at 0.0062 is 6.2062 EUR; it can pay 620 cents,
        // which costs ceil(620 / 0.62) = 1000 yen.
        let jpy_eur = rate("JPY", "EUR", "0.0062");
        assert_eq!(jpy_eur.convert_down(1001), Some(620));
        assert_eq!(jpy_eur.cost_of(620), Some(1000));
        // A euro card paying in fils: each fils costs at least a cent, never nothing.
        let eur_kwd = rate("EUR", "KWD", "0.3325");
        assert_eq!(eur_kwd.cost_of(1), Some(1));
        assert_eq!(eur_kwd.cost_of(3325), Some(1000));
        for (r, balances) in [
            (rate("EUR", "USD", "1.0837"), [1, 7, 999, 1000, 123_457]),
            (rate("EUR", "JPY", "162.37"), [1, 7, 999, 1000, 123_457]),
            (rate("JPY", "EUR", "0.00617"), [1, 7, 999, 1000, 123_457]),
            (rate("KWD", "EUR", "3.0123"), [1, 7, 999, 1000, 123_457]),
            (rate("EUR", "KWD", "0.3319"), [1, 7, 999, 1000, 123_457]),
        ] {
            for balance in balances {
                let can_pay = r.convert_down(balance).unwrap();
                for paid in [0, 1.min(can_pay), can_pay / 2, can_pay] {
                    let cost = r.cost_of(paid).unwrap();
                    assert!(
                        cost <= balance,
                        "{r:?}: paying {paid} of {balance} costs {cost}"
                    );
                    assert!(paid == 0 || cost > 0, "{r:?}: paying {paid} costs nothing");
                }
            }
        }
    }

    #[test]
    fn amounts_that_do_not_fit_are_refused_not_wrapped() {
        let r = rate("EUR", "JPY", "1000000");
        assert_eq!(r.convert(i64::MAX), None);
        assert_eq!(rate("JPY", "KWD", "1000000").convert(i64::MAX / 2), None);
        assert!(r.cost_of(i64::MAX).is_some());
    }
}
