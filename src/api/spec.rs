//! The published OpenAPI document. poem-openapi writes it from the handlers; this module reshapes
//! it so that it tells the truth about what the server accepts and answers, and so that client
//! generators take every schema:
//!
//! - optional properties are `nullable` (the server reads `null` as "left out" and writes `null`
//!   for an absent value);
//! - a property naming an enum carries the enum inline: generators refuse `allOf` around an
//!   enum `$ref` ("cannot take allOf a non-object"), which is how poem-openapi attaches a
//!   description or default to one;
//! - an optional object property documents its default in words, because generators refuse a
//!   default on a model-typed property;
//! - integers carry the bounds of their format, so no schema-valid number is refused as too big;
//! - free text carries a pattern without the control characters the server refuses (any in a
//!   path or query parameter; any but tab, line feed and carriage return in a body);
//! - statuses the server answers before any handler runs (415, 414) are listed per operation.

use poem::{
    Endpoint,
    endpoint::make_sync,
    http::{Method, header},
    web::Html,
};
use serde_json::{Map, Value, json};

use crate::domain::text::Template;

/// The spec as served at `/openapi.json` and committed as `openapi/openapi.yaml`.
pub fn document() -> Value {
    let written = super::openapi_service().spec();
    let mut doc: Value = serde_json::from_str(&written).expect("poem-openapi writes JSON");
    shape_schemas(&mut doc);
    text_or_number(&mut doc, "RemoteCodeRequest");
    fix_formats(&mut doc);
    forbid_controls(&mut doc);
    document_edge_statuses(&mut doc);
    doc
}

pub fn yaml() -> String {
    serde_yaml::to_string(&document()).expect("a JSON value serialises as YAML")
}

/// `/openapi.json`: the document, written once.
pub fn json_endpoint(doc: &Value) -> impl Endpoint + use<> {
    let spec = serde_json::to_string_pretty(doc).expect("a JSON value serialises");
    make_sync(move |_| {
        poem::Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(spec.clone())
    })
}

/// The Swagger UI at `/docs`. poem-openapi bakes a copy of its own spec into the page; this
/// page loads `/openapi.json` instead, so the UI shows the document clients get.
pub fn docs_endpoint() -> impl Endpoint + use<> {
    let api = super::openapi_service();
    let ui = api
        .swagger_ui_html()
        .replacen(&api.spec(), "null", 1)
        .replacen("spec: spec,", "url: \"/openapi.json\",", 1);
    make_sync(move |_| Html(ui.clone()))
}

fn shape_schemas(doc: &mut Value) {
    let enums: Map<String, Value> = doc["components"]["schemas"]
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(_, s)| s.get("enum").is_some())
                .map(|(name, s)| (name.clone(), s.clone()))
                .collect()
        })
        .unwrap_or_default();
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let required: Vec<Value> = schema["required"].as_array().cloned().unwrap_or_default();
        let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, prop) in props.iter_mut() {
            let optional = !required.contains(&Value::String(name.clone()));
            if let Value::Object(p) = prop {
                *prop = Value::Object(shape_property(std::mem::take(p), optional, &enums));
            }
        }
    }
}

fn shape_property(
    mut prop: Map<String, Value>,
    optional: bool,
    enums: &Map<String, Value>,
) -> Map<String, Value> {
    let Some(reference) = take_reference(&mut prop) else {
        if optional {
            prop.insert("nullable".into(), Value::Bool(true));
        }
        return prop;
    };
    let target = reference.rsplit('/').next().unwrap_or_default();
    if let Some(Value::Object(e)) = enums.get(target) {
        for key in ["type", "enum"] {
            if let Some(v) = e.get(key) {
                prop.insert(key.into(), v.clone());
            }
        }
        if optional {
            prop.insert("nullable".into(), Value::Bool(true));
        }
        return prop;
    }
    if optional {
        if let Some(default) = prop.remove("default") {
            describe_default(&mut prop, &default);
        }
        prop.insert("nullable".into(), Value::Bool(true));
    }
    if prop.is_empty() {
        prop.insert("$ref".into(), Value::String(reference));
    } else {
        prop.insert("allOf".into(), json!([{ "$ref": reference }]));
    }
    prop
}

