//! The workflow actions' inputs and their one answer shape, which is also what a replay of a
//! step returns.

use poem_openapi::{Enum, Object};

use crate::{
    domain::customer::CustomerRef,
    service::{Error, coupons::IssuedCoupon},
};

/// Issue coupons of a claimed pool to a customer.
#[derive(Object)]
pub struct IssueCouponInput {
    pub pool_id: i64,
    /// The customer, by exactly one of external_id, email, mobile or user_id.
    pub customer: CustomerRef,
    /// How many coupons to issue (1 to 50, default 1); issuing stops at the first rule that
    /// says no, keeping what was issued.
    #[oai(validator(minimum(value = "1"), maximum(value = "50")))]
    pub count: Option<u32>,
}

/// Revoke the customer's active coupons of a claimed pool.
#[derive(Object)]
pub struct RevokeCouponsInput {
    pub pool_id: i64,
    pub customer: CustomerRef,
}

/// How a coupon is sent again.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ResendChannel {
    Email,
    Sms,
}

/// Send the customer's active coupon of a claimed pool again.
#[derive(Object)]
pub struct ResendCouponInput {
    pub pool_id: i64,
    pub customer: CustomerRef,
    /// Defaults to SMS when the customer has a mobile number, else email.
    pub channel: Option<ResendChannel>,
}

/// Add points to (or, negative, take points from) the customer's balance.
#[derive(Object)]
pub struct CreditPointsInput {
    pub customer: CustomerRef,
    /// Signed, not zero; the balance never goes below zero.
    #[oai(validator(minimum(value = "-1000000000000"), maximum(value = "1000000000000")))]
    pub points: i64,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub reason: String,
}

/// What an action did.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ActionStatus {
    Issued,
    Revoked,
    Resent,
    Credited,
    /// A rule said no (its code is in `reason`); the workflow should go on.
    Skipped,
    /// The request cannot be carried out as sent (HTTP 4xx).
    Failed,
}

/// Why an action was skipped or failed, or why issuing stopped early.
#[derive(Object, Debug, Clone)]
pub struct ActionReason {
    /// Stable machine-readable code: customer_limit, pool_exhausted, pool_not_claimed, ...
    pub code: String,
    pub detail: String,
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

/// The points entry a credit made.
#[derive(Object, Debug, Clone)]
pub struct PointsCredit {
    pub entry_id: i64,
    pub points: i64,
    /// The balance after the entry.
    pub balance: i64,
}

/// The answer of every action.
#[derive(Object)]
pub struct ActionResult {
    pub status: ActionStatus,
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<ActionReason>,
    /// The coupons issued, revoked or resent.
    #[oai(default)]
    pub coupons: Vec<IssuedCoupon>,
    #[oai(skip_serializing_if_is_none)]
    pub points: Option<PointsCredit>,
}

impl ActionResult {
    pub fn done(status: ActionStatus, coupons: Vec<IssuedCoupon>) -> ActionResult {
        ActionResult {
            status,
            reason: None,
            coupons,
            points: None,
        }
    }

    /// A result for an error: `skipped` for a rule's refusal, else `failed`.
    pub fn from_error(status: ActionStatus, e: &Error) -> ActionResult {
        ActionResult {
            status,
            reason: Some(ActionReason {
                code: e.code().to_string(),
                detail: e.public_detail(),
                field: e.field().map(str::to_string),
            }),
            coupons: Vec::new(),
            points: None,
        }
    }
}
