//! Rows for `COPY ... FROM STDIN (FORMAT binary)`: the fastest way to hand
//! PostgreSQL many rows (no statement to parse or plan, no per-row
//! parameters, values in the server's own binary form). The encoding of
//! each type is PostgreSQL's `send` form
//! (<https://www.postgresql.org/docs/current/sql-copy.html>, "Binary Format").

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The `int8` type's oid, for array headers.
const INT8_OID: i32 = 20;

/// A buffer of rows in COPY's binary format.
pub(crate) struct BinaryRows {
    buf: Vec<u8>,
    rows: usize,
}

impl BinaryRows {
    /// An empty buffer (the format's header written).
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buf, rows: 0 }
    }

    /// Starts a row of `fields` columns.
    pub fn row(&mut self, fields: i16) -> &mut Self {
        self.rows += 1;
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        let len = i32::try_from(bytes.len()).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A NULL.
    pub fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.field(id.as_bytes())
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        self.field(text.as_bytes())
    }

    pub fn opt_text(&mut self, text: Option<&str>) -> &mut Self {
        match text {
            Some(t) => self.text(t),
            None => self.null(),
        }
    }

    pub fn int8(&mut self, v: i64) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub fn opt_int8(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    pub fn int4(&mut self, v: i32) -> &mut Self {
        self.field(&v.to_be_bytes())
    }

    pub fn opt_int4(&mut self, v: Option<i32>) -> &mut Self {
        match v {
            Some(v) => self.int4(v),
            None => self.null(),
        }
    }

    /// A `jsonb`: its format version (1), then the JSON text.
    pub fn jsonb(&mut self, value: &Value) -> &mut Self {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0, 1]);
        serde_json::to_writer(&mut self.buf, value).expect("a JSON value serialises");
        let len = i32::try_from(self.buf.len() - at - 4).expect("a field under 2 GiB");
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    pub fn opt_jsonb(&mut self, value: Option<&Value>) -> &mut Self {
        match value {
            Some(v) => self.jsonb(v),
            None => self.null(),
        }
    }

    /// A `timestamptz`: microseconds since 2000-01-01 UTC, cut as the
    /// driver cuts a bound value, so both ways store the same instant.
    pub fn timestamptz(&mut self, at: DateTime<Utc>) -> &mut Self {
        let epoch = Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("the PostgreSQL epoch");
        let micros = (at - epoch)
            .num_microseconds()
            .expect("a timestamp within 292,000 years of 2000");
        self.int8(micros)
    }

    pub fn opt_timestamptz(&mut self, at: Option<DateTime<Utc>>) -> &mut Self {
        match at {
            Some(at) => self.timestamptz(at),
            None => self.null(),
        }
    }

    /// A one-dimensional `bigint[]` (no NULL elements).
    pub fn int8_array(&mut self, values: &[i64]) -> &mut Self {
        let dims: i32 = if values.is_empty() { 0 } else { 1 };
        let mut bytes = Vec::with_capacity(20 + 12 * values.len());
        bytes.extend_from_slice(&dims.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes()); // no NULLs
        bytes.extend_from_slice(&INT8_OID.to_be_bytes());
        if !values.is_empty() {
            let n = i32::try_from(values.len()).expect("an array under 2^31 elements");
            bytes.extend_from_slice(&n.to_be_bytes());
            bytes.extend_from_slice(&1i32.to_be_bytes()); // lower bound
            for v in values {
                bytes.extend_from_slice(&8i32.to_be_bytes());
                bytes.extend_from_slice(&v.to_be_bytes());
            }
        }
        self.field(&bytes)
    }

    /// Sends the rows with `statement` (a `COPY ... FROM STDIN (FORMAT
    /// binary)`); the number of rows copied.
    pub async fn copy(
        mut self,
        conn: &mut PgConnection,
        statement: &str,
    ) -> Result<u64, sqlx::Error> {
        if self.rows == 0 {
            return Ok(0);
        }
        self.buf.extend_from_slice(&(-1i16).to_be_bytes()); // trailer
        let mut copy = conn.copy_in_raw(statement).await?;
        if let Err(e) = copy.send(self.buf).await {
            copy.abort(e.to_string()).await?;
            return Err(e);
        }
        copy.finish().await
    }
}