/// A loyalty platform's request whose fields may each be a string or a number (`"5.00"`, `500`).
fn text_or_number(doc: &mut Value, schema: &str) {
    let Some(props) = doc
        .pointer_mut(&format!("/components/schemas/{schema}/properties"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for prop in props.values_mut() {
        let Some(p) = prop.as_object_mut() else {
            continue;
        };
        if p.remove("type").is_some() {
            let mut text: Map<String, Value> = ["minLength", "maxLength"]
                .iter()
                .filter_map(|k| Some((k.to_string(), p.remove(*k)?)))
                .chain([("type".to_string(), json!("string"))])
                .collect();
            // A required field is read trimmed: blank is missing.
            if text.contains_key("minLength") {
                text.insert("pattern".into(), json!(r"\S"));
            }
            // From 2^53 on a number is not read exactly; the platform must send it as text. A
            // length-limited field's number is an integer: a decimal's plain digits (1e-300)
            // could run past the limit.
            let exact = (1i64 << 53) - 1;
            let kind = if text.contains_key("maxLength") {
                "integer"
            } else {
                "number"
            };
            let number = json!({ "type": kind, "minimum": -exact, "maximum": exact });
            p.insert("anyOf".into(), json!([text, number]));
        }
    }
}

/// The `$ref` of a property, whether plain or wrapped in `allOf` with a description or
/// default (which move onto the property itself).
fn take_reference(prop: &mut Map<String, Value>) -> Option<String> {
    if let Some(Value::String(r)) = prop.remove("$ref") {
        return Some(r);
    }
    let Some(Value::Array(parts)) = prop.remove("allOf") else {
        return None;
    };
    let mut reference = None;
    for part in parts {
        let Value::Object(part) = part else { continue };
        for (key, value) in part {
            match (key.as_str(), value) {
                ("$ref", Value::String(r)) => reference = Some(r),
                (_, value) => {
                    prop.entry(key).or_insert(value);
                }
            }
        }
    }
    reference
}

fn describe_default(prop: &mut Map<String, Value>, default: &Value) {
    let said = format!("Left out or null: `{default}`.");
    let description = match prop.get("description").and_then(Value::as_str) {
        Some(d) => format!("{d} {said}"),
        None => said,
    };
    prop.insert("description".into(), Value::String(description));
}

/// Every integer schema, wherever it sits, gets the range of its format; dates say `date`.
fn fix_formats(node: &mut Value) {
    match node {
        Value::Object(map) => {
            // poem-openapi names a calendar date `naive-date`; OpenAPI calls it `date`.
            if map.get("format").and_then(Value::as_str) == Some("naive-date") {
                map.insert("format".into(), Value::String("date".into()));
            }
            if map.get("type").and_then(Value::as_str) == Some("integer") {
                let (min, max) = format_range(map.get("format").and_then(Value::as_str));
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(fix_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(fix_formats),
        _ => {}
    }
}

fn format_range(format: Option<&str>) -> (Value, Value) {
    match format {
        Some("int8") => (json!(i8::MIN), json!(i8::MAX)),
        Some("int16") => (json!(i16::MIN), json!(i16::MAX)),
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("uint8") => (json!(0), json!(u8::MAX)),
        Some("uint16") => (json!(0), json!(u16::MAX)),
        Some("uint32") => (json!(0), json!(u32::MAX)),
        Some("uint64") => (json!(0), json!(u64::MAX)),
        _ => (json!(i64::MIN), json!(i64::MAX)),
    }
}

/// Control characters `domain::text` refuses in path and query parameters.
const PARAMETER_TEXT: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";
/// Control characters it refuses in body text: all but tab, line feed and carriage return.
const BODY_TEXT: &str = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$";

fn forbid_controls(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let parameters = paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|p| p.values_mut())
            .filter_map(|op| op.get_mut("parameters").and_then(Value::as_array_mut))
            .flatten();
        for parameter in parameters {
            if let Some(schema) = parameter.get_mut("schema") {
                add_pattern(schema, PARAMETER_TEXT);
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let bodies = schemas
            .iter_mut()
            .filter(|(name, _)| !name.starts_with("Problem"))
            .filter_map(|(_, s)| s.get_mut("properties").and_then(Value::as_object_mut))
            .flat_map(|props| props.values_mut());
        for prop in bodies {
            add_pattern(prop, BODY_TEXT);
            if let Some(items) = prop.get_mut("items") {
                add_pattern(items, BODY_TEXT);
            }
        }
    }
}

/// A pattern on free text: a string without an enum, a format or a pattern of its own.
fn add_pattern(schema: &mut Value, pattern: &str) {
    let Some(s) = schema.as_object_mut() else {
        return;
    };
    let free = s.get("type").and_then(Value::as_str) == Some("string")
        && !["enum", "format", "pattern"]
            .iter()
            .any(|k| s.contains_key(*k));
    if free {
        s.insert("pattern".into(), Value::String(pattern.into()));
    }
}

/// Answers the server gives before a handler runs: 414 for an over-long URL on every
/// operation, 415 for a body of another content type where a body is read.
fn document_edge_statuses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|p| p.values_mut())
    {
        let reads_body = operation.get("requestBody").is_some();
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        merge_ranges(responses);
        responses.insert(
            "414".into(),
            problem_response("The URL is longer than the server reads."),
        );
        if reads_body {
            responses.insert(
                "415".into(),
                problem_response("The body is not of a content type this operation reads."),
            );
        }
    }
}

/// An operation answering a range (`4XX`) in its own shape also answers problems for some codes
/// of that range (the request guard's, the error type's): each such code lists both.
fn merge_ranges(responses: &mut Map<String, Value>) {
    for range in ["4XX", "5XX"] {
        let Some(content) = responses.get(range).map(|r| r["content"].clone()) else {
            continue;
        };
        let Value::Object(content) = content else {
            continue;
        };
        let codes = responses
            .iter_mut()
            .filter(|(code, _)| code.starts_with(&range[..1]) && code.as_str() != range);
        for (_, response) in codes {
            if let Some(listed) = response.get_mut("content").and_then(Value::as_object_mut) {
                for (kind, media) in &content {
                    listed.entry(kind.clone()).or_insert_with(|| media.clone());
                }
            }
        }
        if let Some(listed) = responses
            .get_mut(range)
            .and_then(|r| r.get_mut("content"))
            .and_then(Value::as_object_mut)
        {
            listed.entry("application/problem+json").or_insert_with(|| {
                problem_response("")["content"]["application/problem+json"].clone()
            });
        }
    }
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" }
            }
        }
    })
}

