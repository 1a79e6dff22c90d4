//! The OpenAPI document and the router come from one list of routes.
//!
//! [`Routes`] is the only way a route reaches a router here: each call names the method,
//! the path, the handler and its [`Op`] (what it takes and answers, as the wire types'
//! JSON Schemas from `coffer-api`), and adds the handler to the router and the operation
//! to the document at once. A route cannot be added without being described, and the
//! document (served at `GET /v1/openapi.json`, and `GET /openapi.json` on the operations
//! port) cannot describe a route the router does not have.
//!
//! The schemas are OpenAPI 3.0 (schemars' `openapi3` settings: `nullable`, no boolean
//! schemas), written for what the server accepts (`deny_unknown_fields` is
//! `additionalProperties: false`). Every operation's errors are its `default` response:
//! the native error body, or the AWS shape on `POST /`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{MethodFilter, on};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use coffer_core::quota::Quota;

use crate::state::AppState;

/// Makes a schema (usually a `$ref`) with the document's generator.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// `T`'s schema, by reference where `T` has a name.
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// `T`'s own object schema (a query's fields become parameters).
fn object_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Verb {
    /// Lower case, as OpenAPI names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
        }
    }
}

/// One kind of answer body.
#[derive(Clone, Copy)]
enum Content {
    /// `application/json` with this schema.
    Json(SchemaFn),
    /// The AWS front's `application/x-amz-json-1.1` with this schema.
    AwsJson(SchemaFn),
    /// Text of this media type.
    Text(&'static str),
    /// Bytes of this media type.
    Binary(&'static str),
    /// No body.
    Empty,
}

fn content(generator: &mut SchemaGenerator, body: Content) -> Option<Value> {
    let (media, schema) = match body {
        Content::Json(schema) => ("application/json", finish(generator, schema)),
        Content::AwsJson(schema) => (crate::aws::CONTENT_TYPE_JSON, finish(generator, schema)),
        Content::Text(media) => (media, json!({ "type": "string" })),
        Content::Binary(media) => (media, json!({ "type": "string", "format": "binary" })),
        Content::Empty => return None,
    };
    Some(json!({ media: { "schema": schema } }))
}

/// A schema placed in the document outside `components`, with the generator's
/// transforms applied as `take_definitions(true)` applies them to those inside.
fn finish(generator: &mut SchemaGenerator, schema: SchemaFn) -> Value {
    let mut schema = schema(generator);
    for transform in generator.transforms_mut() {
        transform.transform(&mut schema);
    }
    schema.to_value()
}

/// What an operation takes and answers.
#[derive(Clone)]
pub struct Op {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    token: bool,
    query: Option<SchemaFn>,
    path_enums: Vec<(&'static str, &'static [&'static str])>,
    header: Option<(&'static str, &'static str)>,
    body: Option<(Content, bool)>,
    answers: Vec<(u16, &'static str, Content)>,
    errors: Content,
    /// The tenant quotas a call can meet (`429 quota_exceeded`), named beside the
    /// handler in the route list so the document and the router cannot part.
    quotas: &'static [Quota],
}

impl Op {
    /// An operation that needs a bearer token and answers errors as the native error
    /// body.
    pub fn new(id: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self {
            id,
            tag,
            summary,
            token: true,
            query: None,
            path_enums: Vec::new(),
            header: None,
            body: None,
            answers: Vec::new(),
            errors: Content::Json(schema_of::<coffer_api::ErrorBody>),
            quotas: &[],
        }
    }

    /// A write the tenant's `quotas` bound: it answers `429 quota_exceeded` (the
    /// native error body) when one more would pass one of them.
    pub fn limited_by(mut self, quotas: &'static [Quota]) -> Self {
        self.quotas = quotas;
        self
    }

    /// Needs no token.
    pub fn public(mut self) -> Self {
        self.token = false;
        self
    }

    /// Query parameters: the fields of `T`.
    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(object_of::<T>);
        self
    }

    /// The path parameter `name` takes one of `values`.
    pub fn path_enum(mut self, name: &'static str, values: &'static [&'static str]) -> Self {
        self.path_enums.push((name, values));
        self
    }

    /// A JSON body of type `T`.
    pub fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some((Content::Json(schema_of::<T>), true));
        self
    }

    /// A JSON body with this schema that may be left out.
    pub fn optional_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some((Content::Json(schema), false));
        self
    }

    /// A JSON body with this schema.
    pub fn body_schema(mut self, schema: SchemaFn) -> Self {
        self.body = Some((Content::Json(schema), true));
        self
    }

    /// Answers `status` with a JSON `T`.
    pub fn answers<T: JsonSchema>(self, status: u16, description: &'static str) -> Self {
        self.answers_schema(status, description, schema_of::<T>)
    }

    /// Answers `status` with JSON of this schema.
    pub fn answers_schema(
        mut self,
        status: u16,
        description: &'static str,
        schema: SchemaFn,
    ) -> Self {
        self.answers
            .push((status, description, Content::Json(schema)));
        self
    }

    /// Answers `status` with text of `media` type.
    pub fn answers_text(
        mut self,
        status: u16,
        description: &'static str,
        media: &'static str,
    ) -> Self {
        self.answers
            .push((status, description, Content::Text(media)));
        self
    }

    /// Answers `status` with bytes of `media` type.
    pub fn answers_bytes(
        mut self,
        status: u16,
        description: &'static str,
        media: &'static str,
    ) -> Self {
        self.answers
            .push((status, description, Content::Binary(media)));
        self
    }

    /// Answers `status` with no body.
    pub fn answers_empty(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push((status, description, Content::Empty));
        self
    }

    /// The AWS front: the operation named by `X-Amz-Target`, a JSON 1.1 body of `T`,
    /// answers of `A` and errors of `E`, all `application/x-amz-json-1.1`.
    pub fn aws(mut self, request: SchemaFn, answer: SchemaFn, error: SchemaFn) -> Self {
        self.header = Some((
            "X-Amz-Target",
            "`TrentService.` and the AWS KMS operation, e.g. `TrentService.Encrypt`.",
        ));
        self.body = Some((Content::AwsJson(request), true));
        self.answers
            .push((200, "The operation's answer.", Content::AwsJson(answer)));
        self.errors = Content::AwsJson(error);
        self
    }

    fn render(&self, generator: &mut SchemaGenerator, path: &str) -> Value {
        let mut parameters = Vec::new();
        for name in path_parameters(path) {
            let schema = match self.path_enums.iter().find(|(n, _)| *n == name) {
                Some((_, values)) => json!({ "type": "string", "enum": values }),
                None => json!({ "type": "string", "minLength": 1 }),
            };
            parameters.push(json!({
                "name": name, "in": "path", "required": true, "schema": schema
            }));
        }
        if let Some(query) = self.query {
            let schema = finish(generator, query);
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    parameters.push(json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": property,
                    }));
                }
            }
        }
        if let Some((name, description)) = self.header {
            parameters.push(json!({
                "name": name, "in": "header", "required": true,
                "description": description, "schema": { "type": "string" }
            }));
        }
        let mut responses = Map::new();
        for (status, description, body) in &self.answers {
            let mut response = json!({ "description": description });
            if let Some(content) = content(generator, *body) {
                response["content"] = content;
            }
            responses.insert(status.to_string(), response);
        }
        if !self.quotas.is_empty() {
            let names: Vec<&str> = self.quotas.iter().map(|q| q.as_str()).collect();
            let mut response = json!({
                "description": format!(
                    "quota_exceeded: one more would pass the tenant's quota ({}); nothing changed.",
                    names.join(", ")
                ),
            });
            if let Some(content) = content(generator, self.errors) {
                response["content"] = content;
            }
            responses.insert("429".into(), response);
        }
        let mut errors = json!({ "description": "An error: the status and body say which." });
        if let Some(content) = content(generator, self.errors) {
            errors["content"] = content;
        }
        responses.insert("default".into(), errors);
        let mut operation = json!({
            "operationId": self.id,
            "tags": [self.tag],
            "summary": self.summary,
            "security": if self.token { json!([{ "bearer": [] }]) } else { json!([]) },
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some((body, required)) = self.body {
            operation["requestBody"] = json!({
                "required": required,
                "content": content(generator, body),
            });
        }
        operation
    }
}

/// The `{name}` segments of a route's path.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// A router and its document, built route by route.
pub struct Routes {
    title: &'static str,
    document_path: &'static str,
    router: Router<AppState>,
    operations: BTreeMap<&'static str, BTreeMap<Verb, Op>>,
}

impl Routes {
    /// An empty list whose document will be served at `document_path`.
    pub fn new(title: &'static str, document_path: &'static str) -> Self {
        Self {
            title,
            document_path,
            router: Router::new(),
            operations: BTreeMap::new(),
        }
    }

