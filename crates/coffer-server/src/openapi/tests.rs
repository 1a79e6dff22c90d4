use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::{Routes, Verb, path_parameters};
use crate::routes;

fn documented(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

fn routed(routes: &Routes) -> BTreeSet<(String, String)> {
    routes
        .list()
        .into_iter()
        .map(|(verb, path)| (verb.as_str().to_owned(), path.to_owned()))
        .collect()
}

/// Every `$ref` in `value`.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                found.push(target);
            }
            map.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

#[test]
fn every_route_of_both_routers_is_in_its_document_and_nothing_else() {
    for (routes, own) in [
        (routes::api(), coffer_api::paths::OPENAPI),
        (routes::ops(), coffer_api::paths::OPS_OPENAPI),
    ] {
        let document = routes.document();
        assert_eq!(documented(&document), routed(&routes));
        assert!(routed(&routes).contains(&("get".to_owned(), own.to_owned())));
        let mut ids = BTreeSet::new();
        for (method, path) in documented(&document) {
            let operation = &document["paths"][&path][&method];
            let id = operation["operationId"].as_str().unwrap();
            assert!(!id.is_empty() && ids.insert(id.to_owned()), "{id} twice");
            assert!(
                operation["responses"]["default"].is_object(),
                "{method} {path}"
            );
            // Every `{param}` of the path is a described path parameter.
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for name in path_parameters(&path) {
                assert!(
                    parameters
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: {name} undescribed"
                );
            }
        }
    }
}

#[test]
fn the_native_api_document_holds_every_route_the_router_had_before_the_list() {
    // The routes as `api_router` registered them before it was built from the list
    // (a route dropped from the list would be missing here).
    let expected = [
        "post /",
        "post /v1/kms/keys",
        "get /v1/kms/keys",
        "post /v1/kms/aliases",
        "get /v1/kms/keys/alias/{name}",
        "get /v1/kms/keys/{key}",
        "post /v1/kms/keys/{key}/{action}",
        "post /v1/kms/keys/alias/{name}/{action}",
        "get /v1/kms/keys/{key}/certificate",
        "post /v1/kms/keys/{key}/certificate",
        "get /v1/jwks/{tenant}",
        "post /v1/kms/wrap",
        "post /v1/kms/verify-mac",
        "post /v1/admin/tokens/revoke",
        "post /v1/admin/backup",
        "get /v1/kms/keys/{key}/attestation-policy",
        "post /v1/kms/keys/alias/{name}/attestation-policy",
        "post /v1/sys/unseal",
        "get /v1/audit/proof/consistency",
        "get /v1/openapi.json",
        "post /v1/admin/tenants/pq-policy",
        "get /v1/admin/tenants/{tenant}",
    ];
    let routed = routed(&routes::api());
    for route in expected {
        let (method, path) = route.split_once(' ').unwrap();
        assert!(
            routed.contains(&(method.to_owned(), path.to_owned())),
            "{route}"
        );
    }
    assert_eq!(routed.len(), 57, "{routed:?}");
}

#[test]
fn every_schema_reference_resolves() {
    for document in [routes::api().document(), routes::ops().document()] {
        let schemas = document["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("ErrorBody"));
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "{target} dangles");
        }
    }
}

#[test]
fn a_route_added_twice_is_refused() {
    let twice = std::panic::catch_unwind(|| {
        Routes::new("t", "/doc")
            .add(Verb::Get, "/x", async || (), super::Op::new("a", "t", "a"))
            .add(Verb::Get, "/x", async || (), super::Op::new("b", "t", "b"))
    });
    assert!(twice.is_err());
}

fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path.display().to_string(), text));
        }
    }
}

/// The guarantee that makes the document complete: a route reaches a router only
/// through `Routes`, which cannot add one without its description. A `route` call on a
/// router anywhere else in the crate fails here.
#[test]
fn no_route_reaches_a_router_except_through_the_described_list() {
    let mut found = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.len() > 20);
    let needle = [".route", "("].concat();
    let nest = [".nest", "("].concat();
    for (path, text) in found {
        if path.ends_with("src/openapi.rs") {
            continue;
        }
        assert!(
            !text.contains(&needle) && !text.contains(&nest),
            "{path} adds a route outside openapi::Routes"
        );
    }
}

/// The document says which routes take no token, and they are exactly those docs/api.md
/// names: the AWS front (SigV4 instead), JWKS, seal status and unseal, the newest
/// checkpoint and its key, and the document itself.
#[test]
fn the_document_names_the_routes_without_a_token() {
    let document = routes::api().document();
    let public: BTreeSet<(String, String)> = documented(&document)
        .into_iter()
        .filter(|(method, path)| {
            document["paths"][path][method]["security"] == serde_json::json!([])
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("post", "/"),
        ("get", "/v1/jwks/{tenant}"),
        ("get", "/v1/sys/seal-status"),
        ("post", "/v1/sys/unseal"),
        ("get", "/v1/audit/checkpoint"),
        ("get", "/v1/audit/key"),
        ("get", "/v1/openapi.json"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(public, expected);
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn the_writes_tenant_quotas_bound_document_429_with_the_error_body() {
    let document = routes::api().document();
    let limited: BTreeSet<(String, String)> = documented(&document)
        .into_iter()
        .filter(|(method, path)| document["paths"][path][method]["responses"]["429"].is_object())
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("post", "/v1/kms/keys"),
        ("post", "/v1/kms/keys/{key}/{action}"),
        ("post", "/v1/kms/keys/alias/{name}/{action}"),
        ("post", "/v1/admin/tokens"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(limited, expected);
    let create = &document["paths"]["/v1/kms/keys"]["post"]["responses"];
    let description = create["429"]["description"].as_str().unwrap();
    for quota in ["keys_per_tenant", "aliases_per_tenant", "labels_per_key"] {
        assert!(description.contains(quota), "{description}");
    }
    assert_eq!(
        create["429"]["content"], create["default"]["content"],
        "the native error body"
    );
}
