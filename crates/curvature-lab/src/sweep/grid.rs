//! The grid of a sweep: setting a configuration key to an axis value (tables included),
//! overriding an axis from the command line, and the labels of values in directory names and
//! tables.

use super::*;

/// `base` with `key` set to `value` (any [`TrainConfig`] key). A table value sets several
/// keys together — one grid point of unequal settings, e.g. SGD and Gadam each with its own
/// learning rate: `optimizer = [{ optimizer = "sgd", lr = 0.05 }, { optimizer = "gadam",
/// lr = 0.003 }]`; its optional `name` entry only labels the point (see [`label`]).
///
/// # Errors
/// Unknown keys and ill-typed values.
pub fn with_key(base: &TrainConfig, key: &str, value: &serde_json::Value) -> Result<TrainConfig> {
    let mut json = serde_json::to_value(base).expect("serialisable");
    match value {
        serde_json::Value::Object(keys) => {
            for (k, v) in keys.iter().filter(|(k, _)| k.as_str() != "name") {
                json[k] = v.clone();
            }
        }
        v => json[key] = v.clone(),
    }
    serde_json::from_value(json).map_err(|e| LabError::GridValue {
        key: key.to_string(),
        value: value.to_string(),
        message: if e.to_string().contains("unknown field") {
            format!("unknown configuration key ({e})")
        } else {
            e.to_string()
        },
    })
}

/// Set grid axis `key` of `axes` to `given` (`--grid KEY=V1,V2,…`), adding the axis if it is
/// new. A given value that is the label (see [`label`]) of one of the axis' table values
/// selects that value with all its settings — `--grid run=kfac-auto` runs the preset's
/// `{ name = "kfac-auto", optimizer = "kfac", damping = "auto", … }` entry; any other value
/// replaces the axis' values as it is.
///
/// # Errors
/// A value that names none of the axis' table values when `key` is not a configuration key
/// (so that it could only have named an entry); the error lists the entries.
pub fn override_axis(
    axes: &mut Vec<(String, Vec<serde_json::Value>)>,
    base: &TrainConfig,
    key: &str,
    given: Vec<serde_json::Value>,
) -> Result<()> {
    let Some(axis) = axes.iter_mut().find(|(k, _)| k == key) else {
        axes.push((key.to_string(), given));
        return Ok(());
    };
    let entries: Vec<&serde_json::Value> = axis.1.iter().filter(|v| v.is_object()).collect();
    let is_config_key = serde_json::to_value(base)
        .expect("serialisable")
        .get(key)
        .is_some();
    let values = given
        .into_iter()
        .map(|value| {
            let name = label(key, &value);
            match entries.iter().find(|e| label(key, e) == name) {
                Some(entry) => Ok((*entry).clone()),
                None if is_config_key || entries.is_empty() => Ok(value),
                None => Err(LabError::GridValue {
                    key: key.to_string(),
                    value: value.to_string(),
                    message: format!(
                        "names none of the axis' entries ({})",
                        entries
                            .iter()
                            .map(|e| label(key, e))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    axis.1 = values;
    Ok(())
}

/// How a value of grid axis `key` is written in directory names and tables: a table value by
/// its `name` entry, else its entry for `key`, else all its entries.
pub fn label(key: &str, v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => match m.get("name").or_else(|| m.get(key)) {
            Some(own) => label(key, own),
            None => m
                .iter()
                .map(|(k, x)| format!("{k}={}", label(k, x)))
                .collect::<Vec<_>>()
                .join(";"),
        },
        other => other.to_string(),
    }
}
