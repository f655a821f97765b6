//! Wallet passes (Antavo's "Pass template"): a pool's pass template, the Apple Wallet
//! `pass.json` and `manifest.json` of a coupon's pass, the Google Wallet offer of the same
//! coupon, and the state both show, which follows the coupon.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::{Enum, Object};
use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use super::{
    coupon::CouponStatus,
    message::{TagValues, Template},
};

/// The icon of passes whose pool has no logo (Apple Wallet requires one).
pub const DEFAULT_ICON: &[u8] = include_bytes!("wallet/icon.png");
/// The largest logo accepted, in bytes.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;
/// The largest logo accepted, in pixels each way (Apple's largest logo is 480 x 150).
pub const MAX_LOGO_PIXELS: u32 = 1024;
const MAX_TITLE_CHARS: usize = 60;
const MAX_DESCRIPTION_CHARS: usize = 200;
const MAX_KEY_CHARS: usize = 40;
const MAX_LABEL_CHARS: usize = 60;
/// A coupon pass has room for four secondary and auxiliary fields together.
const MAX_FRONT_FIELDS: usize = 4;
const MAX_BACK_FIELDS: usize = 10;

/// How the coupon code is printed on the pass; the code is the barcode's message.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BarcodeFormat {
    #[default]
    #[oai(rename = "QR")]
    #[serde(rename = "QR")]
    Qr,
    #[oai(rename = "PDF417")]
    #[serde(rename = "PDF417")]
    Pdf417,
    #[oai(rename = "Code128")]
    #[serde(rename = "Code128")]
    Code128,
}

impl BarcodeFormat {
    fn apple(self) -> &'static str {
        match self {
            BarcodeFormat::Qr => "PKBarcodeFormatQR",
            BarcodeFormat::Pdf417 => "PKBarcodeFormatPDF417",
            BarcodeFormat::Code128 => "PKBarcodeFormatCode128",
        }
    }

    fn google(self) -> &'static str {
        match self {
            BarcodeFormat::Qr => "QR_CODE",
            BarcodeFormat::Pdf417 => "PDF_417",
            BarcodeFormat::Code128 => "CODE_128",
        }
    }
}

/// Where a field sits on the pass.
#[derive(Enum, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum FieldPlace {
    /// The large field on the front (at most one).
    Primary,
    #[default]
    Secondary,
    Auxiliary,
    /// The back of the pass.
    Back,
}

impl FieldPlace {
    fn apple(self) -> &'static str {
        match self {
            FieldPlace::Primary => "primaryFields",
            FieldPlace::Secondary => "secondaryFields",
            FieldPlace::Auxiliary => "auxiliaryFields",
            FieldPlace::Back => "backFields",
        }
    }
}

/// One labelled field of the pass.
#[derive(Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PassField {
    /// Unique within the pass: letters, digits, `_` and `-`.
    pub key: String,
    pub label: String,
    /// With the tags of message templates: {{code}}, {{expires_on}}, {{value}},
    /// {{pool_name}}, {{customer_name}}.
    pub value: String,
    #[oai(default)]
    #[serde(default)]
    pub place: FieldPlace,
}

/// A pool's pass template. Everything is optional: a pool without one gets the defaults.
#[derive(
    Object, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, FromJsonQueryResult,
)]
pub struct PassTemplate {
    /// Shown beside the logo; default: the pool's name.
    pub title: Option<String>,
    /// What the pass is for (read aloud by VoiceOver, the offer's title in Google Wallet);
    /// default: the pool's name.
    pub description: Option<String>,
    /// Text colour, `#RRGGBB`.
    pub foreground_color: Option<String>,
    pub background_color: Option<String>,
    /// Colour of the field labels, `#RRGGBB`.
    pub label_color: Option<String>,
    #[oai(default)]
    #[serde(default)]
    pub barcode_format: BarcodeFormat,
    /// The pass's fields; none: the coupon's value and expiry date on the front, its code on
    /// the back.
    #[oai(default)]
    #[serde(default)]
    pub fields: Vec<PassField>,
}

