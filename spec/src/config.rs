use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Digest, Timestamp};

/// The only `architecture` the layout allows.
pub const WASM_ARCHITECTURE: &str = "wasm";

/// The config blob of a Wasm artifact (`application/vnd.wasm.config.v0+json`).
///
/// Reading is tolerant: `null` and a missing key mean the same thing, unknown keys are
/// ignored, and `os` is compared case-insensitively (Spin writes `Wasip1`). Writing omits
/// absent fields and keeps the field order of the spec's example, so the bytes are
/// deterministic. Whether the values are *right* is [`crate::validate()`]'s business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// When the artifact was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Who made it, free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    /// `wasip1` for core modules, `wasip2` for components.
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: Os,
    /// The digests of the manifest's layers, in order: makes the config digest (the image
    /// ID) unique per content.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layer_digests: Vec<Digest>,
    /// Present if and only if the layer is a component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentSection>,
}

/// The `component` section of the config: what the component imports and exports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComponentSection {
    /// Exported interfaces (`ns:pkg/iface@version`) and freestanding functions, in the
    /// component's order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub exports: Vec<String>,
    /// Imported interfaces and functions, in the component's order, every version kept.
    #[serde(default, deserialize_with = "null_as_default")]
    pub imports: Vec<String>,
    /// The world the component was built for (`wasi:http/proxy@0.2.0`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The config's `os`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Os {
    /// A core module (WASI preview 1, or no WASI at all).
    Wasip1,
    /// A component (WASI 0.2).
    Wasip2,
    /// Anything else, kept verbatim so validation can name it.
    Other(String),
    /// Absent or `null`.
    #[default]
    Missing,
}

impl Os {
    /// Reads `text` case-insensitively.
    pub fn from_text(text: &str) -> Self {
        if text.eq_ignore_ascii_case("wasip1") {
            Os::Wasip1
        } else if text.eq_ignore_ascii_case("wasip2") {
            Os::Wasip2
        } else {
            Os::Other(text.to_owned())
        }
    }

    /// The canonical text: `wasip1`, `wasip2`, the unknown value, or `` for missing.
    pub fn as_str(&self) -> &str {
        match self {
            Os::Wasip1 => "wasip1",
            Os::Wasip2 => "wasip2",
            Os::Other(text) => text,
            Os::Missing => "",
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Os {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Os::Missing => serializer.serialize_none(),
            other => serializer.serialize_str(other.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Os {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        Ok(text.map_or(Os::Missing, |t| Os::from_text(&t)))
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl WasmConfig {
    /// Parses config bytes.
    pub fn from_json(bytes: &[u8]) -> crate::Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| crate::Error::Json {
            document: "config",
            reason: e.to_string(),
        })
    }

    /// The canonical, compact serialization.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a config always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_missing_are_the_same() {
        let with_nulls = br#"{"created":"2024-01-01T00:00:00Z","author":null,"architecture":"wasm","os":"wasip2","layerDigests":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],"component":{"exports":[],"imports":["a:b/c@1.0.0"],"target":null}}"#;
        let without = br#"{"created":"2024-01-01T00:00:00Z","architecture":"wasm","os":"wasip2","layerDigests":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],"component":{"imports":["a:b/c@1.0.0"]}}"#;
        let a = WasmConfig::from_json(with_nulls).unwrap();
        let b = WasmConfig::from_json(without).unwrap();
        assert_eq!(a, b);
        // Written back without the absent fields, in the spec's field order.
        assert_eq!(
            String::from_utf8(a.to_json()).unwrap(),
            r#"{"created":"2024-01-01T00:00:00Z","architecture":"wasm","os":"wasip2","layerDigests":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],"component":{"exports":[],"imports":["a:b/c@1.0.0"]}}"#
        );
    }

    #[test]
    fn os_is_case_insensitive() {
        let c = WasmConfig::from_json(br#"{"os":"Wasip1","architecture":null}"#).unwrap();
        assert_eq!(c.os, Os::Wasip1);
        assert_eq!(c.architecture, "");
        let c = WasmConfig::from_json(br#"{"os":"linux"}"#).unwrap();
        assert_eq!(c.os, Os::Other("linux".into()));
        let c = WasmConfig::from_json(br#"{"os":null}"#).unwrap();
        assert_eq!(c.os, Os::Missing);
    }

    #[test]
    fn bad_json_names_the_document() {
        let err = WasmConfig::from_json(b"{").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to parse the config as JSON")
        );
    }
}
