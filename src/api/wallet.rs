//! Wallet passes: a pool's pass template and logo, and a coupon's Apple Wallet pass and
//! "Save to Google Wallet" link.

use poem::web::Data;
use poem_openapi::{
    ApiRequest, ApiResponse, Object, OpenApi,
    param::Path,
    payload::{Binary, Json},
};

use super::{ApiTags, AppState, auth::ApiKeyAuth, error::ApiResult};
use crate::{
    domain::{api_key::Scope, wallet::PassTemplate},
    service::wallet::{self, PoolPass},
};

/// A pool's pass template.
#[derive(Object)]
pub struct PoolPassView {
    #[oai(flatten)]
    pub template: PassTemplate,
    /// A logo has been uploaded (`PUT /v1/pools/{id}/pass/logo`); without one passes carry a
    /// default icon.
    #[oai(read_only)]
    pub has_logo: bool,
}

impl From<PoolPass> for PoolPassView {
    fn from(p: PoolPass) -> PoolPassView {
        PoolPassView {
            template: p.template,
            has_logo: p.has_logo,
        }
    }
}

#[derive(ApiRequest)]
pub enum LogoUpload {
    /// A PNG image, at most 256 KiB and 1024 pixels each way.
    #[oai(content_type = "image/png")]
    Png(Binary<Vec<u8>>),
}

#[derive(ApiResponse)]
pub enum PkPass {
    /// The signed pass: `pass.json`, images, `manifest.json` and `signature`, zipped.
    #[oai(status = 200, content_type = "application/vnd.apple.pkpass")]
    Pass(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

/// A "Save to Google Wallet" link.
#[derive(Object)]
pub struct GoogleWalletLink {
    /// `https://pay.google.com/gp/v/save/<jwt>`: opening it offers to save the coupon.
    pub save_url: String,
}

pub struct WalletApi;

#[OpenApi(tag = "ApiTags::Wallet")]
impl WalletApi {
    /// The pool's pass template (the default one until set).
    #[oai(
        path = "/v1/pools/:id/pass",
        method = "get",
        operation_id = "getPoolPass"
    )]
    async fn template(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
    ) -> ApiResult<Json<PoolPassView>> {
        auth.0.require(Scope::Admin)?;
        let saved = wallet::template(&state.db, auth.0.org_id, id.0).await?;
        Ok(Json(saved.into()))
    }

    /// Sets the pool's pass template (admin): wording, colours, barcode format and fields,
    /// whose values take the tags of message templates. The logo is kept.
    #[oai(
        path = "/v1/pools/:id/pass",
        method = "put",
        operation_id = "setPoolPass"
    )]
    async fn set_template(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: Json<PassTemplate>,
    ) -> ApiResult<Json<PoolPassView>> {
        auth.0.require(Scope::Admin)?;
        let saved = wallet::set_template(&state.db, auth.0.org_id, id.0, body.0).await?;
        Ok(Json(saved.into()))
    }

    /// Uploads the pool's pass logo (admin): a PNG; a file that is not one is a 422
    /// `invalid_logo`, one over 256 KiB a 413 `logo_too_large`.
    #[oai(
        path = "/v1/pools/:id/pass/logo",
        method = "put",
        operation_id = "setPoolPassLogo"
    )]
    async fn set_logo(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        id: Path<i64>,
        body: LogoUpload,
    ) -> ApiResult<Json<PoolPassView>> {
        auth.0.require(Scope::Admin)?;
        let LogoUpload::Png(png) = body;
        let saved = wallet::set_logo(&state.db, auth.0.org_id, id.0, png.0).await?;
        Ok(Json(saved.into()))
    }

    /// The coupon's Apple Wallet pass, signed with the operator's pass certificate; voided
    /// once the coupon is redeemed, expired, revoked or invalidated. 409
    /// `wallet_not_configured` when the service has no pass certificate.
    #[oai(
        path = "/v1/coupons/:code/pass.pkpass",
        method = "get",
        operation_id = "getCouponApplePass"
    )]
    async fn apple_pass(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
    ) -> ApiResult<PkPass> {
        auth.0.require(Scope::Pos)?;
        let pass = wallet::apple_pass(&state.db, &state.wallet, auth.0.org_id, &code.0).await?;
        Ok(PkPass::Pass(
            Binary(pass),
            "attachment; filename=\"coupon.pkpass\"".into(),
        ))
    }

    /// The coupon's "Save to Google Wallet" link: an offer whose state follows the coupon.
    /// 409 `wallet_not_configured` when the service has no Google Wallet issuer.
    #[oai(
        path = "/v1/coupons/:code/pass/google",
        method = "get",
        operation_id = "getCouponGoogleWalletLink"
    )]
    async fn google_link(
        &self,
        auth: ApiKeyAuth,
        state: Data<&AppState>,
        code: Path<String>,
    ) -> ApiResult<Json<GoogleWalletLink>> {
        auth.0.require(Scope::Pos)?;
        let save_url =
            wallet::google_link(&state.db, &state.wallet, auth.0.org_id, &code.0).await?;
        Ok(Json(GoogleWalletLink { save_url }))
    }
}
