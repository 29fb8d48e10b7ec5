//! The NC-Link device model, as a device describes itself in `Probe/Query/Response`.
//!
//! The model is a tree (root → devices → components → … with `dataItems` and `configs` at every
//! level). millstream needs three things from it: the name and type of every data item (for
//! people), the component path of each item (for the dashboard's tree), and the sample channels
//! (to turn the rows of a `Sample` message into timestamped values). The raw tree is kept too,
//! so the HTTP API can show it as the device sent it.
//!
//! The model comes from the wire, so building it is bounded ([`WireLimits`]): entries, nesting
//! and text lengths are capped, ids are checked and charged to the device before they are
//! interned, and each component's path is stored once and shared by its items (a path copied
//! into every item let a 1 MiB answer with deep, long-named components allocate gigabytes).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::error::DecodeError;
use super::intern::Interner;
use super::limits::{WireLimits, cut};

use crate::id::Id;

/// One data item (or config) of a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemInfo {
    pub id: Id,
    /// Human name, e.g. `实际速度`.
    pub name: String,
    /// NC-Link type, e.g. `SPEED`, `STATUS`, `VARIABLE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Names of the enclosing components from the device down, joined by `/`
    /// (e.g. `数控机床/X轴/丝杠`).
    pub path: ComponentPath,
    /// NC-Link `dataType` when given (e.g. `LIST`, `HASH`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// NC-Link `number` when given (e.g. `REG_X`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Whether the device accepts `Set/Request` for it.
    pub settable: bool,
    /// True for entries of `configs` (parameters), false for `dataItems`.
    pub config: bool,
}

/// The names of the components enclosing an item, from the device down: one shared node per
/// component, so items share their component's path instead of each holding a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentPath(Option<Arc<PathNode>>);

#[derive(Debug, PartialEq, Eq)]
struct PathNode {
    name: Box<str>,
    parent: ComponentPath,
}

impl ComponentPath {
    /// This path with one more component.
    fn child(&self, name: &str) -> ComponentPath {
        ComponentPath(Some(Arc::new(PathNode {
            name: name.into(),
            parent: self.clone(),
        })))
    }
}

impl fmt::Display for ComponentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        let mut at = &self.0;
        while let Some(node) = at {
            names.push(&*node.name);
            at = &node.parent.0;
        }
        for (i, name) in names.iter().rev().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl Serialize for ComponentPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A `SAMPLE_CHANNEL`: the items a device samples every `sample_interval_ms` and uploads
/// every `upload_interval_ms` as one `Sample/{device}/{channel}` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleChannel {
    pub id: String,
    pub sample_interval_ms: i64,
    pub upload_interval_ms: i64,
    /// Item ids, in the order of the message's rows.
    pub ids: Vec<Id>,
}

/// A device's model: its items and sample channels.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceModel {
    /// Items in tree order.
    pub items: Vec<ItemInfo>,
    pub channels: Vec<SampleChannel>,
    /// The model tree as the device sent it.
    pub tree: Arc<Value>,
    #[serde(skip)]
    index: HashMap<Id, usize>,
}

impl DeviceModel {
    /// Builds the model from the `probe` tree of a `Probe/Query/Response`, within `limits`;
    /// its ids are charged to the device's `ids` first (all or none).
    pub fn from_tree(
        tree: Value,
        limits: &WireLimits,
        ids: &mut Interner,
    ) -> Result<DeviceModel, DecodeError> {
        let mut walk = Walk {
            limits,
            entries: 0,
            items: Vec::new(),
            channels: Vec::new(),
            seen: HashMap::new(),
        };
        let root = tree
            .as_object()
            .ok_or_else(|| DecodeError::wrong_shape("probe model is not a JSON object"))?;
        match root.get("devices") {
            Some(Value::Array(devices)) => {
                for (i, device) in devices.iter().enumerate() {
                    walk.node(device, &ComponentPath::default(), 0, &|| {
                        format!("devices[{i}]")
                    })?;
                }
            }
            Some(_) => {
                return Err(DecodeError::wrong_shape(
                    "probe model: `devices` is not an array",
                ));
            }
            // A model whose root is the device itself.
            None => walk.node(&tree, &ComponentPath::default(), 0, &|| "probe".into())?,
        }
        if walk.items.is_empty() && walk.channels.is_empty() {
            return Err(DecodeError::wrong_shape(
                "probe model declares no data items",
            ));
        }
        let wanted = walk
            .items
            .iter()
            .map(|i| i.id)
            .chain(walk.channels.iter().flat_map(|c| c.ids.iter().copied()));
        ids.intern_all(wanted)?;
        let id = |text: &str| ids.get(text).cloned().expect("interned above");
        let mut items = Vec::with_capacity(walk.items.len());
        let mut index = HashMap::with_capacity(walk.items.len());
        for raw in walk.items {
            let id = id(raw.id);
            index.insert(id.clone(), items.len());
            items.push(ItemInfo {
                id,
                name: raw.name,
                kind: raw.kind,
                path: raw.path,
                data_type: raw.data_type,
                number: raw.number,
                settable: raw.settable,
                config: raw.config,
            });
        }
        let channels = walk
            .channels
            .into_iter()
            .map(|c| SampleChannel {
                id: c.id.to_string(),
                sample_interval_ms: c.sample_interval_ms,
                upload_interval_ms: c.upload_interval_ms,
                ids: c.ids.iter().map(|i| id(i)).collect(),
            })
            .collect();
        Ok(DeviceModel {
            items,
            channels,
            tree: Arc::new(tree),
            index,
        })
    }

