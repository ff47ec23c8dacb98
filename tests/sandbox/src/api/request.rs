//! Turns a URL path into the resource it addresses.

use std::sync::Arc;

use crate::store::{ApiError, Kinds, ResourceKind, Subresource};

/// `/api/v1/namespaces/erp/services/gateway/status` and friends, resolved.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub kind: Arc<ResourceKind>,
    pub version: String,
    /// None: cluster-scoped, or a list/watch across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Subresource,
}

pub fn parse_path(kinds: &Kinds, path: &str) -> Result<ResourcePath, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::not_found_path(path)),
    };
    let resolve = |plural: &str| {
        kinds
            .resolve(group, version, plural)
            .ok_or_else(|| ApiError::not_found_path(path))
    };
    let subresource = |kind: &ResourceKind, sub: &str| match sub {
        "status" if kind.status_subresource => Ok(Subresource::Status),
        "scale" if kind.scale_subresource => Ok(Subresource::Scale),
        _ => Err(ApiError::not_found_path(path)),
    };
    let owned = |s: &str| Some(s.to_string());
    let (kind, namespace, name, sub) = match rest {
        // The namespace object itself and its subresources.
        ["namespaces", name, "status"] if group.is_empty() => {
            let kind = resolve("namespaces")?;
            let sub = subresource(&kind, "status")?;
            (kind, None, owned(name), sub)
        }
        ["namespaces", name, "finalize"] if group.is_empty() => {
            (resolve("namespaces")?, None, owned(name), Subresource::Main)
        }
        ["namespaces", ns, plural, tail @ ..] => {
            let kind = resolve(plural)?;
            if !kind.namespaced {
                return Err(ApiError::not_found_path(path));
            }
            match tail {
                [] => (kind, owned(ns), None, Subresource::Main),
                [name] => (kind, owned(ns), owned(name), Subresource::Main),
                [name, sub] => {
                    let sub = subresource(&kind, sub)?;
                    (kind, owned(ns), owned(name), sub)
                }
                _ => return Err(ApiError::not_found_path(path)),
            }
        }
        [plural] => (resolve(plural)?, None, None, Subresource::Main),
        [plural, name] => {
            let kind = resolve(plural)?;
            if kind.namespaced {
                return Err(ApiError::not_found_path(path));
            }
            (kind, None, owned(name), Subresource::Main)
        }
        [plural, name, sub] => {
            let kind = resolve(plural)?;
            if kind.namespaced {
                return Err(ApiError::not_found_path(path));
            }
            let sub = subresource(&kind, sub)?;
            (kind, None, owned(name), sub)
        }
        _ => return Err(ApiError::not_found_path(path)),
    };
    Ok(ResourcePath {
        kind,
        version: version.to_string(),
        namespace,
        name,
        subresource: sub,
    })
}