/// A template field that is refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInvalid {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> TemplateInvalid {
    TemplateInvalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl PassTemplate {
    /// Checks every part, so a template that would make a broken pass is refused when saved.
    pub fn check(&self) -> Result<(), TemplateInvalid> {
        check_text("title", self.title.as_deref(), MAX_TITLE_CHARS)?;
        check_text(
            "description",
            self.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
        )?;
        for (name, colour) in [
            ("foreground_color", &self.foreground_color),
            ("background_color", &self.background_color),
            ("label_color", &self.label_color),
        ] {
            if let Some(c) = colour {
                parse_colour(c).ok_or_else(|| invalid(name, "must be a colour as #RRGGBB"))?;
            }
        }
        self.check_fields()
    }

    fn check_fields(&self) -> Result<(), TemplateInvalid> {
        let count = |places: &[FieldPlace]| {
            self.fields
                .iter()
                .filter(|f| places.contains(&f.place))
                .count()
        };
        if count(&[FieldPlace::Primary]) > 1 {
            return Err(invalid("fields", "at most one primary field"));
        }
        if count(&[FieldPlace::Secondary, FieldPlace::Auxiliary]) > MAX_FRONT_FIELDS {
            return Err(invalid(
                "fields",
                format!("at most {MAX_FRONT_FIELDS} secondary and auxiliary fields together"),
            ));
        }
        if count(&[FieldPlace::Back]) > MAX_BACK_FIELDS {
            return Err(invalid(
                "fields",
                format!("at most {MAX_BACK_FIELDS} back fields"),
            ));
        }
        for (i, field) in self.fields.iter().enumerate() {
            check_field(i, field)?;
            if self.fields[..i].iter().any(|f| f.key == field.key) {
                return Err(invalid(format!("fields[{i}].key"), "is used twice"));
            }
        }
        Ok(())
    }

    /// The fields the pass shows: the template's, or the default ones.
    fn fields_or_default(&self) -> Vec<PassField> {
        if !self.fields.is_empty() {
            return self.fields.clone();
        }
        let field = |key: &str, label: &str, value: &str, place| PassField {
            key: key.into(),
            label: label.into(),
            value: value.into(),
            place,
        };
        vec![
            field("value", "Offer", "{{value}}", FieldPlace::Primary),
            field(
                "expires",
                "Valid until",
                "{{expires_on}}",
                FieldPlace::Secondary,
            ),
            field("code", "Code", "{{code}}", FieldPlace::Back),
        ]
    }
}