    /// A model from the engine's own files (the simulator's model, tests): the default
    /// limits, its ids charged to nobody.
    pub fn from_own_tree(tree: Value) -> Result<DeviceModel, DecodeError> {
        DeviceModel::from_tree(tree, &WireLimits::default(), &mut Interner::default())
    }

    /// The item with this id.
    pub fn item(&self, id: &str) -> Option<&ItemInfo> {
        self.index.get(id).map(|&i| &self.items[i])
    }

    /// The sample channel with this id.
    pub fn channel(&self, id: &str) -> Option<&SampleChannel> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The shared id of an item of this model, to avoid allocating a new one per sample.
    pub fn item_id(&self, id: &str) -> Option<&Id> {
        self.index.get_key_value(id).map(|(k, _)| k)
    }
}

/// An item as found in the tree, before its id is interned.
struct RawItem<'t> {
    id: &'t str,
    name: String,
    kind: String,
    path: ComponentPath,
    data_type: Option<String>,
    number: Option<String>,
    settable: bool,
    config: bool,
}

struct RawChannel<'t> {
    id: &'t str,
    sample_interval_ms: i64,
    upload_interval_ms: i64,
    ids: Vec<&'t str>,
}

/// One pass over the tree, counting what it keeps against the limits.
struct Walk<'t, 'l> {
    limits: &'l WireLimits,
    /// Items, configs and channel ids so far.
    entries: usize,
    items: Vec<RawItem<'t>>,
    channels: Vec<RawChannel<'t>>,
    seen: HashMap<&'t str, ()>,
}

