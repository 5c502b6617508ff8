//! The INDEXER SIMULATOR's GraphQL side: `where` filters, ordering and
//! paging over the entity tables, the dynamic schema built from
//! [`ENTITIES`](super::ENTITIES), and the `POST /graphql` handler.

use super::*;

/// A parsed `where`.
#[derive(Debug, Default)]
struct Filter {
    conditions: Vec<Condition>,
    and: Vec<Filter>,
    or: Vec<Filter>,
}

#[derive(Debug)]
enum Condition {
    Compare {
        field: &'static str,
        op: Op,
        value: Cell,
    },
    In {
        field: &'static str,
        values: Vec<Cell>,
    },
    IsNull {
        field: &'static str,
        null: bool,
    },
    Nested {
        field: &'static str,
        filter: Filter,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// The comparison suffixes, longest first where one ends another.
const OPS: &[(&str, Op)] = &[
    ("_not_eq", Op::NotEq),
    ("_eq", Op::Eq),
    ("_gte", Op::Gte),
    ("_gt", Op::Gt),
    ("_lte", Op::Lte),
    ("_lt", Op::Lt),
];

impl Filter {
    fn matches(&self, row: &Row) -> bool {
        let own = !self.conditions.is_empty() || !self.and.is_empty();
        let all = self.conditions.iter().all(|c| c.matches(row))
            && self.and.iter().all(|f| f.matches(row));
        if self.or.is_empty() {
            return all;
        }
        let any = self.or.iter().any(|f| f.matches(row));
        if own {
            all || any
        } else {
            any
        }
    }
}

impl Condition {
    fn matches(&self, row: &Row) -> bool {
        let cell = |field: &str| row.get(field).unwrap_or(&Cell::Null);
        match self {
            Condition::Compare { field, op, value } => {
                let cell = cell(field);
                if *cell == Cell::Null {
                    return false;
                }
                let order = cell.compare(value);
                match op {
                    Op::Eq => order == Ordering::Equal,
                    Op::NotEq => order != Ordering::Equal,
                    Op::Gt => order == Ordering::Greater,
                    Op::Gte => order != Ordering::Less,
                    Op::Lt => order == Ordering::Less,
                    Op::Lte => order != Ordering::Greater,
                }
            }
            Condition::In { field, values } => values.contains(cell(field)),
            Condition::IsNull { field, null } => (*cell(field) == Cell::Null) == *null,
            Condition::Nested { field, filter } => match cell(field) {
                Cell::Object(inner) => filter.matches(inner),
                _ => false,
            },
        }
    }
}

fn bad(message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message)
}

/// A filter or argument value as a cell of `kind`.
fn cell_of(kind: Kind, value: &ValueAccessor<'_>) -> async_graphql::Result<Cell> {
    let raw = value.as_value();
    let cell = match (kind, raw) {
        (Kind::Int | Kind::BigInt, Value::Number(n)) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .map(Cell::Num),
        (Kind::BigInt, Value::String(s)) => s.parse().ok().map(Cell::Num),
        (Kind::Usd, Value::String(s)) => usd_to_musd(s).map(|m| Cell::Num(i128::from(m))),
        (Kind::Id | Kind::Text, Value::String(s)) => Some(Cell::Text(s.clone())),
        (Kind::Enum(name), _) => {
            let allowed = ENUMS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, v)| *v);
            value
                .enum_name()
                .ok()
                .and_then(|v| enum_value(allowed, v))
                .map(Cell::Enum)
        }
        _ => None,
    };
    cell.ok_or_else(|| bad(format!("{raw} is not a valid {}", kind.type_name())))
}