fn check_text(name: &str, text: Option<&str>, max: usize) -> Result<(), TemplateInvalid> {
    match text {
        Some(t) if t.trim().is_empty() => Err(invalid(name, "must not be empty")),
        Some(t) if t.chars().count() > max => {
            Err(invalid(name, format!("must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

fn check_field(i: usize, field: &PassField) -> Result<(), TemplateInvalid> {
    let name = |part: &str| format!("fields[{i}].{part}");
    let key_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if field.key.is_empty() || field.key.len() > MAX_KEY_CHARS || !field.key.chars().all(key_ok) {
        return Err(invalid(
            name("key"),
            format!("must be 1 to {MAX_KEY_CHARS} letters, digits, `_` or `-`"),
        ));
    }
    check_text(&name("label"), Some(&field.label), MAX_LABEL_CHARS)?;
    Template::parse(&field.value).map_err(|e| invalid(name("value"), e.0))?;
    Ok(())
}

/// `#RRGGBB` as red, green and blue.
pub fn parse_colour(text: &str) -> Option<(u8, u8, u8)> {
    let hex = text.strip_prefix('#').filter(|h| h.len() == 6)?;
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some((byte(0)?, byte(2)?, byte(4)?))
}

/// Apple's colour notation.
fn apple_colour(text: &str) -> Option<String> {
    parse_colour(text).map(|(r, g, b)| format!("rgb({r}, {g}, {b})"))
}

/// What a pass shows about its coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassState {
    /// Available or issued: it can be used.
    Active,
    /// Used up.
    Completed,
    Expired,
    /// Revoked or invalidated.
    Inactive,
}

impl PassState {
    /// The state of a pass for a coupon with this status (as it stands now, expiry applied).
    pub fn of(status: CouponStatus) -> PassState {
        match status {
            CouponStatus::Available | CouponStatus::Issued => PassState::Active,
            CouponStatus::Redeemed => PassState::Completed,
            CouponStatus::Expired => PassState::Expired,
            CouponStatus::Invalidated | CouponStatus::Revoked => PassState::Inactive,
        }
    }

    /// Apple Wallet greys out a voided pass: any pass that can no longer be used.
    pub fn voided(self) -> bool {
        self != PassState::Active
    }

    /// Google Wallet's object state.
    pub fn google(self) -> &'static str {
        match self {
            PassState::Active => "ACTIVE",
            PassState::Completed => "COMPLETED",
            PassState::Expired => "EXPIRED",
            PassState::Inactive => "INACTIVE",
        }
    }
}

/// What a coupon's pass says, gathered by the service.
#[derive(Debug, Clone)]
pub struct PassFacts {
    pub org_id: i64,
    pub organization: String,
    pub pool_id: i64,
    pub pool_name: String,
    pub code: String,
    /// The coupon's status now (past its expiry it is expired before the sweep writes it).
    pub status: CouponStatus,
    pub valid_from: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The expiry date in the org's time zone, as messages print it.
    pub expires_on: String,
    /// The coupon's value as messages print it.
    pub value: String,
    pub customer_name: String,
}

impl PassFacts {
    fn tag_values(&self) -> TagValues<'_> {
        TagValues {
            code: &self.code,
            expires_on: &self.expires_on,
            pool_name: &self.pool_name,
            customer_name: &self.customer_name,
            value: &self.value,
        }
    }

    /// Unique per coupon across orgs: codes are unique only within an org.
    pub fn serial_number(&self) -> String {
        format!("{}-{}", self.org_id, self.code)
    }

    fn state(&self) -> PassState {
        PassState::of(self.status)
    }
}

/// The operator's Apple pass type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppleIds {
    pub pass_type_id: String,
    pub team_id: String,
}

/// The template's fields with their tags filled in; fields that come out empty (no expiry
/// date) are left off.
fn rendered_fields(
    template: &PassTemplate,
    facts: &PassFacts,
) -> Vec<(FieldPlace, String, String, String)> {
    let values = facts.tag_values();
    template
        .fields_or_default()
        .into_iter()
        .filter_map(|f| {
            // Templates are checked when saved; a value that no longer parses is left off.
            let value = Template::parse(&f.value).ok()?.render(&values);
            (!value.trim().is_empty()).then_some((f.place, f.key, f.label, value))
        })
        .collect()
}

fn w3c_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The pass's `pass.json`: a coupon-style pass whose barcode carries the code, voided and
/// expired as the coupon is.
pub fn pass_json(template: &PassTemplate, ids: &AppleIds, facts: &PassFacts) -> Value {
    let mut style = Map::new();
    for (place, key, label, value) in rendered_fields(template, facts) {
        let list = style
            .entry(place.apple())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(json!({"key": key, "label": label, "value": value}));
        }
    }
    let mut pass = json!({
        "formatVersion": 1,
        "passTypeIdentifier": ids.pass_type_id,
        "teamIdentifier": ids.team_id,
        "serialNumber": facts.serial_number(),
        "organizationName": facts.organization,
        "description": template.description.as_deref().unwrap_or(&facts.pool_name),
        "logoText": template.title.as_deref().unwrap_or(&facts.pool_name),
        "barcodes": [{
            "format": template.barcode_format.apple(),
            "message": facts.code,
            "messageEncoding": barcode_encoding(&facts.code),
            "altText": facts.code,
        }],
        "voided": facts.state().voided(),
        "coupon": style,
    });
    for (key, colour) in [
        ("foregroundColor", &template.foreground_color),
        ("backgroundColor", &template.background_color),
        ("labelColor", &template.label_color),
    ] {
        if let Some(c) = colour.as_deref().and_then(apple_colour) {
            pass[key] = json!(c);
        }
    }
    if let Some(at) = facts.expires_at {
        pass["expirationDate"] = json!(w3c_time(at));
    }
    pass
}

/// Scanners read Latin-1 best; codes outside it are encoded as UTF-8.
fn barcode_encoding(code: &str) -> &'static str {
    if code.chars().all(|c| u32::from(c) <= 0xFF) {
        "iso-8859-1"
    } else {
        "utf-8"
    }
}