impl<'t> Walk<'t, '_> {
    fn count(&mut self, n: usize) -> Result<(), DecodeError> {
        self.entries = self.entries.saturating_add(n);
        if self.entries > self.limits.model_items {
            return Err(DecodeError::wrong_shape(format!(
                "probe model has more than {} items, configs and channel entries (source.limits.model_items)",
                self.limits.model_items
            )));
        }
        Ok(())
    }

    fn text(&self, value: Option<&Value>) -> Option<String> {
        let text = match value? {
            Value::String(s) => cut(s, self.limits.name_bytes).to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some(text)
    }

    /// Walks one node of the tree (a device or a component) at nesting `depth`; `parent` is
    /// the path of the enclosing components; `at` locates the node for error messages (built
    /// only when one is reported).
    fn node(
        &mut self,
        node: &'t Value,
        parent: &ComponentPath,
        depth: usize,
        at: &dyn Fn() -> String,
    ) -> Result<(), DecodeError> {
        if depth >= self.limits.model_depth {
            return Err(DecodeError::wrong_shape(format!(
                "probe model: components nested deeper than {} (source.limits.model_depth) at {}",
                self.limits.model_depth,
                at()
            )));
        }
        let obj = node.as_object().ok_or_else(|| {
            DecodeError::wrong_shape(format!("probe model: {} is not an object", at()))
        })?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .map(|n| cut(n, self.limits.name_bytes))
            .unwrap_or("");
        let path = if name.is_empty() {
            parent.clone()
        } else {
            parent.child(name)
        };
        if let Some(items) = obj.get("dataItems") {
            for (i, item) in array(items, at, "dataItems")?.iter().enumerate() {
                self.item(item, &path, false, &|| format!("{}.dataItems[{i}]", at()))?;
            }
        }
        if let Some(configs) = obj.get("configs") {
            for (i, config) in array(configs, at, "configs")?.iter().enumerate() {
                let at = || format!("{}.configs[{i}]", at());
                if config.get("type").and_then(Value::as_str) == Some("SAMPLE_CHANNEL") {
                    self.channel(config, &at)?;
                } else {
                    self.item(config, &path, true, &at)?;
                }
            }
        }
        if let Some(components) = obj.get("components") {
            for (i, component) in array(components, at, "components")?.iter().enumerate() {
                self.node(component, &path, depth + 1, &|| {
                    format!("{}.components[{i}]", at())
                })?;
            }
        }
        Ok(())
    }

    fn item(
        &mut self,
        item: &'t Value,
        path: &ComponentPath,
        config: bool,
        at: &dyn Fn() -> String,
    ) -> Result<(), DecodeError> {
        self.count(1)?;
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                DecodeError::wrong_shape(format!("probe model: {} has no string `id`", at()))
            })?;
        if self.seen.insert(id, ()).is_some() {
            return Ok(());
        }
        self.items.push(RawItem {
            id,
            name: self.text(item.get("name")).unwrap_or_default(),
            kind: self.text(item.get("type")).unwrap_or_default(),
            path: path.clone(),
            data_type: self.text(item.get("dataType")),
            number: self.text(item.get("number")),
            settable: item
                .get("settable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            config,
        });
        Ok(())
    }

    fn channel(&mut self, channel: &'t Value, at: &dyn Fn() -> String) -> Result<(), DecodeError> {
        self.count(1)?;
        let id = channel
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                DecodeError::wrong_shape(format!("probe model: {} has no string `id`", at()))
            })?;
        let sample_interval_ms = interval(channel, "sampleInterval", at)?;
        let upload_interval_ms = match channel.get("uploadInterval") {
            None => sample_interval_ms,
            Some(_) => interval(channel, "uploadInterval", at)?,
        };
        let entries = channel
            .get("ids")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                DecodeError::wrong_shape(format!("probe model: {} has no `ids` array", at()))
            })?;
        self.count(entries.len())?;
        let ids = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let id = match entry {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("id").and_then(Value::as_str),
                    _ => None,
                };
                id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    DecodeError::wrong_shape(format!(
                        "probe model: {}.ids[{i}] has no item id",
                        at()
                    ))
                })
            })
            .collect::<Result<Vec<&str>, _>>()?;
        self.channels.push(RawChannel {
            id: cut(id, self.limits.name_bytes),
            sample_interval_ms,
            upload_interval_ms,
            ids,
        });
        Ok(())
    }
}

fn array<'v>(
    value: &'v Value,
    at: &dyn Fn() -> String,
    key: &str,
) -> Result<&'v Vec<Value>, DecodeError> {
    value.as_array().ok_or_else(|| {
        DecodeError::wrong_shape(format!("probe model: {}.{key} is not an array", at()))
    })
}

/// Longest sample or upload interval accepted: a day.
const MAX_INTERVAL_MS: i64 = 86_400_000;