fn parse_filter(def: &EntityDef, input: &ObjectAccessor<'_>) -> async_graphql::Result<Filter> {
    let mut filter = Filter::default();
    for (key, value) in input.iter() {
        if value.is_null() {
            continue;
        }
        let key = key.as_str();
        if key == "AND" || key == "OR" {
            let list = value.list()?;
            let parsed = list
                .iter()
                .map(|item| parse_filter(def, &item.object()?))
                .collect::<async_graphql::Result<Vec<_>>>()?;
            if key == "AND" {
                filter.and.extend(parsed);
            } else {
                filter.or.extend(parsed);
            }
            continue;
        }
        let known = |name: &str| {
            def.fields
                .iter()
                .find(|f| f.name == name)
                .ok_or_else(|| bad(format!("{} has no field {name}", def.name)))
        };
        let condition = if let Some(name) = key.strip_suffix("_in") {
            let field = known(name)?;
            let values = value
                .list()?
                .iter()
                .map(|v| cell_of(field.kind, &v))
                .collect::<async_graphql::Result<Vec<_>>>()?;
            Condition::In {
                field: field.name,
                values,
            }
        } else if let Some(name) = key.strip_suffix("_isNull") {
            Condition::IsNull {
                field: known(name)?.name,
                null: value.boolean()?,
            }
        } else if let Some((name, op)) = OPS
            .iter()
            .find_map(|(suffix, op)| key.strip_suffix(suffix).map(|name| (name, *op)))
        {
            let field = known(name)?;
            Condition::Compare {
                field: field.name,
                op,
                value: cell_of(field.kind, &value)?,
            }
        } else {
            let field = known(key)?;
            let Kind::Object(inner) = field.kind else {
                return Err(bad(format!("{key} is not a filter")));
            };
            let inner = entity(inner).ok_or_else(|| bad(format!("no entity {inner}")))?;
            Condition::Nested {
                field: field.name,
                filter: parse_filter(inner, &value.object()?)?,
            }
        };
        filter.conditions.push(condition);
    }
    Ok(filter)
}

