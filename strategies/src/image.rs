//! Image references and the change of a pod template's images: what `POST .../release` does to the
//! target Deployment. References follow the distribution reference grammar (the one `docker pull`
//! and the kubelet accept), with a tag, a `sha256` digest, or both: a release must say which build
//! it means, so a bare name (implicitly `latest`) is refused.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// The longest repository name the grammar allows.
const MAX_NAME: usize = 255;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain = format!(r"{domain_component}(?:\.{domain_component})*(?::[0-9]+)?");
    let path_component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let name = format!(r"(?:{domain}/)?{path_component}(?:/{path_component})*");
    let pattern = format!(
        r"^(?P<name>{name})(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@(?P<digest>sha256:[a-f0-9]{{64}}))?$"
    );
    // The pattern is a constant of this module; the tests compile it.
    Regex::new(&pattern).expect("the image reference pattern compiles")
});

/// Why an image reference or an image change cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "{reference:?} is not an image reference (expected [registry/]repository[:tag][@sha256:<64 hex>])"
    )]
    Malformed { reference: String },
    #[error(
        "{reference:?} names no tag or digest: give one, so the release says which build it is"
    )]
    Untagged { reference: String },
    #[error("{reference:?}: the repository name is longer than {MAX_NAME} characters")]
    TooLong { reference: String },
    #[error("the target's pod template has {count} containers ({names}): name the one to change")]
    Ambiguous { count: usize, names: String },
    #[error("the target's pod template has no container {name:?} (it has {names})")]
    NoSuchContainer { name: String, names: String },
    #[error("no image given")]
    Empty,
}

/// Checks an image reference.
pub fn validate_reference(reference: &str) -> Result<(), ImageError> {
    let malformed = || ImageError::Malformed {
        reference: reference.to_string(),
    };
    let captures = REFERENCE.captures(reference).ok_or_else(malformed)?;
    let name = captures.name("name").ok_or_else(malformed)?;
    if name.len() > MAX_NAME {
        return Err(ImageError::TooLong {
            reference: reference.to_string(),
        });
    }
    if captures.name("tag").is_none() && captures.name("digest").is_none() {
        return Err(ImageError::Untagged {
            reference: reference.to_string(),
        });
    }
    Ok(())
}

/// The images a release asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChange {
    /// The one container of a single-container template.
    Only(String),
    /// By container name.
    ByContainer(BTreeMap<String, String>),
}

/// The containers' images of a pod template, by container name (init containers aside).
pub fn images_of(template: &Value) -> BTreeMap<String, String> {
    containers(template)
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?.into(), c["image"].as_str()?.into())))
        .collect()
}

