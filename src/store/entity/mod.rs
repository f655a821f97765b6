//! sea-orm entities, one module per table. They live in the main crate so their columns can
//! name domain types (enums stored as text or numbers, rule sets stored as JSON).

pub mod prelude;

pub mod api_keys;
pub mod coupon_events;
pub mod coupons;
pub mod customers;
pub mod exchange_rates;
pub mod groups;
pub mod idempotency_keys;
pub mod import_issues;
pub mod imports;
pub mod job_files;
pub mod market_exchanges;
pub mod market_products;
pub mod orgs;
pub mod outbox;
pub mod points_balances;
pub mod points_ledger;
pub mod pool_allowed_customers;
pub mod pool_limit_alerts;
pub mod pool_messages;
pub mod pool_passes;
pub mod pool_reminders;
pub mod pools;
pub mod redemptions;
pub mod reminder_deliveries;
pub mod scheduler_runs;
pub mod stores;
pub mod webhooks;

#[cfg(test)]
mod tests {
    //! JSON columns as earlier versions wrote them still read as their types, through the
    //! same conversion a query result takes.

    use sea_orm::{Value, sea_query::ValueType};
    use serde_json::json;

    use crate::domain::{
        access::GroupIds,
        api_key::{Scope, Scopes},
        discount::Discount,
        expiry::{ExpiryMode, ExpiryRules},
        issuance::IssuanceRules,
        org::PocEmails,
        pool::{CodeOptions, Reminders},
        redemption::RedemptionRules,
        remote::StoredRemote,
        wallet::PassTemplate,
        webhook::{WebhookEvent, WebhookEvents},
    };

    fn read<T: ValueType>(stored: serde_json::Value) -> T {
        T::try_from(Value::Json(Some(Box::new(stored)))).expect("stored JSON reads")
    }

    /// What a value is written as.
    fn written<T: Into<Value>>(value: T) -> serde_json::Value {
        match value.into() {
            Value::Json(Some(json)) => *json,
            other => panic!("not JSON: {other:?}"),
        }
    }

    #[test]
    fn pool_rule_sets_read_from_their_stored_json() {
        let codes: CodeOptions = read(json!({
            "exclude_chars": ["O", "0"], "exclude_phrases": [], "prefix_enabled": null,
            "prefix": "SPR-", "use_org_prefix": false, "suffix_enabled": null, "suffix": null,
            "use_org_suffix": false, "check_char": true, "case_insensitive": false,
            "sample_code": null}));
        assert_eq!(
            (codes.prefix.as_deref(), codes.check_char),
            (Some("SPR-"), true)
        );
        assert_eq!(read::<CodeOptions>(json!({})), CodeOptions::default());

        let issuance: IssuanceRules = read(json!({"max_per_customer": 1, "max_total": 500}));
        assert_eq!(
            (issuance.max_per_customer, issuance.max_total),
            (Some(1), Some(500))
        );
        assert_eq!(read::<IssuanceRules>(json!({})), IssuanceRules::default());

        let redemption: RedemptionRules = read(json!({"allow_anyone": true, "max_per_code": 3,
            "days_of_week": ["mon"], "hours": [9, 10]}));
        assert_eq!(
            (redemption.allow_anyone, redemption.max_per_code),
            (true, Some(3))
        );
        assert!(
            redemption.include_sale_items,
            "an absent field keeps its default"
        );
        assert_eq!(
            read::<RedemptionRules>(json!({})),
            RedemptionRules::default()
        );

        let expiry: ExpiryRules = read(json!({"mode": "days_from_issual", "days": 30}));
        assert_eq!(
            (expiry.mode, expiry.days),
            (ExpiryMode::DaysFromIssual, Some(30))
        );

        let reminders: Reminders =
            read(json!([{"days_before": 3, "channel": "email", "time": "09:00"}]));
        assert_eq!(
            (reminders[0].days_before, reminders[0].time.as_str()),
            (3, "09:00")
        );
        assert!(read::<Reminders>(json!([])).is_empty());

        // Saved before remote sources had an `api_key`.
        let remote: StoredRemote = read(json!({"url": "https://codes.example.com",
            "secret": "whsec_c2VjcmV0", "timeout_ms": 2000, "retries": 2}));
        assert_eq!((remote.api_key, remote.retries), (None, 2));

        // Written as before: the same documents serde made of them.
        assert_eq!(
            written(issuance.clone()),
            serde_json::to_value(&issuance).unwrap()
        );
        assert_eq!(
            written(reminders.clone()),
            serde_json::to_value(&reminders.0).unwrap()
        );
    }

    #[test]
    fn lists_of_names_skip_what_they_do_not_know() {
        let scopes: Scopes = read(json!(["pos", "workflow", "a_later_scope"]));
        assert_eq!(scopes.0, [Scope::Pos, Scope::Workflow]);
        assert_eq!(read::<Scopes>(json!({"not": "a list"})), Scopes::default());
        assert_eq!(written(scopes), json!(["pos", "workflow"]));

        let events: WebhookEvents = read(json!(["coupon.issued", "coupon.a_later_event"]));
        assert_eq!(events.0, [WebhookEvent::CouponIssued]);
        assert_eq!(written(events), json!(["coupon.issued"]));

        let groups: GroupIds = read(json!([1, 2, "x"]));
        assert_eq!(groups.0, [1, 2]);
        assert_eq!(read::<GroupIds>(json!("oops")), GroupIds::default());
        assert_eq!(written(groups), json!([1, 2]));

        let emails: PocEmails = read(json!(["ops@example.com"]));
        assert_eq!(emails.0, ["ops@example.com"]);
        assert_eq!(written(emails), json!(["ops@example.com"]));
    }

    #[test]
    fn redemption_details_and_pass_templates_read_from_their_stored_json() {
        let detail: Discount = read(json!({"amount": 500, "free_shipping": false,
            "lines": [{"product_id": "sku-1", "amount": 500}], "gift_card_balance_after": null,
            "gift_card_voided": false}));
        assert_eq!((detail.amount, detail.lines.len()), (500, 1));

        // An empty template is what a logo upload saved before any template.
        assert_eq!(read::<PassTemplate>(json!({})), PassTemplate::default());
        let template: PassTemplate = read(json!({"title": "Spring", "barcode_format": "QR"}));
        assert_eq!(template.title.as_deref(), Some("Spring"));
    }
}
