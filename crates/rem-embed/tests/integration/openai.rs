//! The OpenAI-compatible provider against the loopback server.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rem_embed::{EmbedError, EmbeddingProvider, OpenAiProvider, OpenAiSettings};

use rem_testkit::{start, vector_for, Behaviour};

fn settings(base_url: &str, key: Option<&str>) -> OpenAiSettings {
    OpenAiSettings {
        base_url: base_url.to_string(),
        api_key: key.map(String::from),
        max_retries: 3,
        initial_backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn embeds_a_batch_in_one_request_in_input_order() {
    let server = start(Behaviour {
        dims: 16,
        api_key: Some("sk-test".into()),
        ..Default::default()
    });
    let p = OpenAiProvider::new("my-model", settings(&server.base_url, Some("sk-test"))).unwrap();
    assert_eq!(p.dims(), 16, "learned from a probe request");
    assert_eq!(p.name(), "openai:my-model");
    let before = server.requests.load(Ordering::SeqCst);
    let texts = ["alpha", "beta", "gamma", "delta"];
    let got = p.embed(&texts).unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst) - before, 1);
    for (t, v) in texts.iter().zip(&got) {
        assert_eq!(v, &vector_for(t, 16));
    }
}

#[test]
fn retries_429_and_5xx_then_succeeds() {
    for status in [429, 503] {
        let server = start(Behaviour {
            dims: 8,
            fail_first: 2,
            fail_status: status,
            ..Default::default()
        });
        // The probe request (an unknown model's size) fails twice, then succeeds.
        let p = OpenAiProvider::new("m", settings(&server.base_url, None)).unwrap();
        assert_eq!(
            server.requests.load(Ordering::SeqCst),
            3,
            "HTTP {status}: two failures, then one success"
        );
        assert_eq!(p.embed(&["x"]).unwrap()[0], vector_for("x", 8));
    }
    // A known model needs no probe; a reply of the wrong size is refused.
    let server = start(Behaviour {
        dims: 8,
        ..Default::default()
    });
    let p =
        OpenAiProvider::new("text-embedding-3-small", settings(&server.base_url, None)).unwrap();
    assert_eq!(
        (p.dims(), server.requests.load(Ordering::SeqCst)),
        (1536, 0)
    );
    let err = p.embed(&["x"]).unwrap_err();
    assert!(
        err.to_string().contains("8 dimensions, expected 1536"),
        "{err}"
    );
    let server = start(Behaviour {
        dims: 8,
        fail_first: 100,
        fail_status: 500,
        ..Default::default()
    });
    let err = OpenAiProvider::new("m", settings(&server.base_url, None)).unwrap_err();
    assert!(matches!(err, EmbedError::Http { .. }), "{err}");
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
}

#[test]
fn wrong_key_and_malformed_replies_are_clear_errors() {
    let server = start(Behaviour {
        dims: 8,
        api_key: Some("right".into()),
        ..Default::default()
    });
    let err = OpenAiProvider::new("m", settings(&server.base_url, Some("wrong"))).unwrap_err();
    assert!(
        matches!(err, EmbedError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("OPENAI_API_KEY"));
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "401 is not retried"
    );

    for body in [
        "not json",
        r#"{"data": "nope"}"#,
        r#"{"data": [{"index": 0, "embedding": ["a"]}]}"#,
    ] {
        let server = start(Behaviour {
            dims: 8,
            malformed: Some(body.into()),
            ..Default::default()
        });
        let err = OpenAiProvider::new("m", settings(&server.base_url, None)).unwrap_err();
        assert!(
            matches!(err, EmbedError::MalformedReply { .. }),
            "{body}: {err}"
        );
    }
    let err = OpenAiProvider::new("m", settings("http://127.0.0.1:9", None)).unwrap_err();
    assert!(matches!(err, EmbedError::Http { .. }), "{err}");
}
