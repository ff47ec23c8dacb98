use clap::Parser;

use super::*;
use crate::cli::ApiCommand;

/// The API subcommands as the binary parses them.
#[derive(Debug, Parser)]
#[command(name = "sluice")]
struct Cli {
    #[command(subcommand)]
    command: ApiCommand,
}

fn parse(args: &[&str]) -> Result<ApiCommand, String> {
    Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
        .map(|cli| cli.command)
        .map_err(|err| err.to_string())
}

fn image(text: &str) -> ImageArg {
    text.parse().expect("a valid --image")
}

#[test]
fn targets_are_namespace_slash_name() {
    let target: Target = "shop/web".parse().expect("valid");
    assert_eq!(target.namespace, "shop");
    assert_eq!(target.name, "web");
    assert_eq!(target.to_string(), "shop/web");
    for wrong in ["web", "/web", "shop/", "a/b/c", ""] {
        let err = wrong.parse::<Target>().expect_err(wrong);
        assert!(err.contains("expected NAMESPACE/NAME"), "{wrong}: {err}");
    }
}

#[test]
fn a_missing_slash_is_a_clear_usage_error() {
    let err = parse(&["promote", "web"]).expect_err("no namespace");
    assert!(
        err.contains("expected NAMESPACE/NAME, e.g. shop/web, not \"web\""),
        "{err}"
    );
}

#[test]
fn images_split_on_the_first_equals_sign() {
    assert_eq!(
        image("registry.example.com:5000/shop/web:1.2"),
        ImageArg {
            container: None,
            image: "registry.example.com:5000/shop/web:1.2".to_string()
        }
    );
    assert_eq!(
        image("web=shop/web@sha256:abc"),
        ImageArg {
            container: Some("web".to_string()),
            image: "shop/web@sha256:abc".to_string()
        }
    );
    assert_eq!(image("a=b=c").image, "b=c");
    assert!("=shop/web:1".parse::<ImageArg>().is_err());
    assert!("web=".parse::<ImageArg>().is_err());
    assert!("".parse::<ImageArg>().is_err());
}

#[test]
fn one_plain_image_sends_image() {
    let request = release_request(&[image("shop/web:1.2")]).expect("valid");
    assert_eq!(request.image.as_deref(), Some("shop/web:1.2"));
    assert_eq!(request.images, None);
    let body = serde_json::to_value(&request).expect("serializes");
    assert_eq!(body, serde_json::json!({"image": "shop/web:1.2"}));
}

#[test]
fn container_forms_send_images() {
    let request = release_request(&[image("web=shop/web:1.2")]).expect("valid");
    assert_eq!(
        serde_json::to_value(&request).expect("serializes"),
        serde_json::json!({"images": {"web": "shop/web:1.2"}})
    );
    let request =
        release_request(&[image("web=shop/web:1.2"), image("proxy=envoy:1.30")]).expect("valid");
    assert_eq!(
        serde_json::to_value(&request).expect("serializes"),
        serde_json::json!({"images": {"web": "shop/web:1.2", "proxy": "envoy:1.30"}})
    );
}

#[test]
fn image_forms_do_not_mix_or_repeat() {
    let mixed = release_request(&[image("shop/web:1.2"), image("proxy=envoy:1.30")]);
    assert!(mixed.expect_err("mixed").contains("names no container"));
    let twice = release_request(&[image("web=a:1"), image("web=b:2")]);
    assert!(twice.expect_err("twice").contains("given twice"));
    assert!(release_request(&[]).is_err());
}

#[test]
fn release_takes_repeated_images() {
    let Ok(ApiCommand::Release(args)) = parse(&[
        "release",
        "shop/web",
        "--image",
        "web=shop/web:1.2",
        "--image=proxy=envoy:1.30",
    ]) else {
        panic!("release parses");
    };
    assert_eq!(args.target.to_string(), "shop/web");
    assert_eq!(
        args.images,
        [image("web=shop/web:1.2"), image("proxy=envoy:1.30")]
    );
    assert!(
        parse(&["release", "shop/web"]).is_err(),
        "--image is required"
    );
}

#[test]
fn durations_parse_like_rollout_specs() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("soon").is_err());
    let Ok(ApiCommand::Watch(args)) = parse(&["watch", "shop/web", "--timeout", "2s"]) else {
        panic!("watch parses");
    };
    assert_eq!(args.timeout, Some(Duration::from_secs(2)));
    let err = parse(&["watch", "shop/web", "--timeout", "2"]).expect_err("no unit");
    assert!(err.contains("has no unit"), "{err}");
}

#[test]
fn commands_take_their_flags() {
    let Ok(ApiCommand::Promote(args)) = parse(&["promote", "shop/web", "--full"]) else {
        panic!("promote parses");
    };
    assert!(args.full);
    assert_eq!(args.command.idempotency_key, None);
    let Ok(ApiCommand::Abort(args)) = parse(&[
        "abort",
        "shop/web",
        "--reason",
        "bad build",
        "--idempotency-key",
        "ci-42",
    ]) else {
        panic!("abort parses");
    };
    assert_eq!(args.reason.as_deref(), Some("bad build"));
    assert_eq!(args.command.idempotency_key.as_deref(), Some("ci-42"));
    for command in ["pause", "resume", "retry"] {
        assert!(
            matches!(
                parse(&[command, "shop/web"]),
                Ok(ApiCommand::Pause(_) | ApiCommand::Resume(_) | ApiCommand::Retry(_))
            ),
            "{command}"
        );
    }
}

#[test]
fn get_lists_or_shows_one() {
    let Ok(ApiCommand::Get(args)) = parse(&["get", "-n", "shop", "-o", "json"]) else {
        panic!("get parses");
    };
    assert_eq!(args.target, None);
    assert_eq!(args.namespace.as_deref(), Some("shop"));
    assert_eq!(args.output, Output::Json);
    let Ok(ApiCommand::Get(args)) = parse(&["get", "shop/web", "-o", "yaml"]) else {
        panic!("get parses");
    };
    assert_eq!(
        args.target.map(|t| t.to_string()).as_deref(),
        Some("shop/web")
    );
    assert_eq!(args.output, Output::Yaml);
    assert!(parse(&["get", "shop/web", "-n", "shop"]).is_err());
    assert!(parse(&["get", "-o", "wide"]).is_err());
}

#[test]
fn server_and_token_come_from_flags() {
    let Ok(ApiCommand::Get(args)) = parse(&[
        "get",
        "--server",
        "https://sluice.example.com",
        "--token",
        "s3cret",
    ]) else {
        panic!("get parses");
    };
    assert_eq!(args.api.server, "https://sluice.example.com");
    assert_eq!(args.api.token.as_deref(), Some("s3cret"));
    assert!(!format!("{:?}", args.api).contains("s3cret"));
}
