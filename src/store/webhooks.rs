//! Webhook subscriptions of an org.

use crate::store::entity::webhooks;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};

use crate::domain::webhook::{WebhookEvent, WebhookEvents};

pub async fn create<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    url: String,
    events: &[WebhookEvent],
    secret: String,
) -> Result<webhooks::Model, DbErr> {
    webhooks::ActiveModel {
        org_id: Set(org_id),
        url: Set(url),
        events: Set(WebhookEvents(events.to_vec())),
        secret: Set(secret),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
}

pub async fn list<C: ConnectionTrait>(db: &C, org_id: i64) -> Result<Vec<webhooks::Model>, DbErr> {
    webhooks::Entity::find()
        .filter(webhooks::Column::OrgId.eq(org_id))
        .order_by_asc(webhooks::Column::Id)
        .all(db)
        .await
}

/// The subscriptions with these ids that still exist.
pub async fn get_many<C: ConnectionTrait>(
    db: &C,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<webhooks::Model>, DbErr> {
    webhooks::Entity::find()
        .filter(webhooks::Column::Id.is_in(ids))
        .all(db)
        .await
}

/// Deletes one of the org's subscriptions; false when there is no such subscription.
pub async fn delete<C: ConnectionTrait>(db: &C, org_id: i64, id: i64) -> Result<bool, DbErr> {
    let result = webhooks::Entity::delete_many()
        .filter(webhooks::Column::Id.eq(id))
        .filter(webhooks::Column::OrgId.eq(org_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The org's subscriptions to `event`.
pub async fn subscribed<C: ConnectionTrait>(
    db: &C,
    org_id: i64,
    event: WebhookEvent,
) -> Result<Vec<webhooks::Model>, DbErr> {
    Ok(list(db, org_id)
        .await?
        .into_iter()
        .filter(|w| w.events.0.contains(&event))
        .collect())
}
