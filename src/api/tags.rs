//! The OpenAPI tags grouping the operations.

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// The caller's tenant.
    Org,
    /// Scoped API keys.
    ApiKeys,
    /// Access groups: which pools a group-bound admin key manages.
    Groups,
    /// Coupon pools and their codes.
    Pools,
    /// Issuing coupons to customers.
    Issuance,
    /// Customers and their coupons.
    Customers,
    /// Uploaded files and their issues.
    Imports,
    /// Background jobs and their progress.
    Jobs,
    /// Signed event deliveries to subscribers' URLs.
    Webhooks,
    /// coupond as a loyalty platform's remote coupon source.
    Remote,
    /// The workflow-engine plugin: its descriptor and actions.
    Workflow,
    /// Checkout: validating, redeeming and reversing codes against a basket.
    Redemption,
    /// Looking up, searching and changing coupons.
    Coupons,
    /// Expiry reminders, resends and the email/SMS outbox.
    Notifications,
    /// The loyalty market: coupon products priced in points, exchanges, customers' points.
    Market,
    /// Wallet passes: pools' pass templates, coupons' Apple Wallet passes and Google Wallet links.
    Wallet,
    /// Stores, the currency each charges in, and where a checkout happens.
    Stores,
}