/// `manifest.json`: each file of the pass with the hex SHA-1 of its bytes.
pub fn manifest(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let digests: Map<String, Value> = files
        .iter()
        .map(|(name, bytes)| ((*name).to_string(), json!(hex::encode(Sha1::digest(bytes)))))
        .collect();
    Value::Object(digests).to_string().into_bytes()
}

/// The files of a pass besides its manifest and signature: `pass.json`, the icon (the pool's
/// logo, or the default one) and the logo when there is one.
pub fn pass_files(pass: &Value, logo: Option<&[u8]>) -> Vec<(&'static str, Vec<u8>)> {
    let mut files = vec![
        ("pass.json", pass.to_string().into_bytes()),
        ("icon.png", logo.unwrap_or(DEFAULT_ICON).to_vec()),
    ];
    if let Some(logo) = logo {
        files.push(("logo.png", logo.to_vec()));
    }
    files
}

/// Why an uploaded logo is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    #[error("the logo is larger than {MAX_LOGO_BYTES} bytes")]
    TooLarge,
    #[error("the logo is not a readable PNG image: {0}")]
    NotPng(String),
    #[error("the logo is {0} x {1} pixels; at most {MAX_LOGO_PIXELS} each way")]
    TooManyPixels(u32, u32),
}

/// Checks an uploaded logo: a PNG that decodes whole, of a sensible size.
pub fn check_logo(bytes: &[u8]) -> Result<(), LogoError> {
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(LogoError::TooLarge);
    }
    let not_png = |e: png::DecodingError| LogoError::NotPng(e.to_string());
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .map_err(not_png)?;
    let (width, height) = (reader.info().width, reader.info().height);
    // Checked before decoding, so a small file cannot claim a huge image.
    if width > MAX_LOGO_PIXELS || height > MAX_LOGO_PIXELS {
        return Err(LogoError::TooManyPixels(width, height));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| LogoError::NotPng("image size overflows".into()))?;
    let mut pixels = vec![0; size];
    reader.next_frame(&mut pixels).map_err(not_png)?;
    Ok(())
}

/// The operator's Google Wallet issuer and service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleIds {
    pub issuer_id: String,
    pub client_email: String,
}

/// The offer object's id: `issuer.org-code`. Google allows letters, digits, `.`, `_` and `-`
/// after the issuer; any other byte of the code is written `.XX` (hex), which keeps distinct
/// codes distinct.
pub fn google_object_id(issuer_id: &str, org_id: i64, code: &str) -> String {
    let mut id = format!("{issuer_id}.{org_id}-");
    for byte in code.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            id.push(char::from(byte));
        } else {
            id.push_str(&format!(".{byte:02X}"));
        }
    }
    id
}

