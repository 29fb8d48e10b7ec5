//! The NC-Link device model, as a device describes itself in `Probe/Query/Response`.
//!
//! The model is a tree (root → devices → components → … with `dataItems` and `configs` at every
//! level). millstream needs three things from it: the name and type of every data item (for
//! people), the component path of each item (for the dashboard's tree), and the sample channels
//! (to turn the rows of a `Sample` message into timestamped values). The raw tree is kept too,
//! so the HTTP API can show it as the device sent it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::error::DecodeError;

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
    pub path: String,
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
    /// Builds the model from the `probe` tree of a `Probe/Query/Response`.
    pub fn from_tree(tree: Value) -> Result<DeviceModel, DecodeError> {
        let mut builder = Builder::default();
        let root = tree
            .as_object()
            .ok_or_else(|| DecodeError::wrong_shape("probe model is not a JSON object"))?;
        match root.get("devices") {
            Some(Value::Array(devices)) => {
                for (i, device) in devices.iter().enumerate() {
                    builder.node(device, &[], &format!("devices[{i}]"))?;
                }
            }
            Some(_) => {
                return Err(DecodeError::wrong_shape(
                    "probe model: `devices` is not an array",
                ));
            }
            // A model whose root is the device itself.
            None => builder.node(&tree, &[], "probe")?,
        }
        if builder.items.is_empty() && builder.channels.is_empty() {
            return Err(DecodeError::wrong_shape(
                "probe model declares no data items",
            ));
        }
        Ok(DeviceModel {
            items: builder.items,
            channels: builder.channels,
            tree: Arc::new(tree),
            index: builder.index,
        })
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

#[derive(Default)]
struct Builder {
    items: Vec<ItemInfo>,
    channels: Vec<SampleChannel>,
    index: HashMap<Id, usize>,
}

impl Builder {
    /// Walks one node of the tree (a device or a component). `names` are the names of the
    /// enclosing nodes including this one's parents; `at` locates the node for error messages.
    fn node(&mut self, node: &Value, names: &[&str], at: &str) -> Result<(), DecodeError> {
        let obj = node.as_object().ok_or_else(|| {
            DecodeError::wrong_shape(format!("probe model: {at} is not an object"))
        })?;
        let name = obj.get("name").and_then(Value::as_str).unwrap_or("");
        let mut path: Vec<&str> = names.to_vec();
        if !name.is_empty() {
            path.push(name);
        }
        if let Some(items) = obj.get("dataItems") {
            for (i, item) in array(items, at, "dataItems")?.iter().enumerate() {
                self.item(item, &path, false, &format!("{at}.dataItems[{i}]"))?;
            }
        }
        if let Some(configs) = obj.get("configs") {
            for (i, config) in array(configs, at, "configs")?.iter().enumerate() {
                let at = format!("{at}.configs[{i}]");
                if config.get("type").and_then(Value::as_str) == Some("SAMPLE_CHANNEL") {
                    self.channel(config, &at)?;
                } else {
                    self.item(config, &path, true, &at)?;
                }
            }
        }
        if let Some(components) = obj.get("components") {
            for (i, component) in array(components, at, "components")?.iter().enumerate() {
                self.node(component, &path, &format!("{at}.components[{i}]"))?;
            }
        }
        Ok(())
    }

    fn item(
        &mut self,
        item: &Value,
        path: &[&str],
        config: bool,
        at: &str,
    ) -> Result<(), DecodeError> {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                DecodeError::wrong_shape(format!("probe model: {at} has no string `id`"))
            })?;
        if self.index.contains_key(id) {
            return Ok(());
        }
        let text = |key: &str| item.get(key).and_then(scalar_text);
        let id = super::intern::intern(id)?;
        self.index.insert(id.clone(), self.items.len());
        self.items.push(ItemInfo {
            id,
            name: text("name").unwrap_or_default(),
            kind: text("type").unwrap_or_default(),
            path: path.join("/"),
            data_type: text("dataType"),
            number: text("number"),
            settable: item
                .get("settable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            config,
        });
        Ok(())
    }

    fn channel(&mut self, channel: &Value, at: &str) -> Result<(), DecodeError> {
        let id = channel
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                DecodeError::wrong_shape(format!("probe model: {at} has no string `id`"))
            })?;
        let sample_interval_ms = interval(channel, "sampleInterval", at)?;
        let upload_interval_ms = match channel.get("uploadInterval") {
            None => sample_interval_ms,
            Some(_) => interval(channel, "uploadInterval", at)?,
        };
        let ids = channel
            .get("ids")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                DecodeError::wrong_shape(format!("probe model: {at} has no `ids` array"))
            })?;
        let ids = ids
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let id = match entry {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("id").and_then(Value::as_str),
                    _ => None,
                };
                let id = id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    DecodeError::wrong_shape(format!("probe model: {at}.ids[{i}] has no item id"))
                })?;
                super::intern::intern(id)
            })
            .collect::<Result<Vec<Id>, _>>()?;
        self.channels.push(SampleChannel {
            id: id.to_string(),
            sample_interval_ms,
            upload_interval_ms,
            ids,
        });
        Ok(())
    }
}

fn array<'v>(value: &'v Value, at: &str, key: &str) -> Result<&'v Vec<Value>, DecodeError> {
    value
        .as_array()
        .ok_or_else(|| DecodeError::wrong_shape(format!("probe model: {at}.{key} is not an array")))
}

/// A positive interval in ms, given as a number or a numeric string.
fn interval(channel: &Value, key: &str, at: &str) -> Result<i64, DecodeError> {
    let ms = match channel.get(key) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    ms.filter(|&ms| ms > 0).ok_or_else(|| {
        DecodeError::wrong_shape(format!(
            "probe model: {at}.{key} is not a positive number of ms"
        ))
    })
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_model() -> DeviceModel {
        let text = include_str!("../../data/nc-link/lab-model.json");
        DeviceModel::from_tree(serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn reads_the_lab_model() {
        let model = lab_model();
        let speed = model.item("0103502202").unwrap();
        assert_eq!(speed.name, "实际速度");
        assert_eq!(speed.kind, "SPEED");
        assert_eq!(speed.path, "数控机床/X轴/丝杠");
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
        assert!(
            DeviceModel::from_tree(bad)
                .unwrap_err()
                .detail
                .contains("sampleInterval")
        );
        let bad = serde_json::json!({"devices":[{"configs":[
            {"id":"c0","type":"SAMPLE_CHANNEL","sampleInterval":"10","ids":[{"name":"x"}]}]}]});
        assert!(
            DeviceModel::from_tree(bad)
                .unwrap_err()
                .detail
                .contains("ids[0]")
        );
        assert!(DeviceModel::from_tree(serde_json::json!([1])).is_err());
        assert!(DeviceModel::from_tree(serde_json::json!({"devices":[]})).is_err());
    }

    #[test]
    fn accepts_string_intervals_and_bare_ids() {
        let model = DeviceModel::from_tree(serde_json::json!({"devices":[{"configs":[
            {"id":"c0","type":"SAMPLE_CHANNEL","sampleInterval":"10","ids":["a","b"]}]}]}))
        .unwrap();
        let c = model.channel("c0").unwrap();
        assert_eq!((c.sample_interval_ms, c.upload_interval_ms), (10, 10));
        assert_eq!(c.ids.len(), 2);
    }
}
