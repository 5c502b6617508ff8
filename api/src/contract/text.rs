//! Text rules as patterns and formats, exactly as the server checks them.

use utoipa::openapi::schema::{Object, Type};

/// Characters Rust's `char::is_whitespace` calls blank (Unicode's
/// White_Space), less the controls among them, as a class body.
const BLANKS: &str = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Characters `char::is_control` refuses (Unicode's Cc), as a class body.
const CONTROLS: &str = r"\u0000-\u001f\u007f-\u009f";

/// The pattern of a text the server trims (`str::trim`) and then takes
/// when it has `min..=max` characters, none a control. Written with
/// explicit classes, not `\s` or `\w`, which Python's and ECMAScript's
/// engines (the fuzzer's and a browser's) read differently from Rust.
pub fn trimmed_text_pattern(min: usize, max: usize) -> String {
    assert!(min >= 1 && max >= min.max(2));
    let trim = format!(r"[\t\n\u000b\f\r\u0085{BLANKS}]*");
    let edge = format!("[^{BLANKS}{CONTROLS}]");
    let inner = format!("[^{CONTROLS}]");
    let middle = format!("{inner}{{{},{}}}{edge}", min.saturating_sub(2), max - 2);
    let body = if min == 1 {
        format!("{edge}(?:{middle})?")
    } else {
        format!("{edge}{middle}")
    };
    format!("^{trim}{body}{trim}$")
}

/// A text with at least one character that is not blank
/// (`!text.trim().is_empty()`), of at most `max` characters, without
/// U+0000 (which no body may hold).
pub fn not_blank(max: usize) -> Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            r"^[^\u0000]*[^\u0000\t\n\u000b\f\r\u0085{BLANKS}][^\u0000]*$"
        )))
        .max_length(Some(max))
        .build()
}

/// A string schema for [`trimmed_text_pattern`].
pub fn trimmed_text(min: usize, max: usize) -> Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(trimmed_text_pattern(min, max)))
        .build()
}

/// The same, `null` allowed.
pub fn nullable_trimmed_text(min: usize, max: usize) -> Object {
    nullable(trimmed_text(min, max))
}

/// An e-mail address as the server takes one: `format: email`, at most
/// 254 characters (the server also takes a wider, non-ASCII shape).
pub fn email() -> Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::schema::SchemaFormat::Custom(
            "email".into(),
        )))
        .max_length(Some(254))
        .build()
}

/// The same, `null` allowed.
pub fn nullable_email() -> Object {
    nullable(email())
}

/// A country's name or code as the grid filters on (`Country::new`).
pub fn country_name() -> Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(marketplace_domain::deployment::COUNTRY_PATTERN))
        .build()
}

/// The same, `null` allowed.
pub fn nullable_country_name() -> Object {
    nullable(country_name())
}

/// `schema`, also allowing `null`.
pub fn nullable(mut schema: Object) -> Object {
    let mut types: Vec<Type> = match &schema.schema_type {
        utoipa::openapi::schema::SchemaType::Type(t) => vec![t.clone()],
        utoipa::openapi::schema::SchemaType::Array(ts) => ts.clone(),
        utoipa::openapi::schema::SchemaType::AnyValue => return schema,
    };
    if !types.contains(&Type::Null) {
        types.push(Type::Null);
    }
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter(types);
    schema
}