/// The claims of a "Save to Google Wallet" JWT: the pool's offer class and the coupon's offer
/// object, its state and validity following the coupon.
pub fn google_claims(
    template: &PassTemplate,
    ids: &GoogleIds,
    facts: &PassFacts,
    now: DateTime<Utc>,
) -> Value {
    let class_id = format!("{}.coupond-pool-{}", ids.issuer_id, facts.pool_id);
    let title = template.description.as_deref().unwrap_or(&facts.pool_name);
    let mut class = json!({
        "id": class_id,
        "issuerName": facts.organization,
        "title": title,
        "provider": facts.organization,
        "redemptionChannel": "BOTH",
        "reviewStatus": "UNDER_REVIEW",
    });
    if let Some(colour) = &template.background_color {
        class["hexBackgroundColor"] = json!(colour);
    }
    let mut interval = Map::new();
    if let Some(from) = facts.valid_from {
        interval.insert("start".into(), json!({"date": w3c_time(from)}));
    }
    if let Some(until) = facts.expires_at {
        interval.insert("end".into(), json!({"date": w3c_time(until)}));
    }
    let mut object = json!({
        "id": google_object_id(&ids.issuer_id, facts.org_id, &facts.code),
        "classId": class_id,
        "state": facts.state().google(),
        "barcode": {
            "type": template.barcode_format.google(),
            "value": facts.code,
            "alternateText": facts.code,
        },
    });
    if !interval.is_empty() {
        object["validTimeInterval"] = Value::Object(interval);
    }
    json!({
        "iss": ids.client_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": now.timestamp(),
        "origins": [],
        "payload": {"offerClasses": [class], "offerObjects": [object]},
    })
}