/// One list: filtered, ordered, paged.
fn list(ctx: &ResolverContext<'_>, def: &'static EntityDef) -> async_graphql::Result<Vec<Row>> {
    let filter = match ctx.args.get("where") {
        Some(w) if !w.is_null() => parse_filter(def, &w.object()?)?,
        _ => Filter::default(),
    };
    let mut order = Vec::new();
    if let Some(list) = ctx.args.get("orderBy").filter(|v| !v.is_null()) {
        for item in list.list()?.iter() {
            let name = item.enum_name()?;
            let (field, desc) = if let Some(field) = name.strip_suffix("_ASC") {
                (field, false)
            } else if let Some(field) = name.strip_suffix("_DESC") {
                (field, true)
            } else {
                return Err(bad(format!("{name} is not an order")));
            };
            order.push((field.to_owned(), desc));
        }
    }
    let count = |name: &str| -> async_graphql::Result<Option<usize>> {
        match ctx.args.get(name).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => usize::try_from(v.i64()?)
                .map(Some)
                .map_err(|_| bad(format!("{name} must not be negative"))),
        }
    };
    let offset = count("offset")?.unwrap_or(0);
    let limit = count("limit")?.unwrap_or(MAX_LIMIT);
    if limit > MAX_LIMIT {
        return Err(bad(format!("limit must be at most {MAX_LIMIT}")));
    }
    let shared = ctx.data::<Shared>()?;
    let mut rows: Vec<Row> = {
        let sim = shared.lock();
        sim.chain
            .indexer
            .rows(def.name)
            .into_iter()
            .filter(|r| filter.matches(r))
            .collect()
    };
    // Stable: ties keep chain order.
    rows.sort_by(|a, b| {
        order
            .iter()
            .map(|(field, desc)| {
                let null = Cell::Null;
                let o = a
                    .get(field.as_str())
                    .unwrap_or(&null)
                    .compare(b.get(field.as_str()).unwrap_or(&null));
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    Ok(rows.into_iter().skip(offset).take(limit).collect())
}

/// A cell as the schema prints `kind`.
fn output(kind: Kind, cell: &Cell) -> Option<FieldValue<'static>> {
    let value = match (kind, cell) {
        (_, Cell::Null) => return None,
        (Kind::Object(_), Cell::Object(row)) => {
            return Some(FieldValue::owned_any((**row).clone()))
        }
        (Kind::Int, Cell::Num(n)) => Value::Number(Number::from(i64::try_from(*n).ok()?)),
        (Kind::BigInt, Cell::Num(n)) => Value::String(n.to_string()),
        (Kind::Usd, Cell::Num(n)) => Value::String(musd_to_usd(u32::try_from(*n).ok()?)),
        (Kind::Enum(_), Cell::Enum(v)) => Value::Enum(Name::new(v)),
        (_, Cell::Text(s)) => Value::String(s.clone()),
        _ => return None,
    };
    Some(FieldValue::value(value))
}

fn type_ref(field: &FieldDef) -> TypeRef {
    if field.required {
        TypeRef::named_nn(field.kind.type_name())
    } else {
        TypeRef::named(field.kind.type_name())
    }
}

/// The schema, over the simulator's state.
pub(crate) fn schema(shared: Shared) -> Result<Schema, SchemaError> {
    let mut query = Object::new("Query");
    let mut builder = Schema::build("Query", None, None)
        .register(
            Scalar::new("BigInt")
                .description("Big number integer, a decimal string")
                .validator(|v| match v {
                    Value::String(s) => s.parse::<i128>().is_ok(),
                    Value::Number(n) => n.is_i64() || n.is_u64(),
                    _ => false,
                }),
        )
        .register(
            Scalar::new("BigDecimal")
                .description("Big number decimal, a decimal string")
                .validator(|v| matches!(v, Value::String(s) if usd_to_musd(s).is_some())),
        );
    for (name, values) in ENUMS {
        builder = builder.register(Enum::new(*name).items(values.iter().copied()));
    }
    for def in ENTITIES {
        let mut object = Object::new(def.name);
        let mut filter = InputObject::new(format!("{}WhereInput", def.name));
        let mut order = Enum::new(format!("{}OrderByInput", def.name));
        for field in def.fields {
            let (name, kind) = (field.name, field.kind);
            object = object.field(Field::new(name, type_ref(field), move |ctx| {
                FieldFuture::new(async move {
                    let row = ctx.parent_value.try_downcast_ref::<Row>()?;
                    Ok(row.get(name).and_then(|cell| output(kind, cell)))
                })
            }));
            if let Kind::Object(inner) = kind {
                filter = filter.field(InputValue::new(
                    name,
                    TypeRef::named(format!("{inner}WhereInput")),
                ));
                continue;
            }
            let scalar = kind.type_name();
            let mut ops = vec!["eq", "not_eq"];
            if kind.ordered() {
                ops.extend(["gt", "gte", "lt", "lte"]);
            }
            for op in ops {
                filter = filter.field(InputValue::new(
                    format!("{name}_{op}"),
                    TypeRef::named(scalar),
                ));
            }
            filter = filter
                .field(InputValue::new(
                    format!("{name}_in"),
                    TypeRef::named_nn_list(scalar),
                ))
                .field(InputValue::new(
                    format!("{name}_isNull"),
                    TypeRef::named(TypeRef::BOOLEAN),
                ));
            order = order
                .item(format!("{name}_ASC"))
                .item(format!("{name}_DESC"));
        }
        let where_name = format!("{}WhereInput", def.name);
        filter = filter
            .field(InputValue::new("AND", TypeRef::named_nn_list(&where_name)))
            .field(InputValue::new("OR", TypeRef::named_nn_list(&where_name)));
        let order_name = format!("{}OrderByInput", def.name);
        query = query.field(
            Field::new(def.list, TypeRef::named_nn_list_nn(def.name), move |ctx| {
                FieldFuture::new(async move {
                    let rows = list(&ctx, def)?;
                    Ok(Some(FieldValue::list(
                        rows.into_iter().map(FieldValue::owned_any),
                    )))
                })
            })
            .argument(InputValue::new("where", TypeRef::named(&where_name)))
            .argument(InputValue::new(
                "orderBy",
                TypeRef::named_nn_list(&order_name),
            ))
            .argument(InputValue::new("offset", TypeRef::named(TypeRef::INT)))
            .argument(InputValue::new("limit", TypeRef::named(TypeRef::INT))),
        );
        builder = builder.register(object).register(filter).register(order);
    }
    builder.register(query).data(shared).finish()
}

/// `POST /graphql` over the simulation, for any router state.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(shared: Shared) -> Router<S> {
    // Built from constants; the tests build the same schema.
    let schema = schema(shared).expect("the INDEXER SIMULATOR's schema is built from constants");
    Router::new().route("/graphql", post(graphql).with_state(schema))
}

/// `POST /graphql`: a GraphQL request as JSON; the answer is 200 with
/// `data` and/or `errors`, or 400 when the body is not a request.
pub(crate) async fn graphql(State(schema): State<Schema>, body: Bytes) -> Response {
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "errors": [{ "message": format!("not a GraphQL request: {e}") }] })),
            )
                .into_response()
        }
    };
    Json(schema.execute(request).await).into_response()
}
