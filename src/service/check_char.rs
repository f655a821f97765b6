//! Check characters: a code with the shape of a check-character pool's codes but the wrong
//! check character was mistyped, and is refused before the coupon look-up.

use sea_orm::ConnectionTrait;

use super::{Error, Result};
use crate::store;

/// 422 `invalid_check_character` when `code` is a mistyped code of one of the org's pools.
pub async fn refuse_mistyped<C: ConnectionTrait>(db: &C, org_id: i64, code: &str) -> Result<()> {
    for pool in store::pools::with_pattern(db, org_id).await? {
        let options = &pool.code_options;
        let Some(text) = pool.pattern.as_deref().filter(|_| options.check_char) else {
            continue;
        };
        let pattern = super::pools::parse_pattern(text, options)
            .map_err(|_| Error::internal(format!("pool {} has a broken pattern", pool.id)))?;
        if pattern.mistyped(code) {
            return Err(Error::refused(
                "invalid_check_character",
                format!("{code} has a wrong check character: it was mistyped"),
            ));
        }
    }
    Ok(())
}