/// The spec's routes, each with its methods and their JSON body schemas: for the `Allow` header
/// of a 405, to name the path parameter a parse error is about (the router numbers them:
/// `param0`), and to check body types poem-openapi would coerce.
#[derive(Clone)]
pub struct Routes(std::sync::Arc<Spec>);

struct Spec {
    routes: Vec<(Template, Vec<(Method, Value)>)>,
    schemas: Value,
}

impl Routes {
    pub fn from_spec(doc: &Value) -> Routes {
        let routes = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, ops)| (Template::parse(path), methods(ops)))
                    .collect()
            })
            .unwrap_or_default();
        let schemas = doc["components"]["schemas"].clone();
        Routes(std::sync::Arc::new(Spec { routes, schemas }))
    }

    /// The route a path takes, literal segments winning over parameters as in the router.
    fn route(&self, path: &str) -> Option<&(Template, Vec<(Method, Value)>)> {
        let segments = crate::domain::text::decoded_segments(path);
        self.0
            .routes
            .iter()
            .filter(|(t, _)| t.matches(&segments))
            .min_by_key(|(t, _)| t.params().count())
    }

    /// The methods the route of `path` answers, as an `Allow` header lists them.
    pub fn allow(&self, path: &str) -> Option<String> {
        let (_, methods) = self.route(path)?;
        let names: Vec<&str> = methods.iter().map(|(m, _)| m.as_str()).collect();
        Some(names.join(", "))
    }

    /// The name of the `index`th path parameter of the route of `path`.
    pub fn param(&self, path: &str, index: usize) -> Option<&str> {
        self.route(path)?.0.params().nth(index)
    }

    /// The first field of a JSON body that holds a number or a boolean where the schema says
    /// text: poem-openapi would read it as text, and the spec says it is refused.
    pub fn not_text(&self, method: &Method, path: &str, body: &Value) -> Option<String> {
        let (_, methods) = self.route(path)?;
        let (_, schema) = methods.iter().find(|(m, _)| m == method)?;
        not_text(body, schema, &self.0.schemas, String::new())
    }
}

fn not_text(value: &Value, schema: &Value, schemas: &Value, at: String) -> Option<String> {
    let schema = resolve(schema, schemas);
    match value {
        Value::Number(_) | Value::Bool(_) if schema["type"] == "string" => Some(at),
        Value::Object(fields) => fields.iter().find_map(|(name, v)| {
            let field = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            not_text(v, schema["properties"].get(name)?, schemas, field)
        }),
        Value::Array(items) => {
            let each = schema.get("items")?;
            items
                .iter()
                .enumerate()
                .find_map(|(i, v)| not_text(v, each, schemas, format!("{at}[{i}]")))
        }
        _ => None,
    }
}

/// A schema with its `$ref` (plain or the one inside `allOf`) followed.
fn resolve<'a>(schema: &'a Value, schemas: &'a Value) -> &'a Value {
    let reference = schema
        .get("$ref")
        .or_else(|| schema["allOf"].get(0).and_then(|part| part.get("$ref")));
    match reference
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    {
        Some(name) => &schemas[name],
        None => schema,
    }
}

/// An operation's methods, each with the schema of its JSON body (`null` when it takes none).
fn methods(ops: &Value) -> Vec<(Method, Value)> {
    ops.as_object()
        .map(|ops| {
            ops.iter()
                .filter_map(|(m, op)| {
                    let method = Method::from_bytes(m.to_uppercase().as_bytes()).ok()?;
                    let content = op["requestBody"]["content"].as_object();
                    let json = content
                        .and_then(|c| {
                            c.iter()
                                .find(|(kind, _)| kind.starts_with("application/json"))
                        })
                        .map(|(_, media)| media["schema"].clone())
                        .unwrap_or_default();
                    Some((method, json))
                })
                .collect()
        })
        .unwrap_or_default()
}