/// The part of an RS256 JWT that is signed: header and claims, base64url without padding.
pub fn jwt_signing_input(claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT"});
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The "Save to Google Wallet" link of a signed JWT.
pub fn google_save_url(signing_input: &str, signature: &[u8]) -> String {
    format!(
        "https://pay.google.com/gp/v/save/{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn facts(status: CouponStatus) -> PassFacts {
        PassFacts {
            org_id: 7,
            organization: "Acme".into(),
            pool_id: 3,
            pool_name: "Spring".into(),
            code: "SPR-ABC123".into(),
            status,
            valid_from: Some(Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap()),
            expires_at: Some(Utc.with_ymd_and_hms(2026, 12, 31, 22, 59, 59).unwrap()),
            expires_on: "2026-12-31".into(),
            value: "15%".into(),
            customer_name: "Ana".into(),
        }
    }

    fn ids() -> AppleIds {
        AppleIds {
            pass_type_id: "pass.com.example.coupons".into(),
            team_id: "ABCDE12345".into(),
        }
    }

    fn field(key: &str, value: &str, place: FieldPlace) -> PassField {
        PassField {
            key: key.into(),
            label: key.into(),
            value: value.into(),
            place,
        }
    }

    #[test]
    fn a_pass_carries_the_code_ids_and_expiry() {
        let pass = pass_json(
            &PassTemplate::default(),
            &ids(),
            &facts(CouponStatus::Issued),
        );
        assert_eq!(pass["passTypeIdentifier"], "pass.com.example.coupons");
        assert_eq!(pass["teamIdentifier"], "ABCDE12345");
        assert_eq!(pass["serialNumber"], "7-SPR-ABC123");
        assert_eq!(pass["organizationName"], "Acme");
        assert_eq!(pass["description"], "Spring");
        assert_eq!(pass["barcodes"][0]["format"], "PKBarcodeFormatQR");
        assert_eq!(pass["barcodes"][0]["message"], "SPR-ABC123");
        assert_eq!(pass["barcodes"][0]["messageEncoding"], "iso-8859-1");
        assert_eq!(pass["expirationDate"], "2026-12-31T22:59:59Z");
        assert_eq!(pass["voided"], false);
        assert_eq!(pass["coupon"]["primaryFields"][0]["value"], "15%");
        assert_eq!(pass["coupon"]["secondaryFields"][0]["value"], "2026-12-31");
        assert_eq!(pass["coupon"]["backFields"][0]["value"], "SPR-ABC123");
    }

    #[test]
    fn a_template_sets_wording_colours_barcode_and_fields() {
        let template = PassTemplate {
            title: Some("Acme Spring".into()),
            description: Some("15% off in spring".into()),
            foreground_color: Some("#FFFFFF".into()),
            background_color: Some("#1a2B3c".into()),
            label_color: None,
            barcode_format: BarcodeFormat::Code128,
            fields: vec![field(
                "offer",
                "{{value}} off {{pool_name}} for {{customer_name}}",
                FieldPlace::Auxiliary,
            )],
        };
        template.check().unwrap();
        let pass = pass_json(&template, &ids(), &facts(CouponStatus::Issued));
        assert_eq!(pass["logoText"], "Acme Spring");
        assert_eq!(pass["description"], "15% off in spring");
        assert_eq!(pass["foregroundColor"], "rgb(255, 255, 255)");
        assert_eq!(pass["backgroundColor"], "rgb(26, 43, 60)");
        assert!(pass.get("labelColor").is_none());
        assert_eq!(pass["barcodes"][0]["format"], "PKBarcodeFormatCode128");
        assert_eq!(
            pass["coupon"]["auxiliaryFields"][0]["value"],
            "15% off Spring for Ana"
        );
        assert!(pass["coupon"].get("primaryFields").is_none());
    }

    #[test]
    fn passes_of_used_withdrawn_or_expired_coupons_are_voided() {
        for (status, voided, google) in [
            (CouponStatus::Available, false, "ACTIVE"),
            (CouponStatus::Issued, false, "ACTIVE"),
            (CouponStatus::Redeemed, true, "COMPLETED"),
            (CouponStatus::Expired, true, "EXPIRED"),
            (CouponStatus::Invalidated, true, "INACTIVE"),
            (CouponStatus::Revoked, true, "INACTIVE"),
        ] {
            assert_eq!(PassState::of(status).voided(), voided, "{status:?}");
            assert_eq!(PassState::of(status).google(), google, "{status:?}");
            let pass = pass_json(&PassTemplate::default(), &ids(), &facts(status));
            assert_eq!(pass["voided"], voided);
        }
    }

    #[test]
    fn coupons_without_expiry_have_no_expiry_on_the_pass() {
        let mut f = facts(CouponStatus::Issued);
        f.expires_at = None;
        f.expires_on = String::new();
        let pass = pass_json(&PassTemplate::default(), &ids(), &f);
        assert!(pass.get("expirationDate").is_none());
        assert!(pass["coupon"].get("secondaryFields").is_none());
    }

    #[test]
    fn bad_templates_are_refused_naming_the_field() {
        let refused = |t: PassTemplate| t.check().unwrap_err().field;
        let colour = PassTemplate {
            background_color: Some("blue".into()),
            ..Default::default()
        };
        assert_eq!(refused(colour), "background_color");
        let tag = PassTemplate {
            fields: vec![field("a", "{{points}}", FieldPlace::Back)],
            ..Default::default()
        };
        assert_eq!(refused(tag), "fields[0].value");
        let twice = PassTemplate {
            fields: vec![
                field("a", "x", FieldPlace::Back),
                field("a", "y", FieldPlace::Back),
            ],
            ..Default::default()
        };
        assert_eq!(refused(twice), "fields[1].key");
        let key = PassTemplate {
            fields: vec![field("a b", "x", FieldPlace::Back)],
            ..Default::default()
        };
        assert_eq!(refused(key), "fields[0].key");
        let primaries = PassTemplate {
            fields: vec![
                field("a", "x", FieldPlace::Primary),
                field("b", "y", FieldPlace::Primary),
            ],
            ..Default::default()
        };
        assert_eq!(refused(primaries), "fields");
        let front = PassTemplate {
            fields: (0..5)
                .map(|i| field(&format!("f{i}"), "x", FieldPlace::Secondary))
                .collect(),
            ..Default::default()
        };
        assert_eq!(refused(front), "fields");
        let title = PassTemplate {
            title: Some(" ".into()),
            ..Default::default()
        };
        assert_eq!(refused(title), "title");
    }

    #[test]
    fn colours_are_hex_triples() {
        assert_eq!(parse_colour("#00ff80"), Some((0, 255, 128)));
        for bad in ["00ff80", "#00ff8", "#00ff800", "#gg0000", "#ééé"] {
            assert_eq!(parse_colour(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_manifest_lists_the_sha1_of_every_file() {
        let manifest = manifest(&[("pass.json", b"{}".to_vec()), ("icon.png", Vec::new())]);
        let doc: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(doc["pass.json"], "bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f");
        assert_eq!(doc["icon.png"], "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(doc.as_object().unwrap().len(), 2);
    }

    #[test]
    fn a_pool_logo_is_also_the_icon() {
        let pass = json!({"formatVersion": 1});
        let names = |files: Vec<(&'static str, Vec<u8>)>| {
            files.into_iter().map(|f| f.0).collect::<Vec<_>>()
        };
        assert_eq!(names(pass_files(&pass, None)), ["pass.json", "icon.png"]);
        let files = pass_files(&pass, Some(b"logo"));
        assert_eq!(files[1].1, b"logo");
        assert_eq!(names(files), ["pass.json", "icon.png", "logo.png"]);
    }

    #[test]
    fn codes_outside_latin1_are_encoded_as_utf8() {
        assert_eq!(barcode_encoding("CAFÉ-1"), "iso-8859-1");
        assert_eq!(barcode_encoding("券-1"), "utf-8");
    }

    #[test]
    fn google_object_ids_keep_distinct_codes_distinct() {
        assert_eq!(google_object_id("338", 7, "SPR-A_1"), "338.7-SPR-A_1");
        assert_eq!(google_object_id("338", 7, "A.B"), "338.7-A.2EB");
        assert_eq!(google_object_id("338", 7, "A/B"), "338.7-A.2FB");
        assert_ne!(
            google_object_id("338", 7, "A.B"),
            google_object_id("338", 7, "A.2EB")
        );
    }

    #[test]
    fn the_google_offer_follows_the_coupon() {
        let ids = GoogleIds {
            issuer_id: "3388000000012345".into(),
            client_email: "wallet@example.iam.gserviceaccount.com".into(),
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let template = PassTemplate {
            barcode_format: BarcodeFormat::Pdf417,
            ..Default::default()
        };
        let claims = google_claims(&template, &ids, &facts(CouponStatus::Issued), now);
        assert_eq!(claims["iss"], "wallet@example.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "google");
        assert_eq!(claims["typ"], "savetowallet");
        assert_eq!(claims["iat"], now.timestamp());
        let offer = &claims["payload"]["offerObjects"][0];
        assert_eq!(offer["id"], "3388000000012345.7-SPR-ABC123");
        assert_eq!(offer["classId"], "3388000000012345.coupond-pool-3");
        assert_eq!(offer["state"], "ACTIVE");
        assert_eq!(offer["barcode"]["type"], "PDF_417");
        assert_eq!(offer["barcode"]["value"], "SPR-ABC123");
        assert_eq!(
            offer["validTimeInterval"]["end"]["date"],
            "2026-12-31T22:59:59Z"
        );
        assert_eq!(
            claims["payload"]["offerClasses"][0]["id"],
            "3388000000012345.coupond-pool-3"
        );
        let expired = google_claims(&template, &ids, &facts(CouponStatus::Expired), now);
        assert_eq!(expired["payload"]["offerObjects"][0]["state"], "EXPIRED");
    }

    #[test]
    fn the_jwt_is_header_claims_and_signature_in_base64url() {
        let input = jwt_signing_input(&json!({"aud": "google"}));
        let (header, claims) = input.split_once('.').unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], "google");
        let url = google_save_url(&input, &[0xfb, 0xff]);
        assert_eq!(url, format!("https://pay.google.com/gp/v/save/{input}.-_8"));
    }

    #[test]
    fn logos_must_be_small_readable_pngs() {
        check_logo(DEFAULT_ICON).unwrap();
        assert!(matches!(
            check_logo(b"GIF89a not a png"),
            Err(LogoError::NotPng(_))
        ));
        let mut truncated = DEFAULT_ICON.to_vec();
        truncated.truncate(truncated.len() - 20);
        assert!(matches!(check_logo(&truncated), Err(LogoError::NotPng(_))));
        assert_eq!(
            check_logo(&vec![0; MAX_LOGO_BYTES + 1]),
            Err(LogoError::TooLarge)
        );
    }
}
