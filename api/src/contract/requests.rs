//! Two facts of what a request may carry that the derived schemas miss,
//! written into the parameters and the schemas request bodies reach.
//!
//! - utoipa writes every unsigned integer up to 32 bits as `format: int32,
//!   minimum: 0`, which tells a client (and the fuzzer) that a `u32` ends
//!   at 2,147,483,647; the server takes up to 4,294,967,295. An integer of
//!   that shape with no `maximum` of its own is a `u32` (the `u8` and `u16`
//!   fields all state theirs, which the contract test holds them to): it
//!   becomes `format: int64, maximum: 4294967295`.
//! - No text in a body may hold U+0000, which PostgreSQL can store neither
//!   in `text` nor in `jsonb` (`ApiJson` refuses it, naming the field): a
//!   body's string with no pattern, format or enum of its own gets the
//!   pattern `^[^\u0000]*$`.

use std::collections::BTreeSet;

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Object, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Number;

use super::operations;

/// What a body's text may not hold.
const NO_NUL: &str = r"^[^\u0000]*$";

/// Widens the `u32`s of every request, and keeps U+0000 out of its bodies' texts.
pub(super) fn requests(openapi: &mut OpenApi) {
    let mut reached = BTreeSet::new();
    for item in openapi.paths.paths.values_mut() {
        for op in operations(item) {
            for param in op.parameters.iter_mut().flatten() {
                if let RefOr::T(param) = param {
                    if let Some(schema) = param.schema.as_mut() {
                        walk(schema, &mut reached, false);
                    }
                }
            }
            if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                for content in body.content.values_mut() {
                    let RefOr::T(content) = content else { continue };
                    if let Some(schema) = content.schema.as_mut() {
                        walk(schema, &mut reached, true);
                    }
                }
            }
        }
    }
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    // Components reach others: widen until no new one is reached.
    let mut done = BTreeSet::new();
    while let Some(name) = reached.iter().find(|n| !done.contains(*n)).cloned() {
        done.insert(name.clone());
        if let Some(schema) = components.schemas.get_mut(&name) {
            walk(schema, &mut reached, true);
        }
    }
}

/// Widens `schema` and what it holds inline (and, in a `body`, keeps
/// U+0000 out of its texts); names the components it refers to.
fn walk(schema: &mut RefOr<Schema>, reached: &mut BTreeSet<String>, body: bool) {
    let schema = match schema {
        RefOr::Ref(r) => {
            if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                reached.insert(name.to_string());
            }
            return;
        }
        RefOr::T(schema) => schema,
    };
    match schema {
        Schema::Object(object) => {
            widen(object);
            if body {
                no_nul(object);
            }
            for property in object.properties.values_mut() {
                walk(property, reached, body);
            }
            if let Some(AdditionalProperties::RefOr(extra)) =
                object.additional_properties.as_deref_mut()
            {
                walk(extra, reached, body);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                walk(items, reached, body);
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(|s| walk(s, reached, body)),
        Schema::AllOf(all) => all.items.iter_mut().for_each(|s| walk(s, reached, body)),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(|s| walk(s, reached, body)),
        _ => {}
    }
}

fn widen(object: &mut Object) {
    let integer = match &object.schema_type {
        SchemaType::Type(t) => *t == Type::Integer,
        SchemaType::Array(ts) => ts.contains(&Type::Integer),
        SchemaType::AnyValue => false,
    };
    let int32 = matches!(
        object.format,
        Some(SchemaFormat::KnownFormat(KnownFormat::Int32))
    );
    let unsigned = match object.minimum {
        Some(Number::Int(m)) => m >= 0,
        Some(Number::UInt(_)) => true,
        Some(Number::Float(m)) => m >= 0.0,
        None => false,
    };
    if integer && int32 && unsigned && object.maximum.is_none() {
        object.format = Some(SchemaFormat::KnownFormat(KnownFormat::Int64));
        object.maximum = Some(Number::UInt(u32::MAX as usize));
    }
}

fn no_nul(object: &mut Object) {
    let text = match &object.schema_type {
        SchemaType::Type(t) => *t == Type::String,
        SchemaType::Array(ts) => ts.contains(&Type::String),
        SchemaType::AnyValue => false,
    };
    if text && object.pattern.is_none() && object.format.is_none() && object.enum_values.is_none() {
        object.pattern = Some(NO_NUL.to_string());
    }
}