    /// Adds `handler` for `verb` on `path`, described by `op`.
    ///
    /// # Panics
    /// When `path` already has `verb` (axum panics the same way).
    pub fn add<H, T>(mut self, verb: Verb, path: &'static str, handler: H, op: Op) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let previous = self.operations.entry(path).or_default().insert(verb, op);
        assert!(previous.is_none(), "{} {path} added twice", verb.as_str());
        self.router = self.router.route(path, on(verb.filter(), handler));
        self
    }

    /// `GET path`.
    pub fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
        op: Op,
    ) -> Self {
        self.add(Verb::Get, path, h, op)
    }

    /// `POST path`.
    pub fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        h: H,
        op: Op,
    ) -> Self {
        self.add(Verb::Post, path, h, op)
    }

    /// Every route as `(method, path)`, the document's own included once finished.
    pub fn list(&self) -> Vec<(Verb, &'static str)> {
        self.operations
            .iter()
            .flat_map(|(path, ops)| ops.keys().map(move |verb| (*verb, *path)))
            .collect()
    }

    /// The OpenAPI document of the routes added so far.
    pub fn document(&self) -> Value {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut paths = Map::new();
        for (path, ops) in &self.operations {
            let mut item = Map::new();
            for (verb, op) in ops {
                item.insert(verb.as_str().into(), op.render(&mut generator, path));
            }
            paths.insert((*path).into(), Value::Object(item));
        }
        json!({
            "openapi": "3.0.3",
            "info": {
                "title": self.title,
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Generated from the list of routes the server's router is built from.",
            },
            "paths": paths,
            "components": {
                "schemas": generator.take_definitions(true),
                "securitySchemes": {
                    "bearer": { "type": "http", "scheme": "bearer", "description": "A Coffer token." }
                },
            },
        })
    }

    /// Adds the document's own route (`GET document_path`, no token), which serves the
    /// document of every route, itself included.
    pub fn finish(mut self) -> Self {
        let op = Op::new("openapi", "meta", "This OpenAPI document.")
            .public()
            .answers_schema(200, "The OpenAPI 3.0 document.", any_object);
        let path = self.document_path;
        let previous = self
            .operations
            .entry(path)
            .or_default()
            .insert(Verb::Get, op);
        assert!(previous.is_none(), "GET {path} added twice");
        let document = Bytes::from(self.document().to_string());
        let serve = move || {
            let document = document.clone();
            async move { ([(CONTENT_TYPE, "application/json")], document) }
        };
        self.router = self.router.route(path, axum::routing::get(serve));
        self
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// Any JSON object.
pub fn any_object(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({ "type": "object" })
}

#[cfg(test)]
mod tests;