/// A positive interval in ms, given as a number or a numeric string.
fn interval(channel: &Value, key: &str, at: &dyn Fn() -> String) -> Result<i64, DecodeError> {
    let ms = match channel.get(key) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    ms.filter(|&ms| ms > 0 && ms <= MAX_INTERVAL_MS)
        .ok_or_else(|| {
            DecodeError::wrong_shape(format!(
                "probe model: {}.{key} is not a number of ms from 1 to {MAX_INTERVAL_MS}",
                at()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(tree: Value) -> Result<DeviceModel, DecodeError> {
        DeviceModel::from_own_tree(tree)
    }

    fn lab_model() -> DeviceModel {
        let text = include_str!("../../data/nc-link/lab-model.json");
        build(serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn reads_the_lab_model() {
        let model = lab_model();
        let speed = model.item("0103502202").unwrap();
        assert_eq!(speed.name, "实际速度");
        assert_eq!(speed.kind, "SPEED");
        assert_eq!(speed.path.to_string(), "数控机床/X轴/丝杠");
        let status = model.item("010302").unwrap();
        assert_eq!(
            (status.name.as_str(), status.kind.as_str()),
            ("机床状态", "STATUS")
        );
        let reg = model.item("01035430").unwrap();
        assert!(reg.settable);
        assert_eq!(reg.data_type.as_deref(), Some("LIST"));
        assert_eq!(reg.number.as_deref(), Some("REG_X"));
        let tool = model.item("01035404").unwrap();
        assert!(tool.config);
        let channel = model.channel("sample_channel0").unwrap();
        assert_eq!(channel.sample_interval_ms, 2000);
        assert_eq!(channel.upload_interval_ms, 2000);
        let ids: Vec<&str> = channel.ids.iter().map(|s| &**s).collect();
        assert_eq!(ids, ["010302", "010307", "01035409"]);
        // 5 machine items + 4 axes (3 axis configs each) + the controller's items and configs.
        assert!(model.items.len() > 60, "{}", model.items.len());
    }

    #[test]
    fn refuses_broken_channels() {
        let bad = serde_json::json!({"devices":[{"configs":[
            {"id":"c0","type":"SAMPLE_CHANNEL","sampleInterval":0,"ids":[{"id":"x"}]}]}]});
        assert!(build(bad).unwrap_err().detail.contains("sampleInterval"));
        let bad = serde_json::json!({"devices":[{"configs":[
            {"id":"c0","type":"SAMPLE_CHANNEL","sampleInterval":"10","ids":[{"name":"x"}]}]}]});
        assert!(build(bad).unwrap_err().detail.contains("ids[0]"));
        assert!(build(serde_json::json!([1])).is_err());
        assert!(build(serde_json::json!({"devices":[]})).is_err());
    }

    #[test]
    fn accepts_string_intervals_and_bare_ids() {
        let model = build(serde_json::json!({"devices":[{"configs":[
            {"id":"c0","type":"SAMPLE_CHANNEL","sampleInterval":"10","ids":["a","b"]}]}]}))
        .unwrap();
        let c = model.channel("c0").unwrap();
        assert_eq!((c.sample_interval_ms, c.upload_interval_ms), (10, 10));
        assert_eq!(c.ids.len(), 2);
    }

    #[test]
    fn a_model_bomb_is_refused_or_bounded() {
        // Components nested past the limit.
        let mut deep = serde_json::json!({"dataItems":[{"id":"x"}]});
        for _ in 0..40 {
            deep = serde_json::json!({"name":"c","components":[deep]});
        }
        let e = build(serde_json::json!({"devices":[deep]})).unwrap_err();
        assert!(e.detail.contains("model_depth"), "{e}");
        // Too many entries.
        let items: Vec<Value> = (0..10_001)
            .map(|i| serde_json::json!({"id": format!("i{i}")}))
            .collect();
        let e = build(serde_json::json!({"devices":[{"dataItems": items}]})).unwrap_err();
        assert!(e.detail.contains("model_items"), "{e}");
        // Long names are cut; a component's path is one shared node, not a copy per item.
        let long = "名".repeat(10_000);
        let items: Vec<Value> = (0..50)
            .map(|i| serde_json::json!({"id": format!("i{i}"), "name": long}))
            .collect();
        let model = build(serde_json::json!({"devices":[{"name": long, "components":[
            {"name": long, "dataItems": items}]}]}))
        .unwrap();
        assert!(model.items[0].name.len() <= 256);
        let path = model.items[0].path.to_string();
        assert!(
            path.len() <= 2 * 256 + 1 && path.contains('/'),
            "{}",
            path.len()
        );
        let (ComponentPath(Some(a)), ComponentPath(Some(b))) =
            (&model.items[0].path, &model.items[49].path)
        else {
            panic!("paths")
        };
        assert!(Arc::ptr_eq(a, b), "items share their component's path");
        // Ids are checked before anything is interned.
        let e = build(serde_json::json!({"devices":[{"dataItems":[{"id": "x".repeat(65)}]}]}))
            .unwrap_err();
        assert!(e.detail.contains("longer than 64"), "{e}");
        let e = build(serde_json::json!({"devices":[{"configs":[
            {"id":"c0","type":"SAMPLE_CHANNEL","sampleInterval":1e18,"ids":["a"]}]}]}))
        .unwrap_err();
        assert!(e.detail.contains("sampleInterval"), "{e}");
    }
}
