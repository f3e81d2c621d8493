//! The OpenAI front door through a real OpenAI client library (`async-openai`), its
//! base URL the router's `/v1`, its API key the inference token, the region in a
//! header: plain and streamed completions, the model list, unique ids, prompt tokens
//! reported by an OpenAI-compatible provider, and errors the library reads as API
//! errors with OpenAI's shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequestArgs,
};
use beacon_core::receipt::sha256_hex;
use beacon_sim::Faults;
use common::*;
use futures_util::StreamExt;

fn client(router: &beacon_router::RouterHandle, token: &str, region: &str) -> Client<OpenAIConfig> {
    // The library's reqwest is built without a crypto provider of its own (plain HTTP
    // here, but it asks for one); a second install is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = OpenAIConfig::new()
        .with_api_base(format!("{}/v1", router.url))
        .with_api_key(token)
        .with_header("X-Beacon-Region", region)
        .unwrap();
    Client::with_config(cfg)
}

fn ask(model: &str, prompt: &str) -> CreateChatCompletionRequestArgs {
    let mut args = CreateChatCompletionRequestArgs::default();
    args.model(model)
        .messages([ChatCompletionRequestUserMessage::from(prompt).into()])
        .max_completion_tokens(200u32);
    args
}

/// An OpenAI-compatible provider (asia-pacific) and a Modal one (eu-west).
async fn two_kinds() -> (
    beacon_router::RouterHandle,
    beacon_sim::SimHandle,
    beacon_sim::SimHandle,
) {
    let ap = sim("asia-pacific", Faults::default()).await;
    let eu = sim("eu-west", Faults::default()).await;
    let text = format!(
        "{FAST_HEALTH}[[providers]]\nname = \"vllm-ap\"\nkind = \"openai\"\nregion = \"asia-pacific\"\nurl = \"{}/v1\"\nmodels = {{ \"qwen2.5-1.5b\" = \"qwen2.5-1.5b\" }}\n{}",
        ap.url(),
        provider("modal-eu", "eu-west", &eu, ""),
    );
    let r = router_with(&text, &[]).await;
    (r, ap, eu)
}

#[tokio::test]
async fn an_openai_library_works_through_the_router_unchanged() {
    let (r, ap, eu) = two_kinds().await;
    let openai = client(&r, TOKEN, "asia-pacific");

    // Plain completion from the OpenAI-compatible provider: its prompt tokens come through.
    let req = ask("qwen2.5-1.5b", "What is 2 + 2?").build().unwrap();
    let plain = openai.chat().create(req).await.unwrap();
    let text = plain.choices[0].message.content.clone().unwrap();
    assert!(!text.is_empty());
    let usage = plain.usage.clone().unwrap();
    assert!(usage.prompt_tokens > 0, "{usage:?}");
    assert!(usage.completion_tokens > 0, "{usage:?}");
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );

    // Streamed: the library reads the chunks, then [DONE]; same answer, usage at the end.
    let req = ask("qwen2.5-1.5b", "What is 2 + 2?")
        .stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        })
        .build()
        .unwrap();
    let mut stream = openai.chat().create_stream(req).await.unwrap();
    let (mut streamed, mut finish, mut stream_usage, mut ids) =
        (String::new(), None, None, HashSet::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        ids.insert(chunk.id.clone());
        for c in &chunk.choices {
            if let Some(t) = &c.delta.content {
                streamed.push_str(t);
            }
            finish = finish.or(c.finish_reason);
        }
        stream_usage = stream_usage.or(chunk.usage);
    }
    // The stream carries the whole answer the provider served (the simulator varies
    // its answers between calls, so compare with what it logged for this one).
    assert!(!streamed.is_empty());
    let last = live_calls(&ap).last().cloned().unwrap();
    assert_eq!(last.response_sha256, Some(sha256_hex(&streamed)));
    assert!(finish.is_some(), "a finish reason was streamed");
    assert_eq!(
        stream_usage.map(|u| u.prompt_tokens),
        Some(usage.prompt_tokens)
    );
    assert_eq!(ids.len(), 1, "one id per streamed answer: {ids:?}");
    assert_ne!(ids.into_iter().next().unwrap(), plain.id, "ids are unique");

    // A Modal provider's answer streams the same way (one content chunk).
    let eu_client = client(&r, TOKEN, "eu-west");
    let req = ask("llama3.2-1b", "Name a river.").build().unwrap();
    let mut stream = eu_client.chat().create_stream(req).await.unwrap();
    let mut content = String::new();
    while let Some(chunk) = stream.next().await {
        for c in chunk.unwrap().choices {
            content.push_str(c.delta.content.as_deref().unwrap_or(""));
        }
    }
    assert!(!content.is_empty(), "a Modal answer streamed");

    // Distinct answers have distinct ids.
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let req = ask("llama3.2-1b", "Name a river.").build().unwrap();
        assert!(seen.insert(eu_client.chat().create(req).await.unwrap().id));
    }

    // The models served, in any region.
    let models = openai.models().list().await.unwrap();
    let ids: Vec<String> = models.data.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, ["llama3.2-1b", "mistral-7b", "qwen2.5-1.5b"]);
    assert_eq!(
        openai.models().retrieve("mistral-7b").await.unwrap().id,
        "mistral-7b"
    );
    match openai.models().retrieve("gpt-9").await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 404);
            assert_eq!(e.api_error.code.as_deref(), Some("model_not_found"));
        }
        other => panic!("unknown model: {other:?}"),
    }
    r.shutdown().await;
    ap.shutdown().await;
    eu.shutdown().await;
}

#[tokio::test]
async fn errors_reach_the_library_in_openai_shape_and_buy_nothing() {
    let (r, ap, eu) = two_kinds().await;
    // A wrong key: an authentication error, nothing asked of any provider.
    let stranger = client(&r, "not-the-token-0123456789abcdef", "asia-pacific");
    let req = ask("qwen2.5-1.5b", "Spend my credit.").build().unwrap();
    match stranger.chat().create(req).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 401);
            assert_eq!(e.api_error.code.as_deref(), Some("UNAUTHORIZED"), "{e:?}");
            assert_eq!(
                e.api_error.r#type.as_deref(),
                Some("authentication_error"),
                "{e:?}"
            );
        }
        other => panic!("wrong key: {other:?}"),
    }
    let req = ask("qwen2.5-1.5b", "Spend my credit.")
        .stream(true)
        .build()
        .unwrap();
    let refused = stranger.chat().create_stream(req).await;
    let refused = match refused {
        Err(e) => Some(e),
        Ok(mut s) => s.next().await.and_then(Result::err),
    };
    assert!(refused.is_some(), "a refused stream is an error");
    assert!(live_calls(&ap).is_empty() && live_calls(&eu).is_empty());

    // A model no provider of the region serves: a 4xx the library reports as an API error.
    let openai = client(&r, TOKEN, "asia-pacific");
    let req = ask("mistral-7b", "Hello").build().unwrap();
    match openai.chat().create(req).await {
        Err(OpenAIError::ApiError(e)) => {
            assert!(e.status_code.is_client_error(), "{e:?}");
            assert!(e.api_error.code.is_some(), "{e:?}");
        }
        other => panic!("unserved model: {other:?}"),
    }
    r.shutdown().await;
    ap.shutdown().await;
    eu.shutdown().await;
}
