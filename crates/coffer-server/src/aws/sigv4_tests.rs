//! Cases of the AWS Signature Version 4 test suite (credentials AKIDEXAMPLE /
//! wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 2015-08-30T12:36:00Z, us-east-1, service
//! `service`), as published by AWS ("Signature Version 4 test suite", AWS General
//! Reference) and carried in aws-sdk-js's `@aws-sdk/signature-v4` suite fixture. Each
//! request is verified with the suite's expected signature, then refused once altered.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const NOW: i64 = 1_440_938_160; // 2015-08-30T12:36:00Z

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    signed: &'static str,
    signature: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "get-vanilla",
        method: "GET",
        path: "/",
        query: "",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Case {
        name: "post-vanilla",
        method: "POST",
        path: "/",
        query: "",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    Case {
        name: "get-header-key-duplicate",
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    },
    Case {
        name: "get-header-value-order",
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            ("My-Header1", "value4"),
            ("My-Header1", "value1"),
            ("My-Header1", "value3"),
            ("My-Header1", "value2"),
        ],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    },
    Case {
        name: "get-header-value-trim",
        method: "GET",
        path: "/",
        query: "",
        headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        body: "",
        signed: "host;my-header1;my-header2;x-amz-date",
        signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    Case {
        name: "get-unreserved",
        method: "GET",
        path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        query: "",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    },
    Case {
        name: "get-utf8",
        method: "GET",
        path: "/%E1%88%B4",
        query: "",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    },
    Case {
        name: "get-vanilla-query-order-key-case",
        method: "GET",
        path: "/",
        query: "Param2=value2&Param1=value1",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    },
    Case {
        name: "get-vanilla-utf8-query",
        method: "GET",
        path: "/",
        query: "%E1%88%B4=bar",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    },
    Case {
        name: "post-header-value-case",
        method: "POST",
        path: "/",
        query: "",
        headers: &[("My-Header1", "VALUE1")],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    },
    Case {
        name: "post-vanilla-query",
        method: "POST",
        path: "/",
        query: "Param1=value1",
        headers: &[],
        body: "",
        signed: "host;x-amz-date",
        signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    Case {
        name: "post-x-www-form-urlencoded",
        method: "POST",
        path: "/",
        query: "",
        headers: &[("Content-Type", "application/x-www-form-urlencoded")],
        body: "Param1=value1",
        signed: "content-type;host;x-amz-date",
        signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    },
];

fn headers_of(case: &Case) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.append("host", HeaderValue::from_static("example.amazonaws.com"));
    headers.append("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    for (name, value) in case.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    headers
}

fn auth_of(case: &Case, service: &str) -> Authorization {
    Authorization::parse(&format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, SignedHeaders={}, Signature={}",
        case.signed, case.signature
    ))
    .unwrap()
}

#[test]
fn the_test_suite_cases_verify() {
    for case in CASES {
        let headers = headers_of(case);
        let request = Request {
            method: case.method,
            path: case.path,
            query: case.query,
            headers: &headers,
            body: case.body.as_bytes(),
        };
        assert_eq!(
            verify(&request, &auth_of(case, "service"), SECRET, "service", NOW),
            Ok(()),
            "{}",
            case.name
        );
    }
}

#[test]
fn altered_requests_are_refused() {
    for case in CASES {
        let mut headers = headers_of(case);
        let auth = auth_of(case, "service");
        let body = format!("{}x", case.body);
        let altered_body = Request {
            method: case.method,
            path: case.path,
            query: case.query,
            headers: &headers,
            body: body.as_bytes(),
        };
        assert!(
            verify(&altered_body, &auth, SECRET, "service", NOW).is_err(),
            "{}",
            case.name
        );
        let other_method = Request {
            method: if case.method == "GET" { "POST" } else { "GET" },
            body: case.body.as_bytes(),
            ..altered_body
        };
        assert!(
            verify(&other_method, &auth, SECRET, "service", NOW).is_err(),
            "{}",
            case.name
        );
        assert!(
            verify(
                &Request {
                    method: case.method,
                    ..other_method
                },
                &auth,
                "wrong",
                "service",
                NOW
            )
            .is_err(),
            "{}: wrong secret",
            case.name
        );
        headers.insert("host", HeaderValue::from_static("example.amazonaws.org"));
        let other_host = Request {
            method: case.method,
            path: case.path,
            query: case.query,
            headers: &headers,
            body: case.body.as_bytes(),
        };
        assert!(
            verify(&other_host, &auth, SECRET, "service", NOW).is_err(),
            "{}",
            case.name
        );
    }
}

#[test]
fn the_window_service_and_signed_headers_are_enforced() {
    let case = &CASES[1];
    let headers = headers_of(case);
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    let auth = auth_of(case, "service");
    // AWS's window: ±5 minutes; the same signed request replays within it, as at AWS.
    assert_eq!(
        verify(&request, &auth, SECRET, "service", NOW + 300),
        Ok(())
    );
    assert_eq!(
        verify(&request, &auth, SECRET, "service", NOW - 300),
        Ok(())
    );
    assert!(
        matches!(verify(&request, &auth, SECRET, "service", NOW + 301), Err(SigV4Error::Invalid(m)) if m.starts_with("Signature expired"))
    );
    assert!(verify(&request, &auth, SECRET, "service", NOW - 301).is_err());
    // Scoped to another service.
    assert!(verify(&request, &auth, SECRET, "kms", NOW).is_err());
    // host unsigned.
    let mut unsigned = auth.clone();
    unsigned.signed_headers = vec!["x-amz-date".into()];
    assert!(verify(&request, &unsigned, SECRET, "service", NOW).is_err());
    // A scope date that is not the request's.
    let mut wrong_day = auth.clone();
    wrong_day.date = "20150831".into();
    assert!(verify(&request, &wrong_day, SECRET, "service", NOW).is_err());
}

#[test]
fn malformed_authorization_headers_are_incomplete() {
    for bad in [
        "Bearer abc",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kms/aws4_request, Signature=00",
        "AWS4-HMAC-SHA256 garbage",
    ] {
        assert!(
            matches!(Authorization::parse(bad), Err(SigV4Error::Incomplete(_))),
            "{bad}"
        );
    }
}