fn containers(template: &Value) -> &[Value] {
    template["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The template with the change applied, every reference checked first; the same template when
/// it already runs those images.
pub fn with_images(template: &Value, change: &ImageChange) -> Result<Value, ImageError> {
    let current = images_of(template);
    let names = || current.keys().cloned().collect::<Vec<_>>().join(", ");
    let wanted: BTreeMap<String, String> = match change {
        ImageChange::Only(image) => {
            if current.len() != 1 {
                return Err(ImageError::Ambiguous {
                    count: current.len(),
                    names: names(),
                });
            }
            current
                .keys()
                .map(|name| (name.clone(), image.clone()))
                .collect()
        }
        ImageChange::ByContainer(images) if images.is_empty() => return Err(ImageError::Empty),
        ImageChange::ByContainer(images) => images.clone(),
    };
    for (name, image) in &wanted {
        validate_reference(image)?;
        if !current.contains_key(name) {
            return Err(ImageError::NoSuchContainer {
                name: name.clone(),
                names: names(),
            });
        }
    }
    let mut template = template.clone();
    if let Some(containers) = template["spec"]["containers"].as_array_mut() {
        for container in containers {
            let name = container["name"].as_str().unwrap_or_default().to_string();
            if let Some(image) = wanted.get(&name) {
                container["image"] = Value::String(image.clone());
            }
        }
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_as_registries_accept_them() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for good in [
            "erp/reporting:1.0.1".to_string(),
            "reporting:v2".into(),
            "registry.example.com:5000/erp/reporting:1.0.1".into(),
            "localhost:5000/a_b/c__d/e-f--g:latest".into(),
            format!("erp/reporting@{digest}"),
            format!("erp/reporting:1.0@{digest}"),
            format!("x:{}", "t".repeat(128)),
        ] {
            assert_eq!(validate_reference(&good), Ok(()), "{good}");
        }
    }

    #[test]
    fn malformed_references_are_refused_with_the_reference() {
        for bad in [
            "",
            "erp/Reporting:1",
            "erp//reporting:1",
            "erp/reporting:",
            "erp/reporting:-1",
            "erp/reporting@sha256:abc",
            "erp/reporting@md5:0123",
            "-erp/reporting:1",
            "erp/reporting:1 ",
            "erp/report_-ing:1",
        ] {
            let err = validate_reference(bad).expect_err(bad);
            assert!(matches!(err, ImageError::Malformed { .. }), "{bad}: {err}");
        }
        let long_tag = format!("x:{}", "t".repeat(129));
        assert!(validate_reference(&long_tag).is_err());
        let longest = format!("{}:1", "a".repeat(255));
        assert_eq!(
            validate_reference(&longest),
            Ok(()),
            "255 characters are allowed"
        );
        let long_name = format!("{}:1", "a".repeat(256));
        assert!(matches!(
            validate_reference(&long_name),
            Err(ImageError::TooLong { .. })
        ));
        assert!(matches!(
            validate_reference("erp/reporting"),
            Err(ImageError::Untagged { .. })
        ));
    }

    fn template(containers: &[(&str, &str)]) -> Value {
        let containers: Vec<Value> = containers
            .iter()
            .map(|(name, image)| json!({"name": name, "image": image, "ports": [{"containerPort": 80}]}))
            .collect();
        json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": containers, "initContainers": [{"name": "init", "image": "busybox:1"}]}})
    }

    #[test]
    fn one_image_changes_the_only_container_and_nothing_else() {
        let before = template(&[("reporting", "erp/reporting:1.0.0")]);
        let after = with_images(&before, &ImageChange::Only("erp/reporting:1.0.1".into()))
            .expect("a valid change");
        assert_eq!(
            after["spec"]["containers"][0]["image"],
            "erp/reporting:1.0.1"
        );
        let mut expected = before.clone();
        expected["spec"]["containers"][0]["image"] = json!("erp/reporting:1.0.1");
        assert_eq!(after, expected);
        assert_eq!(images_of(&after)["reporting"], "erp/reporting:1.0.1");
    }

    #[test]
    fn several_containers_must_be_named_and_must_exist() {
        let before = template(&[("app", "a:1"), ("sidecar", "s:1")]);
        assert!(matches!(
            with_images(&before, &ImageChange::Only("a:2".into())),
            Err(ImageError::Ambiguous { count: 2, .. })
        ));
        let change = ImageChange::ByContainer([("sidecar".into(), "s:2".into())].into());
        let after = with_images(&before, &change).expect("a valid change");
        assert_eq!(images_of(&after)["app"], "a:1");
        assert_eq!(images_of(&after)["sidecar"], "s:2");
        let missing = ImageChange::ByContainer([("init".into(), "s:2".into())].into());
        assert!(matches!(
            with_images(&before, &missing),
            Err(ImageError::NoSuchContainer { .. })
        ));
        let bad = ImageChange::ByContainer([("app".into(), "A:2".into())].into());
        assert!(matches!(
            with_images(&before, &bad),
            Err(ImageError::Malformed { .. })
        ));
        assert_eq!(
            with_images(&before, &ImageChange::ByContainer(BTreeMap::new())),
            Err(ImageError::Empty)
        );
    }
}
