//! `POST /v1/patterns/inspect`: how many codes a pattern can make, before creating a pool.

use poem::web::Data;
use poem_openapi::{Object, OpenApi, payload::Json};

use super::{auth::ApiKeyAuth, error::ApiResult, state::AppState, tags::ApiTags};
use crate::{
    domain::{api_key::Scope, generator::Generator, pattern},
    service::pools::{CodeOptions, parse_pattern},
};

#[derive(Object)]
pub struct InspectPattern {
    pub pattern: String,
    /// Exclusions, prefix, suffix and check character, as on a pool (prefix and suffix are
    /// taken as given here; org defaults apply when a pool is created).
    #[oai(flatten)]
    pub codes: CodeOptions,
}

#[derive(Object)]
pub struct PatternReport {
    /// Placeholder characters in the pattern.
    pub placeholders: u32,
    /// Unique codes after excluded characters (excluded phrases remove a few more; they are
    /// skipped during generation without gaps in the count).
    pub combinations: String,
    /// A pattern without placeholders is one common code.
    pub common: bool,
    /// Whether the pattern may be used for bulk generation (4 placeholders or more).
    pub bulk_allowed: bool,
    /// The most codes a bulk pool of this pattern may hold: 1% of the combinations.
    pub bulk_max: String,
    /// A few codes the pattern makes, to eyeball.
    pub examples: Vec<String>,
}

pub struct PatternsApi;

#[OpenApi(prefix_path = "/v1/patterns", tag = "ApiTags::Pools")]
impl PatternsApi {
    /// Reports the unique combinations of a pattern and its exclusions.
    #[oai(path = "/inspect", method = "post", operation_id = "inspectPattern")]
    async fn inspect(
        &self,
        auth: ApiKeyAuth,
        _state: Data<&AppState>,
        body: Json<InspectPattern>,
    ) -> ApiResult<Json<PatternReport>> {
        auth.0.require(Scope::Admin)?;
        let mut codes = body.0.codes;
        for (field, value) in [("prefix", &codes.prefix), ("suffix", &codes.suffix)] {
            if let Some(v) = value {
                pattern::validate_affix(field, v)?;
            }
        }
        codes.prefix_enabled = Some(codes.prefix.is_some());
        let parsed = parse_pattern(&body.0.pattern, &codes)?;
        let examples = Generator::new(&parsed, Generator::new_key().as_bytes())
            .codes_from(0)
            .take(3)
            .map(|(code, _)| code)
            .collect();
        Ok(Json(PatternReport {
            placeholders: parsed.placeholders() as u32,
            combinations: parsed.combinations().to_string(),
            common: parsed.is_common(),
            bulk_allowed: parsed.placeholders() >= 4,
            bulk_max: (parsed.combinations() / 100).to_string(),
            examples,
        }))
    }
}
