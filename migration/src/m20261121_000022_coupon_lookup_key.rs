use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The code with separators removed and letters upper-cased, as SQL. Forgiving entry looks a
/// typed code up by this expression when the exact code is not found; the store filters with
/// the very same text, which is what lets both PostgreSQL and SQLite use the index below.
pub const CODE_LOOKUP_KEY: &str =
    "UPPER(REPLACE(REPLACE(REPLACE(REPLACE(code, '-', ''), '_', ''), ' ', ''), '.', ''))";

/// An expression index rather than a stored column: every insert path (uploads, COPY of
/// generated batches, minting at issue time) keeps it right without knowing about it, and a
/// pool can turn forgiving entry on or off without rewriting its codes.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX idx_coupons_org_lookup_key ON coupons (org_id, ({CODE_LOOKUP_KEY}))"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_coupons_org_lookup_key")
            .await?;
        Ok(())
    }
}
