//! Renders objects, lists and watch events in the negotiated representation: the objects
//! themselves, a `meta.k8s.io/v1` Table (`kubectl get`), or `PartialObjectMetadata`
//! (metadata-only clients such as the garbage collector).

use serde_json::{Value, json};

use super::negotiate::Representation;
use super::request::IncludeObject;
use super::resource::ResourceDef;

/// List metadata: the snapshot revision and the continue token.
fn list_meta(revision: u64, continue_token: Option<&str>) -> Value {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    meta
}

/// The `PartialObjectMetadata` of an object.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The Table column definitions: `Name`, the kind's columns, `Age`.
pub fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    let mut cols = vec![json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0,
    })];
    cols.extend(def.columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": "", "description": c.description, "priority": c.priority})
    }));
    cols.push(json!({
        "name": "Age", "type": "date", "format": "",
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
        "priority": 0,
    }));
    cols
}

/// A duration in seconds the way `kubectl` shows ages: `45s`, `3m20s`, `5h`, `12d`, `2y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    let (d, y) = (h / 24, h / (24 * 365));
    let with_rest = |big: i64, unit: &str, rest: i64, rest_unit: &str| {
        if rest == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{rest}{rest_unit}")
        }
    };
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => with_rest(m, "m", s % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => with_rest(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => with_rest(d, "d", h % 24, "h"),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => with_rest(y, "y", d % 365, "d"),
        _ => format!("{y}y"),
    }
}

/// A `date` cell: the age of the timestamp, as the server renders CRD printer columns.
fn age_cell(value: &Value) -> Value {
    let Some(ts) = value
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return json!("<unknown>");
    };
    let seconds = jiff::Timestamp::now().as_second() - ts.as_second();
    json!(human_duration(seconds))
}

/// One Table row.
fn row(def: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let meta = obj.get("metadata");
    let mut cells = vec![
        meta.and_then(|m| m.get("name"))
            .cloned()
            .unwrap_or(Value::Null),
    ];
    let mut kind_cells = def.strategy.cells(obj);
    kind_cells.resize(def.columns.len(), Value::Null);
    for (cell, column) in kind_cells.iter_mut().zip(&def.columns) {
        if column.type_ == "date" {
            *cell = age_cell(cell);
        }
    }
    cells.extend(kind_cells);
    cells.push(age_cell(
        meta.and_then(|m| m.get("creationTimestamp"))
            .unwrap_or(&Value::Null),
    ));
    let mut row = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial(obj),
        IncludeObject::Object => row["object"] = obj.clone(),
    }
    row
}

/// A Table of `items`; column definitions are left out when `with_columns` is false
/// (watch events after the first).
pub fn table(
    def: &ResourceDef,
    items: &[Value],
    include: IncludeObject,
    revision: u64,
    continue_token: Option<&str>,
    with_columns: bool,
) -> Value {
    let columns = if with_columns {
        column_definitions(def)
    } else {
        Vec::new()
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta(revision, continue_token),
        "columnDefinitions": columns,
        "rows": items.iter().map(|o| row(def, o, include)).collect::<Vec<_>>(),
    })
}

/// A single object in `repr`.
pub fn object(
    def: &ResourceDef,
    obj: Value,
    repr: Representation,
    include: IncludeObject,
) -> Value {
    match repr {
        Representation::Object => obj,
        Representation::Metadata => partial(&obj),
        Representation::Table => {
            let revision = obj
                .get("metadata")
                .and_then(|m| m.get("resourceVersion"))
                .and_then(Value::as_str)
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            table(
                def,
                std::slice::from_ref(&obj),
                include,
                revision,
                None,
                true,
            )
        }
    }
}

/// A list in `repr`.
pub fn list(
    def: &ResourceDef,
    mut items: Vec<Value>,
    revision: u64,
    continue_token: Option<&str>,
    repr: Representation,
    include: IncludeObject,
) -> Value {
    for item in &mut items {
        def.present(item);
    }
    match repr {
        Representation::Object => json!({
            "apiVersion": def.api_version(),
            "kind": def.list_kind(),
            "metadata": list_meta(revision, continue_token),
            "items": items,
        }),
        Representation::Metadata => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": list_meta(revision, continue_token),
            "items": items.iter().map(partial).collect::<Vec<_>>(),
        }),
        Representation::Table => table(def, &items, include, revision, continue_token, true),
    }
}

/// The `Status` returned by a delete that removed the object at once.
pub fn delete_success(def: &ResourceDef, obj: &Value) -> Value {
    let meta = obj.get("metadata");
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": meta.and_then(|m| m.get("name")).cloned().unwrap_or(Value::Null),
            "group": def.group,
            "kind": def.plural,
            "uid": meta.and_then(|m| m.get("uid")).cloned().unwrap_or(Value::Null),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(-5), "<invalid>");
        assert_eq!(human_duration(-1), "0s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 60), "4h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
        assert_eq!(human_duration(3 * 365 * 86400 + 86400), "3y1d");
        assert_eq!(human_duration(10 * 365 * 86400), "10y");
    }

    #[test]
    fn missing_dates_are_unknown() {
        assert_eq!(age_cell(&Value::Null), json!("<unknown>"));
        assert_eq!(
            age_cell(&json!("2000-01-01T00:00:00Z")),
            json!(human_duration(
                jiff::Timestamp::now().as_second() - 946_684_800
            ))
        );
    }
}
